"""status.cost: what an LLMDeployment costs (computed by kube/cost.py, written by the reconciler)."""

from __future__ import annotations

from pydantic import Field

from rightsizer.api.v1alpha1.common import StatusModel


class ProductGpus(StatusModel):
    """GPUs of one product held by the deployment's pods."""

    product: str = Field(description="GPU product (GPU Feature Discovery name), or 'unknown' for an unknown pool.")
    gpus: int = Field(description="GPUs held: requested by pods bound to a node and not finished.")


class GpuUsage(StatusModel):
    """From `time` on, the deployment held `gpus` GPUs (until the next entry)."""

    time: str = Field(description="RFC 3339 time of the change.")
    gpus: int = Field(description="GPUs held from then on.")


class CostStatus(StatusModel):
    """GPUs, price and GPU-hours; dollars per million output tokens when the replicas report their load."""

    gpus: list[ProductGpus] = Field(default_factory=list, description="GPUs held now, per product.")
    price_per_hour: float = Field(
        description="Price of the GPUs held now, per hour: GPUs × their pool's pricePerGpuHour, or "
        "RIGHTSIZER_DEFAULT_PRICE_PER_GPU_HOUR for a pool without a declared price."
    )
    price_source: str = Field(description="declared (every pool priced), default, or mixed.")
    day_as_of: str = Field(description="The full hour the last-day figures below are computed up to (RFC 3339).")
    gpu_hours_last_day: float = Field(description="GPU-hours used over the 24 hours up to dayAsOf (of coveredHours).")
    covered_hours: float = Field(description="How much of the last 24 hours the usage history covers.")
    peak_gpus_last_day: int = Field(description="The most GPUs held at once over that span.")
    saved_gpu_hours_last_day: float = Field(
        description="GPU-hours saved against holding the peak for the whole span (static provisioning at peak)."
    )
    output_tokens_per_second: float | None = Field(
        default=None,
        description="Output tokens generated per second across the ready replicas, from status.performance "
        "(vLLM's generation-token histogram over the autoscaler's last metrics window); absent without metrics.",
    )
    dollars_per_million_tokens: float | None = Field(
        default=None, description="pricePerHour at that load: dollars per million output tokens."
    )
    usage: list[GpuUsage] = Field(
        default_factory=list, description="GPU count history over the last day: one entry per change."
    )
