"""Problems within one SizingPolicy, for its Accepted condition and for `rightsizer policy explain`: names
rightsizer cannot resolve and defaults the policy's own limits would refuse."""

from __future__ import annotations

from rightsizer.api.v1alpha1.sizingpolicy import SizingPolicySpec
from rightsizer.errors import UnsupportedEngineVersionError
from rightsizer.facts.vllm_profiles import profile_for
from rightsizer.policy.effective import product_key
from rightsizer.policy.images import image_allowed, normalise_prefix
from rightsizer.sizing.pools import unknown_products


def _product_problems(spec: SizingPolicySpec) -> list[str]:
    named = [
        *(("allowed.gpuProducts", p) for p in spec.allowed.gpu_products),
        *((f"pools[{pool.name}].product", pool.product) for pool in spec.pools),
        *(("limits.namespaceQuota.product", q.product) for q in spec.limits.namespace_quota if q.product),
    ]
    return [f"{where}: unknown GPU product {name!r}" for where, name in named if unknown_products([name])]


def _default_problems(spec: SizingPolicySpec) -> list[str]:
    problems = []
    engine = spec.defaults.engine
    if engine.version is not None:
        try:
            profile_for(engine.version)
        except UnsupportedEngineVersionError as err:
            problems.append(f"defaults.engine.version: {err.problem}; {err.fix}")
    prefixes = [normalise_prefix(p) for p in spec.allowed.engine_images]
    if engine.image_repository and prefixes and not image_allowed(f"{engine.image_repository}:v0", prefixes):
        problems.append(
            f"defaults.engine.imageRepository {engine.image_repository} is under none of allowed.engineImages"
        )
    return problems


def _pool_problems(spec: SizingPolicySpec) -> list[str]:
    """Allowed pools this very policy makes unusable by not allowing their product."""
    if not spec.allowed.gpu_products:
        return []
    allowed_products = {product_key(p) for p in spec.allowed.gpu_products}
    declared = {p.name: p for p in spec.pools}
    return [
        f"allowed.pools: {name} offers {declared[name].product}, which allowed.gpuProducts does not list, so the "
        "pool can never be used"
        for name in spec.allowed.pools
        if name in declared and product_key(declared[name].product) not in allowed_products
    ]


def policy_problems(spec: SizingPolicySpec) -> list[str]:
    """Empty when the policy is sound; otherwise one line per problem, naming the field."""
    return _product_problems(spec) + _default_problems(spec) + _pool_problems(spec)
