"""The edges that do I/O: the Kubernetes API (k8s, the only module that calls it), the Hugging Face Hub (hub), where
a config.json comes from (modelsource), vLLM metrics over HTTP (metrics_source), the webhook's TLS files
(webhook_tls), the YAML files a person points rightsizer at, such as the pools file (files), and the operator's
environment (settings). kube_api holds the protocols the controller is typed against (Kube satisfies them)."""
