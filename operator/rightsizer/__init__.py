"""rightsizer: a Kubernetes operator that right-sizes vLLM inference deployments on GPU node pools."""

__version__ = "0.1.0.dev0"
