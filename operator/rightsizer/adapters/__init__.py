"""The edges that do I/O: the Kubernetes API (k8s, the only module that calls it), the Hugging Face Hub (hub), where
a config.json comes from (modelsource), vLLM metrics over HTTP (metrics_source), the webhook's TLS files
(webhook_tls), the pools file (pools_file) and the operator's environment (settings)."""
