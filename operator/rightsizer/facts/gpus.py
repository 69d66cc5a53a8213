"""GPU products: memory as torch sees it, bandwidth, compute and interconnect.

Sources: vLLM startup logs for torch-visible memory (H100, H200: docs/sizing.md), NVIDIA datasheets and
aiconfigurator's system files for bandwidth and TFLOP/s. `torch_total_gib` is what vLLM multiplies by
--gpu-memory-utilization; it is *not* the marketing size. Products without a measured figure carry an estimate
(driver-reported MiB minus the reserve seen on H100/H200) and say so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

MIB_PER_GIB = 1024


class Interconnect(StrEnum):
    NVLINK = "nvlink"
    PCIE = "pcie"


@dataclass(frozen=True)
class GpuProduct:
    """One GPU product, keyed by the name NVIDIA GPU Feature Discovery puts in `nvidia.com/gpu.product`."""

    product: str
    aliases: tuple[str, ...]
    family: str  # GFD nvidia.com/gpu.family: ampere, ada-lovelace, hopper, blackwell
    memory_mib: int  # driver-reported total (nvidia-smi, GFD nvidia.com/gpu.memory)
    torch_total_gib: float  # torch.cuda.mem_get_info()[1], what vLLM budgets from
    torch_total_measured: bool  # False: estimated from memory_mib
    hbm_tb_per_s: float  # peak memory bandwidth, TB/s (10^12 B/s)
    bf16_tflops: float  # dense
    fp8_tflops: float | None  # dense; None: no FP8 tensor cores
    interconnect: Interconnect
    link_gb_per_s: float  # per direction, GB/s: NVLink per GPU, or PCIe x16
    fp4_tflops: float | None = None

    @property
    def supports_fp8(self) -> bool:
        return self.fp8_tflops is not None

    @property
    def short_name(self) -> str:
        return self.aliases[0] if self.aliases else self.product


# Share of the driver-reported memory that torch does not see. Measured: 0.57% on H100 (81,559 MiB -> 79.19 GiB),
# 0.42% on H200. Estimates use a deliberately larger 1% so an unmeasured product is never over-promised.
DRIVER_RESERVE_FRACTION = 0.01


def estimated_torch_total_gib(memory_mib: int) -> float:
    """Torch-visible memory of a product we have no measurement for: driver total minus the usual reserve."""
    return round(memory_mib / MIB_PER_GIB * (1 - DRIVER_RESERVE_FRACTION), 2)


PRODUCTS: tuple[GpuProduct, ...] = (
    GpuProduct(
        product="NVIDIA-H200",
        aliases=("H200", "H200-SXM", "NVIDIA-H200-141GB-HBM3e"),
        family="hopper",
        memory_mib=143771,
        torch_total_gib=139.81,
        torch_total_measured=True,
        hbm_tb_per_s=4.8,
        bf16_tflops=989.0,
        fp8_tflops=1979.0,
        interconnect=Interconnect.NVLINK,
        link_gb_per_s=450.0,
    ),
    GpuProduct(
        product="NVIDIA-H100-80GB-HBM3",
        aliases=("H100", "H100-SXM", "H100-80GB"),
        family="hopper",
        memory_mib=81559,
        torch_total_gib=79.19,
        torch_total_measured=True,
        hbm_tb_per_s=3.35,
        bf16_tflops=989.0,
        fp8_tflops=1979.0,
        interconnect=Interconnect.NVLINK,
        link_gb_per_s=450.0,
    ),
    GpuProduct(
        product="NVIDIA-B200",
        aliases=("B200",),
        family="blackwell",
        memory_mib=183359,
        torch_total_gib=estimated_torch_total_gib(183359),
        torch_total_measured=False,
        hbm_tb_per_s=7.7,
        bf16_tflops=2250.0,
        fp8_tflops=4500.0,
        fp4_tflops=9000.0,
        interconnect=Interconnect.NVLINK,
        link_gb_per_s=900.0,
    ),
    GpuProduct(
        product="NVIDIA-A100-SXM4-80GB",
        aliases=("A100-80GB", "A100", "A100-SXM4-80GB"),
        family="ampere",
        memory_mib=81920,
        torch_total_gib=estimated_torch_total_gib(81920),
        torch_total_measured=False,
        hbm_tb_per_s=2.039,
        bf16_tflops=312.0,
        fp8_tflops=None,
        interconnect=Interconnect.NVLINK,
        link_gb_per_s=300.0,
    ),
    GpuProduct(
        product="NVIDIA-L40S",
        aliases=("L40S",),
        family="ada-lovelace",
        memory_mib=46068,
        torch_total_gib=estimated_torch_total_gib(46068),
        torch_total_measured=False,
        hbm_tb_per_s=0.864,
        bf16_tflops=362.0,
        fp8_tflops=733.0,
        interconnect=Interconnect.PCIE,
        link_gb_per_s=32.0,
    ),
)


class UnknownGpuProductError(LookupError):
    def __init__(self, name: str, known: Iterable[GpuProduct]) -> None:
        choices = ", ".join(f"{p.product} ({p.short_name})" for p in known)
        super().__init__(f"unknown GPU product {name!r}; known products: {choices}")
        self.name = name


def _normalise(name: str) -> str:
    return name.strip().upper().replace(" ", "-").replace("_", "-")


def lookup(name: str, catalog: Iterable[GpuProduct] = PRODUCTS) -> GpuProduct:
    """Find a product by its GFD name or an alias, case-insensitively (`h200`, `NVIDIA-H200`, `NVIDIA H200`)."""
    products = tuple(catalog)
    wanted = _normalise(name)
    for product in products:
        names = (product.product, *product.aliases)
        if wanted in {_normalise(n) for n in names} or wanted in {_normalise("NVIDIA-" + a) for a in product.aliases}:
            return product
    raise UnknownGpuProductError(name, products)


def from_node_labels(product: str, memory_mib: int | None) -> GpuProduct:
    """A product seen on a Node: the catalog entry when we know it, else an estimate from the labelled memory.

    Unknown products get conservative performance figures of zero so the performance model refuses to guess.
    """
    try:
        return lookup(product)
    except UnknownGpuProductError:
        if memory_mib is None:
            raise
        return GpuProduct(
            product=product,
            aliases=(),
            family="unknown",
            memory_mib=memory_mib,
            torch_total_gib=estimated_torch_total_gib(memory_mib),
            torch_total_measured=False,
            hbm_tb_per_s=0.0,
            bf16_tflops=0.0,
            fp8_tflops=None,
            interconnect=Interconnect.PCIE,
            link_gb_per_s=0.0,
        )
