"""The GPU product table: one entry per product, found by its GFD name or an alias, with figures from its datasheet.

Each product added to facts/gpus.PRODUCTS gets a test here pinning the figures its comment cites.
"""

from __future__ import annotations

import pytest

from rightsizer.api.v1alpha1.common import GpuPoolSpec
from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.errors import SizingError
from rightsizer.facts.gpus import (
    EXAMPLE_ALIASES,
    EXAMPLE_GFD_NAME,
    EXAMPLE_PRODUCTS,
    PRODUCTS,
    Interconnect,
    UnknownGpuProductError,
    from_node_labels,
    lookup,
)
from rightsizer.model.config import WeightFormat
from rightsizer.model.memory import EngineSettings, kv_layout
from rightsizer.sizing import SizingRequest, plan
from rightsizer.sizing.pools import GpuPool, default_pools, from_spec
from tests.unit.helpers import facts_of


def test_every_gfd_name_and_alias_names_one_product() -> None:
    names = [n.upper() for p in PRODUCTS for n in (p.product, *p.aliases)]
    assert len(names) == len(set(names))
    for product in PRODUCTS:
        for name in (product.product, *product.aliases):
            assert lookup(name) is product


def test_the_examples_the_api_descriptions_name_are_real_products() -> None:
    # The CRD descriptions and the unknown-product refusal quote these; they must keep resolving.
    assert lookup(EXAMPLE_GFD_NAME).product == EXAMPLE_GFD_NAME
    assert EXAMPLE_ALIASES == "H200, H100, B200, A100-80GB, L40S"
    assert all(lookup(name).product == name for name in EXAMPLE_PRODUCTS)


def test_b300_by_its_gfd_name_and_aliases() -> None:
    b300 = lookup("NVIDIA-B300-SXM6-AC")
    assert lookup("B300") is b300 and lookup("nvidia b300 sxm6 ac") is b300 and lookup("NVIDIA-B300") is b300
    assert (b300.family, b300.compute_capability) == ("blackwell", (10, 3))
    assert b300.memory_mib == 275040 and not b300.torch_total_measured
    assert b300.torch_total_gib == pytest.approx(275040 / 1024 * 0.99, abs=0.01)  # driver reserve, estimated
    assert (b300.hbm_tb_per_s, b300.bf16_tflops, b300.fp8_tflops, b300.fp4_tflops) == (7.75, 2250, 4500, 13500)
    assert (b300.interconnect, b300.link_gb_per_s) == (Interconnect.NVLINK, 900.0)


def test_rtx_pro_6000_server_edition_by_its_gfd_name_and_aliases() -> None:
    rtx = lookup("NVIDIA-RTX-PRO-6000-Blackwell-Server-Edition")
    assert lookup("RTX-PRO-6000") is rtx and lookup("nvidia rtx pro 6000 blackwell server edition") is rtx
    assert (rtx.family, rtx.compute_capability) == ("blackwell", (12, 0))
    assert rtx.memory_mib == 97887 and not rtx.torch_total_measured
    assert (rtx.hbm_tb_per_s, rtx.bf16_tflops, rtx.fp8_tflops, rtx.fp4_tflops) == (1.597, 467.8, 935.6, 1871.2)
    assert (rtx.interconnect, rtx.link_gb_per_s) == (Interconnect.PCIE, 64.0)


def test_h100_pcie_by_its_gfd_name_and_aliases_apart_from_the_sxm_module() -> None:
    pcie = lookup("NVIDIA-H100-PCIe")
    assert lookup("H100-PCIe") is pcie and lookup("nvidia h100 pcie") is pcie
    assert lookup("H100").product == "NVIDIA-H100-80GB-HBM3"  # a bare "H100" stays the SXM module
    assert (pcie.family, pcie.compute_capability, pcie.memory_mib) == ("hopper", (9, 0), 81559)
    assert not pcie.torch_total_measured and pcie.torch_total_gib < lookup("H100").torch_total_gib
    assert (pcie.hbm_tb_per_s, pcie.bf16_tflops, pcie.fp8_tflops, pcie.fp4_tflops) == (2.0, 756.5, 1513.0, None)
    assert (pcie.interconnect, pcie.link_gb_per_s) == (Interconnect.PCIE, 64.0)


def test_a_node_labelled_with_a_new_product_gets_the_table_entry_not_an_estimate() -> None:
    assert from_node_labels("NVIDIA-B300-SXM6-AC", 275040) is lookup("B300")
    unknown = from_node_labels("NVIDIA-B300-SXM6-XX", 275040)
    assert unknown.bf16_tflops == 0 and unknown.compute_capability == (0, 0)


def test_new_products_are_default_pools_and_declarable() -> None:
    assert {"b300", "rtx-pro-6000", "h100-pcie"} <= {p.name for p in default_pools()}
    spec = GpuPoolSpec.model_validate({"name": "rtx", "product": "RTX-PRO-6000", "gpusPerNode": 8})
    assert from_spec(spec).product == "NVIDIA-RTX-PRO-6000-Blackwell-Server-Edition"
    with pytest.raises(UnknownGpuProductError):
        lookup("RTX-PRO-6000-Workstation")


def _size(model: str, product: str, **spec: object) -> str:
    gpu = lookup(product)
    request = SizingRequest(
        LLMDeploymentSpec.model_validate({"model": {"name": model}, **spec}),
        facts_of(model),
        [GpuPool(gpu.short_name.lower(), gpu, 8, None)],
    )
    p = plan(request, model)
    return f"{p.gpu_product} TP{p.tensor_parallel_size} PP{p.pipeline_parallel_size}"


def test_llama_70b_bf16_fits_one_b300_but_needs_two_rtx_pro_6000() -> None:
    # 141 GB of bf16 weights: one B300 (~266 GiB usable) holds them with room for the KV cache; 96 GB cards need two.
    model = "meta-llama/Llama-3.1-70B-Instruct"
    assert _size(model, "B300", serving={"maxModelLen": 16384}) == "NVIDIA-B300-SXM6-AC TP1 PP1"
    assert _size(model, "RTX-PRO-6000", serving={"maxModelLen": 16384}).endswith("TP2 PP1")


def test_an_rtx_pro_6000_plan_names_the_estimated_memory() -> None:
    gpu = lookup("RTX-PRO-6000")
    model = "meta-llama/Llama-3.1-8B-Instruct"
    request = SizingRequest(
        LLMDeploymentSpec.model_validate({"model": {"name": model}}), facts_of(model), [GpuPool("rtx", gpu, 8, None)]
    )
    assert any("estimated conservatively" in w for w in plan(request, model).warnings)


@pytest.mark.parametrize(("product", "block"), [("H200", 64), ("B200", 128), ("B300", 128), ("RTX-PRO-6000", 16)])
def test_mla_block_size_follows_the_compute_capability(product: str, block: int) -> None:
    # FlashMLA on SM 9.0 and CUTLASS-MLA on SM 10.x force 64 and 128; SM 12.0 has neither and keeps vLLM's 16.
    facts = facts_of("deepseek-ai/DeepSeek-V2-Lite-Chat")
    settings = EngineSettings(1, 1, 256, 8192, 8192, 0.9, "bfloat16", "auto", WeightFormat.NONE)
    assert kv_layout(facts, settings, lookup(product), facts.layer_kinds).block_size == block


def test_an_unknown_product_is_refused_naming_the_examples() -> None:
    model = "meta-llama/Llama-3.1-8B-Instruct"
    request = SizingRequest(
        LLMDeploymentSpec.model_validate({"model": {"name": model}, "gpu": {"products": ["B400"]}}),
        facts_of(model),
        default_pools(),
    )
    with pytest.raises(SizingError) as err:
        plan(request, model)
    assert err.value.one_line() == (
        "spec.gpu.products: unknown GPU product 'B400'; use a GPU Feature Discovery name such as NVIDIA-H200 or an "
        "alias: H200, H100, B200, A100-80GB, L40S"
    )
