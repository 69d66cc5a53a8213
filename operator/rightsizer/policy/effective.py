"""Several SizingPolicies that select one namespace combine into one effective policy, the most restrictive of
them, and every value of the result remembers the policies it came from so it can be explained.

Rules: numeric limits take the smallest; allow-lists intersect (a policy without a list does not restrict);
image prefixes intersect as sets of images; required fields and quotas accumulate (a product's quota takes the
smallest); declared pools accumulate by name. Defaults are not limits: numeric defaults take the most conservative
value (the tightest SLO, the lowest memory share), text defaults (engine version, image repository) come from the
first policy by name, and a disagreement is recorded as a conflict so `rightsizer policy explain` shows it.
`--trust-remote-code` needs a policy that allows it and none that forbids it. Name patterns (Secrets, claims) are
kept per policy: a name must match a pattern of every policy that lists some (identical lists are merged).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

from rightsizer.api.v1alpha1.common import GpuPoolSpec
from rightsizer.api.v1alpha1.sizingpolicy import SizingPolicy, SLOField
from rightsizer.facts.gpus import UnknownGpuProductError, lookup
from rightsizer.policy.images import image_allowed, intersect_prefixes, minimal_prefixes, normalise_prefix

T = TypeVar("T")


@dataclass(frozen=True)
class Sourced(Generic[T]):
    """A value of the effective policy and the SizingPolicies that set it (several when they agree)."""

    value: T
    policies: tuple[str, ...]


def product_key(name: str) -> str:
    """GPU Feature Discovery name of a product or alias; a name rightsizer does not know is kept as written (the
    policy's Accepted condition reports it)."""
    try:
        return lookup(name).product
    except UnknownGpuProductError:
        return name


@dataclass(frozen=True)
class EffectiveDefaults:
    engine_version: Sourced[str] | None = None
    image_repository: Sourced[str] | None = None
    ttft_p95_ms: Sourced[float] | None = None
    itl_p95_ms: Sourced[float] | None = None
    gpu_memory_utilization: Sourced[float] | None = None


@dataclass(frozen=True)
class EffectivePolicy:
    """The policy one namespace is held to. `None` means unrestricted; an empty allow-set allows nothing."""

    namespace: str
    policies: tuple[str, ...] = ()
    pools: tuple[Sourced[GpuPoolSpec], ...] = ()
    gpu_products: Sourced[frozenset[str]] | None = None  # GPU Feature Discovery names
    pool_names: Sourced[frozenset[str]] | None = None
    quantizations: Sourced[frozenset[str]] | None = None
    dtypes: Sourced[frozenset[str]] | None = None
    engine_images: Sourced[tuple[str, ...]] | None = None  # normalised registry prefixes
    max_gpus_per_replica: Sourced[int] | None = None
    max_replicas: Sourced[int] | None = None
    max_model_len: Sourced[int] | None = None
    quotas: tuple[Sourced[tuple[str | None, int]], ...] = ()  # (product or None for all products, max GPUs)
    required_slo: tuple[Sourced[SLOField], ...] = ()
    overflow_forbidden: tuple[str, ...] = ()  # the policies that set allowed.overflow: false
    # allowed.trustRemoteCode: None when no policy sets it (refused); False from the policies that forbid it, which
    # win over those that allow it; True from the policies that allow it.
    trust_remote_code: Sourced[bool] | None = None
    hf_token_secrets: tuple[Sourced[tuple[str, ...]], ...] = ()  # one pattern list per policy that lists some
    model_cache_claims: tuple[Sourced[tuple[str, ...]], ...] = ()
    defaults: EffectiveDefaults = field(default_factory=EffectiveDefaults)
    conflicts: tuple[str, ...] = ()

    @property
    def applies(self) -> bool:
        return bool(self.policies)

    def quota_for(self, product: str) -> list[Sourced[tuple[str | None, int]]]:
        """The quotas that count GPUs of `product`: its own, and the all-products one."""
        key = product_key(product)
        return [q for q in self.quotas if q.value[0] in (None, key)]


# --- combining one field ------------------------------------------------------------------------------------------


def _smallest(values: Iterable[tuple[str, T | None]], key: Callable[[T], float]) -> Sourced[T] | None:
    present = [(name, v) for name, v in values if v is not None]
    if not present:
        return None
    best = min(key(v) for _, v in present)
    winners = [(name, v) for name, v in present if key(v) == best]
    return Sourced(winners[0][1], tuple(name for name, _ in winners))


def _intersection(values: Iterable[tuple[str, Iterable[str]]]) -> Sourced[frozenset[str]] | None:
    listed = [(name, frozenset(items)) for name, items in values]
    listed = [(name, items) for name, items in listed if items]
    if not listed:
        return None
    common = frozenset.intersection(*(items for _, items in listed))
    return Sourced(common, tuple(name for name, _ in listed))


def _first_by_name(label: str, values: Iterable[tuple[str, str | None]], conflicts: list[str]) -> Sourced[str] | None:
    present = [(name, v) for name, v in values if v is not None]
    if not present:
        return None
    chosen = present[0][1]
    agreeing = tuple(name for name, v in present if v == chosen)
    others = [f"{v} (SizingPolicy {name})" for name, v in present if v != chosen]
    if others:
        conflicts.append(
            f"defaults.{label}: {chosen} from SizingPolicy {present[0][0]} is used; also set to {', '.join(others)}"
        )
    return Sourced(chosen, agreeing)


def _images(policies: Sequence[SizingPolicy]) -> Sourced[tuple[str, ...]] | None:
    listed = [(p.name, p.spec.allowed.engine_images) for p in policies if p.spec.allowed.engine_images]
    if not listed:
        return None
    prefixes = minimal_prefixes(normalise_prefix(x) for x in listed[0][1])
    for _, more in listed[1:]:
        prefixes = intersect_prefixes(prefixes, more)
    return Sourced(prefixes, tuple(name for name, _ in listed))


def _quotas(policies: Sequence[SizingPolicy]) -> tuple[Sourced[tuple[str | None, int]], ...]:
    by_product: dict[str | None, list[tuple[str, int]]] = {}
    for p in policies:
        for quota in p.spec.limits.namespace_quota:
            key = None if quota.product is None else product_key(quota.product)
            by_product.setdefault(key, []).append((p.name, quota.max_gpus))
    combined = []
    for key in sorted(by_product, key=lambda k: (k is not None, k or "")):
        tightest = _smallest(by_product[key], key=float)
        assert tightest is not None
        combined.append(Sourced((key, tightest.value), tightest.policies))
    return tuple(combined)


def _trust_remote_code(policies: Sequence[SizingPolicy]) -> Sourced[bool] | None:
    """Forbidding wins; allowing needs a policy that says so (unset is no opinion, and the default is refusal)."""
    for value in (False, True):
        setting = tuple(p.name for p in policies if p.spec.allowed.trust_remote_code is value)
        if setting:
            return Sourced(value, setting)
    return None


def _name_patterns(listed: Iterable[tuple[str, Sequence[str]]]) -> tuple[Sourced[tuple[str, ...]], ...]:
    """Each policy's patterns, as one alternative set; the sets are all required (identical ones merged)."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, patterns in listed:
        if patterns:
            groups.setdefault(tuple(sorted(set(patterns))), []).append(name)
    return tuple(Sourced(patterns, tuple(names)) for patterns, names in groups.items())


def _required(policies: Sequence[SizingPolicy]) -> tuple[Sourced[SLOField], ...]:
    fields = {f for p in policies for f in p.spec.required.slo}
    return tuple(
        Sourced(f, tuple(p.name for p in policies if f in p.spec.required.slo)) for f in sorted(fields, key=str)
    )


def _pools(policies: Sequence[SizingPolicy], conflicts: list[str]) -> tuple[Sourced[GpuPoolSpec], ...]:
    chosen: dict[str, Sourced[GpuPoolSpec]] = {}
    for p in policies:
        for pool in p.spec.pools:
            seen = chosen.get(pool.name)
            if seen is None:
                chosen[pool.name] = Sourced(pool, (p.name,))
            elif seen.value == pool:
                chosen[pool.name] = Sourced(pool, (*seen.policies, p.name))
            else:
                conflicts.append(
                    f"pools: {pool.name} is declared differently by SizingPolicy {seen.policies[0]} and {p.name}; "
                    f"{seen.policies[0]}'s declaration is used"
                )
    return tuple(chosen[name] for name in sorted(chosen))


def _defaults(policies: Sequence[SizingPolicy], conflicts: list[str]) -> EffectiveDefaults:
    d = [(p.name, p.spec.defaults) for p in policies]
    return EffectiveDefaults(
        engine_version=_first_by_name("engine.version", ((n, x.engine.version) for n, x in d), conflicts),
        image_repository=_first_by_name(
            "engine.imageRepository", ((n, x.engine.image_repository) for n, x in d), conflicts
        ),
        ttft_p95_ms=_smallest(((n, x.slo.ttft_p95_ms) for n, x in d), key=float),
        itl_p95_ms=_smallest(((n, x.slo.itl_p95_ms) for n, x in d), key=float),
        gpu_memory_utilization=_smallest(((n, x.gpu_memory_utilization) for n, x in d), key=float),
    )


def _inconsistencies(effective: EffectivePolicy) -> list[str]:
    """Combinations that leave nothing allowed, and defaults the combined limits refuse."""
    named = {
        "allowed.gpuProducts": effective.gpu_products,
        "allowed.pools": effective.pool_names,
        "allowed.quantizations": effective.quantizations,
        "allowed.dtypes": effective.dtypes,
    }
    notes = [
        f"{label}: SizingPolicies {', '.join(s.policies)} have no value in common, so nothing is allowed"
        for label, s in named.items()
        if s is not None and not s.value and len(s.policies) > 1
    ]
    images = effective.engine_images
    if images is not None and not images.value and len(images.policies) > 1:
        notes.append(
            f"allowed.engineImages: SizingPolicies {', '.join(images.policies)} have no image prefix in common, "
            "so no image is allowed"
        )
    repository = effective.defaults.image_repository
    if repository is not None and images is not None and not image_allowed(f"{repository.value}:v0", images.value):
        notes.append(
            f"defaults.engine.imageRepository {repository.value} (SizingPolicy {repository.policies[0]}) is not among "
            f"allowed.engineImages {', '.join(images.value) or '(none)'} (SizingPolicy {', '.join(images.policies)})"
        )
    return notes


def combine(namespace: str, policies: Iterable[SizingPolicy]) -> EffectivePolicy:
    """The most restrictive combination of `policies` (those selecting `namespace`, see selection.selecting)."""
    ordered = sorted(policies, key=lambda p: p.name)
    conflicts: list[str] = []
    effective = EffectivePolicy(
        namespace=namespace,
        policies=tuple(p.name for p in ordered),
        pools=_pools(ordered, conflicts),
        gpu_products=_intersection((p.name, {product_key(x) for x in p.spec.allowed.gpu_products}) for p in ordered),
        pool_names=_intersection((p.name, p.spec.allowed.pools) for p in ordered),
        quantizations=_intersection((p.name, {q.value for q in p.spec.allowed.quantizations}) for p in ordered),
        dtypes=_intersection((p.name, {d.value for d in p.spec.allowed.dtypes}) for p in ordered),
        engine_images=_images(ordered),
        max_gpus_per_replica=_smallest(((p.name, p.spec.limits.max_gpus_per_replica) for p in ordered), key=float),
        max_replicas=_smallest(((p.name, p.spec.limits.max_replicas) for p in ordered), key=float),
        max_model_len=_smallest(((p.name, p.spec.limits.max_model_len) for p in ordered), key=float),
        quotas=_quotas(ordered),
        required_slo=_required(ordered),
        overflow_forbidden=tuple(p.name for p in ordered if p.spec.allowed.overflow is False),
        trust_remote_code=_trust_remote_code(ordered),
        hf_token_secrets=_name_patterns((p.name, p.spec.allowed.hf_token_secrets) for p in ordered),
        model_cache_claims=_name_patterns((p.name, p.spec.allowed.model_cache_claims) for p in ordered),
        defaults=_defaults(ordered, conflicts),
    )
    conflicts += _inconsistencies(effective)
    return replace(effective, conflicts=tuple(conflicts))
