"""The effective policy of a namespace for people (`rightsizer policy explain`) and programs (-o yaml/json):
every value with the SizingPolicies it comes from."""

from __future__ import annotations

from typing import Any

from rightsizer.policy.effective import EffectivePolicy, Sourced

TRUST_REMOTE_CODE = "allowed.trustRemoteCode"
# What an unset row means: no bound, no default, or (for --trust-remote-code, refused by default) refusal.
_UNSET_TRUST = "false (no policy sets it: --trust-remote-code is refused)"


def _from(source: Sourced[Any]) -> str:
    return ", ".join(source.policies)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, frozenset | tuple | list):
        return ", ".join(sorted(str(v) for v in value)) or "(nothing)"
    if isinstance(value, float):
        return f"{value:g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _patterns(label: str, listed: tuple[Sourced[tuple[str, ...]], ...]) -> list[tuple[str, Sourced[Any] | None]]:
    """One row for one policy's patterns; numbered rows when several policies list different ones (a name must
    match a pattern of each)."""
    if len(listed) <= 1:
        return [(label, listed[0] if listed else None)]
    return [(f"{label}[{i}]", patterns) for i, patterns in enumerate(listed, 1)]


def _rows(effective: EffectivePolicy) -> list[tuple[str, Sourced[Any] | None]]:
    d = effective.defaults
    return [
        ("allowed.gpuProducts", effective.gpu_products),
        ("allowed.pools", effective.pool_names),
        ("allowed.quantizations", effective.quantizations),
        ("allowed.dtypes", effective.dtypes),
        ("allowed.engineImages", effective.engine_images),
        (TRUST_REMOTE_CODE, effective.trust_remote_code),
        *_patterns("allowed.hfTokenSecrets", effective.hf_token_secrets),
        *_patterns("allowed.modelCacheClaims", effective.model_cache_claims),
        ("limits.maxGpusPerReplica", effective.max_gpus_per_replica),
        ("limits.maxReplicas", effective.max_replicas),
        ("limits.maxModelLen", effective.max_model_len),
        *((f"limits.namespaceQuota[{q.value[0] or 'all products'}].maxGpus", _quota(q)) for q in effective.quotas),
        *((f"required.slo.{r.value.value}", Sourced("required", r.policies)) for r in effective.required_slo),
        ("defaults.engine.version", d.engine_version),
        ("defaults.engine.imageRepository", d.image_repository),
        ("defaults.slo.ttftP95Ms", d.ttft_p95_ms),
        ("defaults.slo.itlP95Ms", d.itl_p95_ms),
        ("defaults.gpuMemoryUtilization", d.gpu_memory_utilization),
    ]


def _quota(quota: Sourced[tuple[str | None, int]]) -> Sourced[int]:
    return Sourced(quota.value[1], quota.policies)


def _pool_text(effective: EffectivePolicy) -> list[str]:
    lines = []
    for pool in effective.pools:
        p = pool.value
        size = f"≤ {p.max_nodes} nodes" if p.max_nodes is not None else "nodes unbounded"
        price = f", {p.price_per_gpu_hour:g}/GPU-hour" if p.price_per_gpu_hour is not None else ""
        lines.append(f"  {p.name:<30} {p.product} × {p.gpus_per_node} per node, {size}{price}  from {_from(pool)}")
    return lines


def explain_lines(effective: EffectivePolicy, labels: dict[str, str] | None = None) -> list[str]:
    """One line per value: `limits.maxGpusPerReplica  8  from gpu-budget`; unset values read `any`."""
    shown = ", ".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))
    lines = [f"namespace {effective.namespace}" + (f" (labels: {shown})" if shown else "")]
    if not effective.applies:
        return [
            *lines,
            "no SizingPolicy selects this namespace: nothing is restricted but --trust-remote-code "
            f"({TRUST_REMOTE_CODE} is false by default), nothing defaulted",
        ]
    lines.append(f"selected by SizingPolicy {', '.join(effective.policies)}")
    rows = _rows(effective)
    width = max(len(name) for name, _ in rows) + 2
    for name, source in rows:
        if source is None:
            unset = "(none)" if name.startswith("defaults.") else _UNSET_TRUST if name == TRUST_REMOTE_CODE else "any"
            lines.append(f"  {name:<{width}}{unset}")
        else:
            lines.append(f"  {name:<{width}}{_text(source.value)}  from {_from(source)}")
    if effective.pools:
        lines += ["declared pools:", *_pool_text(effective)]
    if effective.conflicts:
        lines += ["conflicts:", *(f"  ! {c}" for c in effective.conflicts)]
    return lines


def explain_dict(effective: EffectivePolicy) -> dict[str, Any]:
    """The same as data: {field: {value, from}} for every set value."""

    def plain(value: Any) -> Any:
        if isinstance(value, frozenset | tuple | list):
            return sorted(str(v) for v in value)
        return value

    fields = {
        name: {"value": plain(source.value), "from": list(source.policies)}
        for name, source in _rows(effective)
        if source is not None
    }
    return {
        "namespace": effective.namespace,
        "policies": list(effective.policies),
        "effective": fields,
        "pools": [{**p.value.to_wire(), "from": list(p.policies)} for p in effective.pools],
        "conflicts": list(effective.conflicts),
    }
