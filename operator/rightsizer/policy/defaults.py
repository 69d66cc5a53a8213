"""Filling in what an LLMDeployment leaves unset from the effective policy's defaults, for the defaulting
(mutating) webhook and offline plans. Only unset fields are touched; each change is recorded with its policy, and
can be turned into the JSON patch an admission response carries."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.model.config import ModelFacts
from rightsizer.policy.decision import policies_phrase
from rightsizer.policy.effective import EffectivePolicy, Sourced
from rightsizer.policy.images import default_image

Scalar = str | int | float


@dataclass(frozen=True)
class Defaulted:
    """One field filled in: its path under spec (wire names), the value, and why."""

    path: tuple[str, ...]
    value: Scalar
    policies: tuple[str, ...]
    why: str

    @property
    def field(self) -> str:
        return "spec." + ".".join(self.path)

    def one_line(self) -> str:
        shown = f"{self.value:g}" if isinstance(self.value, float) else str(self.value)
        return f"{self.field} = {shown}: {self.why}"


@dataclass(frozen=True)
class Defaulting:
    spec: LLMDeploymentSpec
    applied: tuple[Defaulted, ...]


def _from(source: Sourced[Any], policy_field: str) -> str:
    return f"default from {policies_phrase(source.policies)} ({policy_field})"


def _engine_defaults(spec: LLMDeploymentSpec, effective: EffectivePolicy) -> list[Defaulted]:
    engine, defaults = spec.serving.engine, effective.defaults
    out = []
    version = engine.version
    # A user who names an image has chosen its release too; changing the version under it would size for one
    # release and run another.
    if "version" not in engine.model_fields_set and engine.image is None and defaults.engine_version is not None:
        version = defaults.engine_version.value
        out.append(
            Defaulted(
                ("serving", "engine", "version"),
                version,
                defaults.engine_version.policies,
                _from(defaults.engine_version, "defaults.engine.version"),
            )
        )
    if engine.image is None and defaults.image_repository is not None:
        repository = defaults.image_repository
        out.append(
            Defaulted(
                ("serving", "engine", "image"),
                default_image(repository.value, version),
                repository.policies,
                _from(repository, "defaults.engine.imageRepository") + f", tagged v{version}",
            )
        )
    return out


def _serving_defaults(spec: LLMDeploymentSpec, effective: EffectivePolicy, facts: ModelFacts | None) -> list[Defaulted]:
    out = []
    utilization = effective.defaults.gpu_memory_utilization
    if spec.serving.gpu_memory_utilization is None and utilization is not None:
        out.append(
            Defaulted(
                ("serving", "gpuMemoryUtilization"),
                utilization.value,
                utilization.policies,
                _from(utilization, "defaults.gpuMemoryUtilization"),
            )
        )
    cap = effective.max_model_len
    if spec.serving.max_model_len is None and cap is not None and facts is not None:
        model_default = min(facts.default_max_model_len, facts.max_model_len_limit)
        if model_default > cap.value:
            out.append(
                Defaulted(
                    ("serving", "maxModelLen"),
                    cap.value,
                    cap.policies,
                    f"the model's default context {model_default:,} exceeds the cap of "
                    f"{policies_phrase(cap.policies)} (limits.maxModelLen)",
                )
            )
    return out


def _slo_defaults(spec: LLMDeploymentSpec, effective: EffectivePolicy) -> list[Defaulted]:
    out = []
    for wire, current, default in (
        ("ttftP95Ms", spec.slo.ttft_p95_ms, effective.defaults.ttft_p95_ms),
        ("itlP95Ms", spec.slo.itl_p95_ms, effective.defaults.itl_p95_ms),
    ):
        if current is None and default is not None:
            out.append(
                Defaulted(("slo", wire), default.value, default.policies, _from(default, f"defaults.slo.{wire}"))
            )
    return out


def apply_defaults(spec: LLMDeploymentSpec, effective: EffectivePolicy, facts: ModelFacts | None = None) -> Defaulting:
    """The spec with the policy's defaults in its unset fields, and what was filled in.

    With the model's facts, an unset maxModelLen whose model default exceeds the policy's cap is set to the cap
    (without facts that case is left to evaluation, which refuses the plan)."""
    applied = (
        _engine_defaults(spec, effective) + _serving_defaults(spec, effective, facts) + _slo_defaults(spec, effective)
    )
    if not applied:
        return Defaulting(spec, ())
    wire = spec.model_dump(by_alias=True, exclude_unset=True, mode="json")
    for item in applied:
        _set(wire, item.path, item.value)
    return Defaulting(LLMDeploymentSpec.model_validate(wire), tuple(applied))


def _set(tree: dict[str, Any], path: Sequence[str], value: Scalar) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _pointer(path: Sequence[str]) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in path)


def json_patch(obj: Mapping[str, Any], applied: Sequence[Defaulted]) -> list[dict[str, Any]]:
    """RFC 6902 operations that apply `applied` to the object as the API server sent it (`request.object`):
    missing parents are added as empty objects first, so the patch applies to any shape of the original."""
    shadow = copy.deepcopy(dict(obj))
    ops: list[dict[str, Any]] = []
    for item in applied:
        path = ("spec", *item.path)
        node = shadow
        for depth, key in enumerate(path[:-1]):
            if not isinstance(node.get(key), dict):
                node[key] = {}
                ops.append({"op": "add", "path": _pointer(path[: depth + 1]), "value": {}})
            node = node[key]
        node[path[-1]] = item.value
        ops.append({"op": "add", "path": _pointer(path), "value": item.value})
    return ops
