"""GPU pools as sizing sees them: a product, a node shape, a size limit and a price. Pure data."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from rightsizer.api.v1alpha1.common import GpuPoolSpec, Toleration
from rightsizer.facts.gpus import PRODUCTS, GpuProduct, UnknownGpuProductError, lookup


@dataclass(frozen=True)
class GpuPool:
    name: str
    gpu: GpuProduct
    gpus_per_node: int
    max_nodes: int | None  # None: unknown or unbounded
    price_per_gpu_hour: float | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()
    discovered_nodes: int = 0  # nodes seen in the cluster right now (0 for a pool that scales from zero)

    @property
    def product(self) -> str:
        return self.gpu.product


def from_spec(spec: GpuPoolSpec) -> GpuPool:
    """A declared pool. Raises UnknownGpuProductError for a product rightsizer has no facts for."""
    return GpuPool(
        name=spec.name,
        gpu=lookup(spec.product),
        gpus_per_node=spec.gpus_per_node,
        max_nodes=spec.max_nodes,
        price_per_gpu_hour=spec.price_per_gpu_hour,
        node_selector=dict(spec.node_selector),
        tolerations=tuple(spec.tolerations),
    )


def allowed(pools: Sequence[GpuPool], products: Sequence[str]) -> list[tuple[int, GpuPool]]:
    """Pools whose product is in `products` (GFD names or aliases), with the product's preference rank.

    An empty `products` allows every pool, all with equal preference.
    """
    if not products:
        return [(0, p) for p in pools]
    wanted = [lookup(name).product for name in products]
    return [(wanted.index(p.product), p) for p in pools if p.product in wanted]


def unknown_products(products: Iterable[str]) -> list[str]:
    bad = []
    for name in products:
        try:
            lookup(name)
        except UnknownGpuProductError:
            bad.append(name)
    return bad


def merge(discovered: Sequence[GpuPool], declared: Sequence[GpuPool]) -> list[GpuPool]:
    """Declared pools win on price, selector and tolerations; a pool seen in both keeps the larger node bound."""
    by_name = {p.name: p for p in discovered}
    for pool in declared:
        seen = by_name.get(pool.name)
        if seen is None:
            by_name[pool.name] = pool
            continue
        bound = None if pool.max_nodes is None else max(pool.max_nodes, seen.discovered_nodes)
        by_name[pool.name] = replace(
            pool,
            max_nodes=bound,
            node_selector=pool.node_selector or seen.node_selector,
            tolerations=pool.tolerations or seen.tolerations,
            discovered_nodes=seen.discovered_nodes,
        )
    return [by_name[name] for name in sorted(by_name)]


def default_pools(gpus_per_node: int = 8) -> list[GpuPool]:
    """Without a pools file: one unbounded pool of 8-GPU nodes per known product."""
    return [GpuPool(name=p.short_name.lower(), gpu=p, gpus_per_node=gpus_per_node, max_nodes=None) for p in PRODUCTS]
