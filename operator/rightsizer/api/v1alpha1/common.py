"""Building blocks shared by every kind: the wire conventions, conditions, tolerations and GPU pools."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from rightsizer.facts.gpus import EXAMPLE_ALIASES, EXAMPLE_GFD_NAME


class WireModel(BaseModel):
    """snake_case in Python, camelCase on the wire; unknown fields are an error so typos surface at once."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=True,
        use_enum_values=False,
    )

    def to_wire(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase keys, unset optional fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class StatusModel(WireModel):
    """Status is written by the operator and read back from older versions of it: tolerate unknown keys."""

    model_config = ConfigDict(extra="ignore")


class Condition(StatusModel):
    """One observation, shaped exactly like metav1.Condition so `kubectl wait --for=condition=...` works."""

    type: str = Field(description="Condition type in CamelCase, e.g. Sized, Available.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="A CamelCase word a program can switch on.")
    message: str = Field(default="", description="A sentence for a person: what happened and what to do.")
    last_transition_time: str = Field(description="RFC 3339 time of the last change of status.")
    observed_generation: int | None = Field(
        default=None, description="The metadata.generation this condition was computed from."
    )


class Toleration(WireModel):
    """A core/v1 Toleration (the subset pools need)."""

    key: str | None = Field(default=None, description="Taint key the toleration applies to.")
    operator: Literal["Exists", "Equal"] | None = Field(default=None, description="Exists or Equal (default).")
    value: str | None = Field(default=None, description="Taint value, for operator Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match; empty matches all effects."
    )
    toleration_seconds: int | None = Field(default=None, description="For NoExecute: how long the pod stays bound.")


class GpuPoolSpec(WireModel):
    """A GPU node pool declared by the platform team: what it offers, what it costs and how pods get onto it.

    Declared pools matter for pools that scale from zero (no node to discover yet) and to attach a price.
    Pools discovered from Node labels use the same shape.
    """

    name: str = Field(description="Pool name, unique in the operator's view, e.g. h200-spot.", min_length=1)
    product: str = Field(
        description="GPU product as GPU Feature Discovery labels it (nvidia.com/gpu.product), e.g. "
        f"{EXAMPLE_GFD_NAME}; short aliases such as {EXAMPLE_ALIASES} are accepted."
    )
    gpus_per_node: int = Field(description="GPUs on each node of the pool.", ge=1, le=64)
    max_nodes: int | None = Field(
        default=None, description="Upper bound on nodes (autoscaler limit); unset: unknown.", ge=0
    )
    price_per_gpu_hour: float | None = Field(
        default=None, description="Price of one GPU-hour in any currency, used to choose the cheapest pool.", ge=0
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Labels a node of this pool carries; become the pod's nodeSelector."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, description="Tolerations pods need to land on this pool's tainted nodes."
    )
