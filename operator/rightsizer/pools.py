"""GPU pools as sizing sees them: a product, a node shape, a size limit and a price. Pure data."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from rightsizer.api.v1alpha1.common import GpuPoolSpec, Toleration
from rightsizer.facts.gpus import GpuProduct, UnknownGpuProductError, lookup


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
