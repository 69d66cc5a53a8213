"""GPU pools from Node labels (GPU Feature Discovery), merged with declared pools."""

from typing import Any

from rightsizer.adapters.settings import DEFAULT_POOL_LABELS
from rightsizer.facts.gpus import lookup
from rightsizer.kube.discovery import discover
from rightsizer.sizing.pools import GpuPool, merge


def node(
    name: str, product: str, gpus: int = 8, pool: str | None = None, memory: str = "143771", unschedulable: bool = False
) -> dict[str, Any]:
    labels = {"nvidia.com/gpu.product": product, "nvidia.com/gpu.memory": memory}
    if pool:
        labels["rightsizer.dev/pool"] = pool
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "unschedulable": unschedulable,
            "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
        },
        "status": {"allocatable": {"nvidia.com/gpu": str(gpus)}},
    }


def test_nodes_group_by_pool_label_then_by_product() -> None:
    pools = discover(
        [
            node("a", "NVIDIA-H200", pool="h200-spot"),
            node("b", "NVIDIA-H200", pool="h200-spot"),
            node("c", "NVIDIA-H100-80GB-HBM3", memory="81559"),
            node("d", "NVIDIA-H200", unschedulable=True),
            {"metadata": {"name": "cpu", "labels": {}}, "status": {"allocatable": {}}},
        ],
        DEFAULT_POOL_LABELS,
    )
    by_name = {p.name: p for p in pools}
    assert set(by_name) == {"h200-spot", "nvidia-h100-80gb-hbm3"}
    spot = by_name["h200-spot"]
    assert (spot.gpus_per_node, spot.max_nodes, spot.discovered_nodes) == (8, 2, 2)
    assert spot.node_selector == {"rightsizer.dev/pool": "h200-spot"}
    assert spot.tolerations[0].key == "nvidia.com/gpu" and spot.tolerations[0].operator == "Equal"
    assert by_name["nvidia-h100-80gb-hbm3"].node_selector == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}


def test_unknown_product_is_estimated_from_labelled_memory() -> None:
    pools = discover([node("x", "NVIDIA-RTX-PRO-6000", memory="97887")], DEFAULT_POOL_LABELS)
    assert pools[0].gpu.torch_total_gib < 97887 / 1024
    assert not pools[0].gpu.torch_total_measured


def test_declared_pool_adds_a_price_and_scale_from_zero_pools() -> None:
    discovered = discover([node("a", "NVIDIA-H200", pool="h200")], DEFAULT_POOL_LABELS)
    declared = [
        GpuPool("h200", lookup("H200"), 8, 10, price_per_gpu_hour=3.5),
        GpuPool("b200", lookup("B200"), 8, 4, price_per_gpu_hour=6.0),
    ]
    merged = {p.name: p for p in merge(discovered, declared)}
    assert merged["h200"].price_per_gpu_hour == 3.5 and merged["h200"].max_nodes == 10
    assert merged["h200"].node_selector == {"rightsizer.dev/pool": "h200"}
    assert merged["b200"].discovered_nodes == 0
