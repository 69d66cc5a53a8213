"""GPU products: memory as torch sees it, bandwidth, compute and interconnect. The one table of GPU products.

Sources: vLLM startup logs for torch-visible memory (H100, H200: docs/sizing.md), NVIDIA datasheets and
aiconfigurator's system files for bandwidth and TFLOP/s. `torch_total_gib` is what vLLM multiplies by
--gpu-memory-utilization; it is *not* the marketing size. Products without a measured figure carry an estimate
(driver-reported MiB minus the reserve seen on H100/H200) and say so.

Adding a product is one `GpuProduct` entry in PRODUCTS (its GFD name, aliases and cited figures) plus its test in
tests/unit/test_gpus.py: lookup, pools, the CRD descriptions and the error messages all read this table.
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
    compute_capability: tuple[int, int]  # GFD nvidia.com/gpu.compute.major/.minor; (0, 0) when unknown
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
        compute_capability=(9, 0),
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
        compute_capability=(9, 0),
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
        compute_capability=(10, 0),
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
        compute_capability=(8, 0),
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
        compute_capability=(8, 9),
        memory_mib=46068,
        torch_total_gib=estimated_torch_total_gib(46068),
        torch_total_measured=False,
        hbm_tb_per_s=0.864,
        bf16_tflops=362.0,
        fp8_tflops=733.0,
        interconnect=Interconnect.PCIE,
        link_gb_per_s=32.0,
    ),
    GpuProduct(
        # GFD sanitises the NVML name "NVIDIA B300 SXM6 AC" (spaces -> '-'; k8s-device-plugin internal/lm/resource.go
        # getProductName), as nodeSelectors on B300 nodes spell it. "AC" is the air-cooled HGX module; the
        # liquid-cooled one reports another suffix we have not seen, so it is not listed: label such a pool's
        # product with this name or declare the pool.
        product="NVIDIA-B300-SXM6-AC",
        aliases=("B300", "B300-SXM6-AC", "B300-SXM"),
        family="blackwell",
        compute_capability=(10, 3),
        # 275,040 MiB: nvidia-smi on an HGX B300 (ai-dynamo/aiconfigurator systems/b300_sxm.yaml mem_capacity);
        # the datasheet's 288 GB is the HBM3e capacity before the driver's share.
        memory_mib=275040,
        torch_total_gib=estimated_torch_total_gib(275040),
        torch_total_measured=False,
        # 7.75 TB/s: aiconfigurator b300_sxm.yaml mem_bw (NVIDIA quotes "up to 8 TB/s" per GPU on HGX B300).
        hbm_tb_per_s=7.75,
        # Dense tensor TFLOP/s per GPU: NVIDIA's HGX B300 spec table per 8 GPUs (FP16/BF16 36 and FP8 72 PFLOPS
        # with sparsity, so 2,250 and 4,500 dense per GPU; NVFP4 144 | 108 PFLOPS with | without sparsity, so
        # 13,500 dense), as quoted by fibermall.com/blog/?p=17161 and TEASBench's peak table (nvidia.com itself was
        # not readable from here); aiconfigurator b300_sxm.yaml agrees on BF16 and FP8 and says 14,000 for FP4: the
        # lower FP4 figure is kept so the model never over-promises.
        bf16_tflops=2250.0,
        fp8_tflops=4500.0,
        fp4_tflops=13500.0,
        # NVLink 5: 1.8 TB/s bidirectional per GPU (HGX B300 spec), 900 GB/s per direction (aiconfigurator
        # intra_node_bw).
        interconnect=Interconnect.NVLINK,
        link_gb_per_s=900.0,
    ),
    GpuProduct(
        # GFD sanitises the NVML name "NVIDIA H100 PCIe". The PCIe card has the SXM module's 81,559 MiB (nvidia-smi
        # as quoted in many public logs, e.g. "NVIDIA H100 PCIe, 81559 MiB") but HBM2e at 2 TB/s, lower clocks and
        # no NVLink switch: its figures are aiconfigurator's estimate-only spec (ai-dynamo/aiconfigurator@095f58a5
        # aic-core/src/aiconfigurator_core/systems/h100_pcie.yaml: mem_bw 2 TB/s; bfloat16 756.5 and fp8 1,513
        # dense TFLOP/s, half NVIDIA's with-sparsity figures; PCIe Gen5 x16 at 64 GB/s per direction). Torch-visible
        # memory is estimated, not the SXM module's measurement.
        product="NVIDIA-H100-PCIe",
        aliases=("H100-PCIe", "H100-PCIe-80GB"),
        family="hopper",
        compute_capability=(9, 0),
        memory_mib=81559,
        torch_total_gib=estimated_torch_total_gib(81559),
        torch_total_measured=False,
        hbm_tb_per_s=2.0,
        bf16_tflops=756.5,
        fp8_tflops=1513.0,
        interconnect=Interconnect.PCIE,
        link_gb_per_s=64.0,
    ),
    GpuProduct(
        # GFD sanitises the NVML name "NVIDIA RTX PRO 6000 Blackwell Server Edition"; the Workstation and Max-Q
        # editions report other names (and other clocks) and are not this entry.
        product="NVIDIA-RTX-PRO-6000-Blackwell-Server-Edition",
        aliases=("RTX-PRO-6000", "RTX-PRO-6000-SE", "RTX-PRO-6000-Server"),
        family="blackwell",
        compute_capability=(12, 0),
        # 97,887 MiB: nvidia-smi (ai-dynamo/aiconfigurator systems/rtx_pro_6000_server.yaml); 96 GB GDDR7 marketed.
        memory_mib=97887,
        torch_total_gib=estimated_torch_total_gib(97887),
        torch_total_measured=False,
        # 1,597 GB/s: NVIDIA's RTX PRO 6000 Blackwell Server Edition page (the Workstation Edition's is 1,792).
        hbm_tb_per_s=1.597,
        # Dense tensor TFLOP/s at the Server Edition's 2,430 MHz maximum SM clock (aiconfigurator
        # rtx_pro_6000_server.yaml: bfloat16 467.8, fp8 935.6, fp4 1871.2), below the Workstation Edition's
        # boost-clock marketing figures.
        bf16_tflops=467.8,
        fp8_tflops=935.6,
        fp4_tflops=1871.2,
        # No NVLink: PCIe Gen5 x16, 64 GB/s per direction (aiconfigurator pcie_bw).
        interconnect=Interconnect.PCIE,
        link_gb_per_s=64.0,
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
            compute_capability=(0, 0),
            memory_mib=memory_mib,
            torch_total_gib=estimated_torch_total_gib(memory_mib),
            torch_total_measured=False,
            hbm_tb_per_s=0.0,
            bf16_tflops=0.0,
            fp8_tflops=None,
            interconnect=Interconnect.PCIE,
            link_gb_per_s=0.0,
        )


# The products the API's field descriptions and refusals name as examples ("e.g. NVIDIA-H200; aliases H200, H100,
# ..."). A fixed few rather than all of PRODUCTS, so adding a product does not change the generated CRDs; each must
# stay in PRODUCTS (tests/unit/test_gpus.py).
EXAMPLE_PRODUCTS = ("NVIDIA-H200", "NVIDIA-H100-80GB-HBM3", "NVIDIA-B200", "NVIDIA-A100-SXM4-80GB", "NVIDIA-L40S")
EXAMPLE_GFD_NAME = EXAMPLE_PRODUCTS[0]
EXAMPLE_ALIASES = ", ".join(lookup(name).short_name for name in EXAMPLE_PRODUCTS)
