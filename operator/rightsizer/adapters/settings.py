"""Operator configuration, from environment variables (prefix RIGHTSIZER_). Every field is documented here and in
docs/operator.md; the Helm chart sets them from values."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from rightsizer.api import constants as c

# Labels that cloud providers and autoscalers put on nodes to name their pool; the first one a node carries wins.
DEFAULT_POOL_LABELS = (
    c.LABEL_POOL,
    "karpenter.sh/nodepool",
    "cloud.google.com/gke-nodepool",
    "eks.amazonaws.com/nodegroup",
    "kubernetes.azure.com/agentpool",
)


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RIGHTSIZER_", env_nested_delimiter="__", extra="ignore")

    namespaces: list[str] = Field(
        default_factory=list, description="Namespaces to watch; empty watches the whole cluster."
    )
    pools_file: Path | None = Field(
        default=None,
        description="YAML list of declared GPU pools (name, product, gpusPerNode, maxNodes, pricePerGpuHour, "
        "nodeSelector, tolerations): pools that scale from zero, or prices for discovered pools.",
    )
    pool_label_keys: list[str] = Field(
        default_factory=lambda: list(DEFAULT_POOL_LABELS),
        description="Node labels that name a node's pool, in order of preference. Nodes without any are grouped "
        "by GPU product.",
    )
    image_repository: str = Field(
        default="vllm/vllm-openai", description="Image repository for vLLM when spec.serving.engine.image is unset."
    )
    allow_hub: bool = Field(
        default=True, description="Fetch config.json from the Hugging Face Hub for models not in the catalog."
    )
    reconcile_interval_seconds: float = Field(
        default=60.0, description="How often every LLMDeployment is re-checked even without events.", gt=0
    )
    reconcile_workers: int = Field(
        default=2,
        ge=1,
        le=16,
        description="Threads that reconcile LLMDeployments from the coalescing work queue (more only share the "
        "interpreter lock with the admission webhook).",
    )
    default_price_per_gpu_hour: float = Field(
        default=1.0,
        description="Price of a GPU-hour on a pool without a declared pricePerGpuHour, for status.cost and the cost "
        "metrics (status.cost.priceSource says default). 1.0 makes those figures read as GPU-hours; declare pool "
        "prices for dollars.",
        ge=0,
    )
    progress_deadline_seconds: float = Field(
        default=600.0,
        description="How long a replica may wait for a node (its pod unschedulable) before the LLMDeployment is "
        "Degraded; until then it is Progressing, as during any scale-up. 600 s is a Deployment's default "
        "progressDeadlineSeconds.",
        gt=0,
    )
    startup_base_seconds: int = Field(
        default=300, description="Start-up probe budget before any weights are loaded (compile, graph capture)."
    )
    startup_seconds_per_weight_gib: float = Field(
        default=4.0, description="Extra start-up budget per GiB of weights per pod (download and load at ~256 MB/s)."
    )
    shm_size: str = Field(default="16Gi", description="Size of the memory-backed /dev/shm volume (NCCL, TP > 1).")
    vllm_run_as_user: int = Field(
        default=2000,
        ge=0,
        description="User id the vLLM pods run as (runAsNonRoot, with that group as fsGroup), so they are admitted "
        "under the restricted Pod Security Standard; 0 runs them as root, as the upstream image does by default "
        "(docs/security.md).",
    )
    vllm_scratch_size: str = Field(
        default="20Gi",
        description="Size limit of each writable scratch volume of a vLLM pod (its home and /tmp: torch, Triton and "
        "vLLM compile caches, Ray's session files).",
    )
    webhook_enabled: bool = Field(default=False, description="Serve the admission webhook.")
    webhook_host: str = Field(default="127.0.0.1", description="Address the webhook server listens on.")
    webhook_port: int = Field(default=9444, description="Port the webhook server listens on.")
    webhook_cert_file: Path | None = Field(default=None, description="TLS certificate of the webhook server.")
    webhook_key_file: Path | None = Field(default=None, description="TLS key of the webhook server.")
    webhook_ca_file: Path | None = Field(default=None, description="CA bundle registered with the API server.")
    webhook_url_host: str | None = Field(
        default=None, description="Host name the API server uses to reach the webhook (default: webhook_host)."
    )
    webhook_manage_configuration: bool = Field(
        default=False,
        description="Let the operator create its Validating/MutatingWebhookConfiguration (URL client config; for "
        "local clusters). The Helm chart ships the configurations instead.",
    )
    webhook_configuration_name: str = Field(
        default="rightsizer.dev", description="Name of the webhook configurations the operator manages."
    )
    webhook_self_managed_tls: bool = Field(
        default=False,
        description="Create the webhook's CA and serving certificate, keep them in the Secret webhook_tls_secret in "
        "operator_namespace (renewed before expiry; shared by every replica), serve them, and write the CA into the "
        "caBundle of the webhook configurations named webhook_configuration_name (adapters.webhook_tls). Replaces "
        "webhook_cert_file, webhook_key_file and webhook_ca_file. The Helm chart's default.",
    )
    webhook_tls_secret: str = Field(
        default="rightsizer-webhook-tls", description="Secret holding the self-managed webhook certificate and CA."
    )
    webhook_tls_dns_names: list[str] = Field(
        default_factory=list,
        description="Names (DNS or IP) the self-managed serving certificate is valid for: the webhook Service's "
        "DNS names (JSON list). webhook_url_host is added.",
    )
    webhook_tls_directory: Path | None = Field(
        default=None,
        description="Where the self-managed certificate files are written for the webhook server (a writable "
        "directory; default: a new temporary one).",
    )
    operator_namespace: str | None = Field(
        default=None,
        description="The namespace the operator runs in (the chart sets it from the downward API); it holds the "
        "self-managed webhook certificate Secret.",
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="Log lines as text, or one JSON object per line (`rightsizer run --log-format`)."
    )
    metrics_port: int = Field(default=0, description="Port of the operator's Prometheus /metrics; 0 disables it.")
    metrics_address: str = Field(default="0.0.0.0", description="Address the metrics server listens on.")
    prometheus_url: str | None = Field(
        default=None, description="Prometheus to read vLLM latency from; unset: scrape the pods' /metrics directly."
    )
    prometheus_namespace_label: str = Field(
        default="namespace", description="Label Prometheus puts on scraped series for the pod's namespace."
    )
    prometheus_pod_label: str = Field(
        default="pod", description="Label Prometheus puts on scraped series for the pod's name."
    )
    autoscale_interval_seconds: float = Field(
        default=15.0, description="How often the SLO autoscaler decides for every LLMDeployment with autoscaling.", gt=0
    )
    autoscale_window_seconds: float = Field(
        default=60.0,
        description="Metrics window of each decision: latency quantiles and the arrival rate cover this many seconds "
        "(PromQL rate windows; keep it at least 4 Prometheus scrape intervals).",
        gt=0,
    )
    autoscale_status_refresh_seconds: float = Field(
        default=60.0,
        description="When only the observed latencies changed, status.autoscaling is rewritten at most this often.",
        ge=0,
    )
    prediction_sustain_seconds: float = Field(
        default=300.0,
        description="How long a deployment's observed mean TTFT or ITL must stay outside the performance model's "
        "interval before PredictionAccurate goes False (self-calibration, docs/autoscaling.md).",
        gt=0,
    )
    vllm_metrics_port: int = Field(default=8000, description="Port of vLLM's /metrics on each pod (embedded scrape).")
    scrape_timeout_seconds: float = Field(
        default=5.0,
        description="Total time one pod's /metrics scrape may take (connect to last byte); a slower pod is skipped.",
        gt=0,
    )
    scrape_concurrency: int = Field(
        default=32, description="At most this many pods' /metrics are scraped at once (embedded scrape).", gt=0
    )
    loop_grace_seconds: float = Field(
        default=120.0,
        description="A background loop (resync, autoscaler, webhook certificate renewal) that has not completed a "
        "pass for its interval plus this long fails the health probe (/healthz: liveness and readiness).",
        gt=0,
    )
    webhook_tls_check_interval_seconds: float = Field(
        default=3600.0,
        description="How often the self-managed webhook certificate is checked (renewed when due, or picked up "
        "from the Secret another replica renewed).",
        gt=0,
    )
    scrape_targets_dir: Path | None = Field(
        default=None,
        description="For local test planes only: Prometheus file_sd JSON files that map namespace/pod labels to the "
        "host:port to scrape instead of the pod IP; pods not listed are not scraped.",
    )
