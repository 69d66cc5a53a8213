"""Overflow on the local plane: with the h200 pool full of other pods, an LLMDeployment that prefers H200 and allows
H100 serves from h100 (with h100's own TP) behind its one Service; once the h200 nodes are free its replicas return
and the overflow workload goes; a scale-up (through the scale subresource, as the autoscaler writes it) while the
h200 pool is full lands Ready replicas on h100, and the scale-down back removes them, not the h200 ones; a
SizingPolicy that forbids overflow keeps them Pending and says so. Neither state writes anything once it is reached.
Prints the time from a full pool to Ready replicas on the next one, and from a scale-up to them
(docs/benchmarks.md)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.integration.kube import (
    GPU_TOLERATION,
    POOL_LABEL,
    describe_pods,
    gpu_nodes_report,
    wait_for,
    wait_for_empty_gpu_nodes,
)
from tests.integration.objects import (
    labels,
    limits,
    meta,
    node_name,
    phase,
    pod_status,
    ready_replicas,
    template_spec,
    typed,
)
from tests.integration.operator import RESYNC_SECONDS, OperatorProcess
from tests.integration.test_operator import (
    GROUP,
    PLURAL,
    VERSION,
    apply,
    condition,
    example,
    get,
    node_label,
    pod_list,
    require_condition,
    secret,
)

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def empty_gpu_nodes(core: client.CoreV1Api) -> None:
    """These cases need whole GPU nodes: start once the last test's pods are gone, or fail naming what holds them."""
    wait_for_empty_gpu_nodes(core)


NAME = "llama-3-1-70b-overflow"
OVERFLOW = f"{NAME}-h100"
GRACE_SECONDS = 5


def fill_h200(core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str, free_gpus: int = 0) -> None:
    """Every GPU of every h200 node taken by another tenant's pods (8 GPUs each, one per node), but `free_gpus` on
    one node (a last pod asks for the rest of it)."""
    nodes = len(core.list_node(label_selector=f"{POOL_LABEL}=h200").items)
    fillers = {"filler": (nodes, 8)} if not free_gpus else {"filler": (nodes - 1, 8), "filler-rest": (1, 8 - free_gpus)}
    for name, (replicas, gpus) in fillers.items():
        apps.create_namespaced_deployment(namespace, typed(client.V1Deployment, filler(name, replicas, gpus)))

    def full() -> bool:
        return all(
            ready_replicas(apps.read_namespaced_deployment(name, namespace)) == replicas
            for name, (replicas, _) in fillers.items()
        )

    try:
        wait_for(full, 90, "the h200 pool to be full")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\npods: {describe_pods(core, namespace)}\nnodes: {gpu_nodes_report(core)}") from exc


def filler(name: str, replicas: int, gpus: int) -> dict[str, Any]:
    selector = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": selector},
                "spec": {
                    "nodeSelector": {POOL_LABEL: "h200"},
                    "tolerations": [GPU_TOLERATION],
                    "containers": [
                        {
                            "name": "work",
                            "image": "registry.k8s.io/pause:3.10",
                            "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                        }
                    ],
                },
            },
        },
    }


def overflowing_body(**placement: Any) -> dict[str, Any]:
    body = example("llama-3.1-70b-h200-overflow-h100.yaml")
    body["spec"]["placement"].update(overflowAfterSeconds=GRACE_SECONDS, returnAfterSeconds=GRACE_SECONDS, **placement)
    return body


def workload(apps: client.AppsV1Api, namespace: str, name: str) -> client.V1Deployment | None:
    try:
        return apps.read_namespaced_deployment(name, namespace)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def served_addresses(discovery: client.DiscoveryV1Api, namespace: str) -> set[str]:
    slices = discovery.list_namespaced_endpoint_slice(namespace, label_selector=f"kubernetes.io/service-name={NAME}")
    return {
        address
        for s in slices.items
        for endpoint in s.endpoints or []
        if endpoint.conditions and endpoint.conditions.ready
        for address in endpoint.addresses
    }


def assert_steady(operator: OperatorProcess) -> None:
    """Once the state is reached, passes keep looking and write nothing."""
    time.sleep(RESYNC_SECONDS + 1)
    writes = operator.metric("rightsizer_api_writes_total")
    passes = operator.metric("rightsizer_reconciles_total")
    time.sleep(3 * RESYNC_SECONDS + 1)
    assert operator.metric("rightsizer_reconciles_total") > passes
    assert operator.metric("rightsizer_api_writes_total") == writes


@pytest.fixture
def discovery(core: client.CoreV1Api) -> client.DiscoveryV1Api:
    return client.DiscoveryV1Api(core.api_client)


@pytest.fixture
def no_overflow_policy(custom: client.CustomObjectsApi, namespace: str) -> Iterator[str]:
    name = f"{namespace}-no-overflow"
    custom.create_cluster_custom_object(
        "rightsizer.dev",
        "v1alpha1",
        "sizingpolicies",
        {
            "apiVersion": "rightsizer.dev/v1alpha1",
            "kind": "SizingPolicy",
            "metadata": {"name": name},
            "spec": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "allowed": {"overflow": False},
            },
        },
    )
    yield name
    custom.delete_cluster_custom_object("rightsizer.dev", "v1alpha1", "sizingpolicies", name)


def test_a_full_pool_overflows_onto_the_next_and_comes_back(
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
    discovery: client.DiscoveryV1Api,
    namespace: str,
) -> None:
    secret(core, namespace)
    fill_h200(core, apps, namespace)
    full_at = time.monotonic()
    apply(custom, namespace, overflowing_body())

    overflow = wait_for(
        lambda: d if (d := workload(apps, namespace, OVERFLOW)) is not None and ready_replicas(d) == 2 else None,
        120,
        f"two Ready replicas on h100 ({OVERFLOW})",
    )
    serving_after = time.monotonic() - full_at
    print(f"\noverflow: h200 full -> 2 Ready replicas on h100 in {serving_after:.1f} s (grace {GRACE_SECONDS} s)")
    obj = get(custom, namespace, NAME)
    plan, pools = obj["status"]["plan"], obj["status"]["pools"]
    assert (plan["pool"], plan["tensorParallelSize"]) == ("h200", 1)
    h100 = next(p for p in pools if p["pool"] == "h100")
    container = template_spec(overflow).containers[0]
    args = container.args or []
    assert args[args.index("--tensor-parallel-size") + 1] == str(h100["tensorParallelSize"]) == "2"
    assert limits(container)["nvidia.com/gpu"] == "2"
    on_h100 = [p for p in pod_list(core, namespace, NAME) if labels(p).get(POOL_LABEL) == "h100"]
    assert len(on_h100) == 2
    for pod in on_h100:
        assert node_label(core, node_name(pod), POOL_LABEL) == "h100"
    # The one Service reaches the overflow's pods (the primary's are Pending: no address yet).
    wait_for(
        lambda: served_addresses(discovery, namespace) == {pod_status(p).pod_ip for p in on_h100},
        30,
        "the Service's endpoints to be the h100 pods",
    )
    wait_for(
        lambda: (c := condition(get(custom, namespace, NAME), "Ready")) and c["status"] == "True",
        30,
        "Ready while overflowing",
    )
    obj = get(custom, namespace, NAME)
    assert require_condition(obj, "Overflowing")["status"] == "True"
    assert obj["status"]["placement"]["summary"] == "h200 0/2, h100 2/2 overflow"
    assert_steady(operator)

    # Free the h200 nodes: the primary's Pending pods land there, and after the return period the overflow goes.
    freed_at = time.monotonic()
    apps.delete_namespaced_deployment("filler", namespace)
    wait_for(lambda: workload(apps, namespace, OVERFLOW) is None, 120, "the overflow workload to go")
    back_after = time.monotonic() - freed_at
    print(f"overflow: h200 freed -> overflow removed in {back_after:.1f} s (return period {GRACE_SECONDS} s)")
    primary = apps.read_namespaced_deployment(NAME, namespace)
    assert ready_replicas(primary) == 2
    for pod in pod_list(core, namespace, NAME):
        if meta(pod).deletion_timestamp is None:
            assert node_label(core, node_name(pod), POOL_LABEL) == "h200"
    obj = wait_for(
        lambda: (o := get(custom, namespace, NAME)) and require_condition(o, "Overflowing")["status"] == "False" and o,
        30,
        "Overflowing=False",
    )
    assert obj["status"]["placement"]["summary"] == "h200 2/2"
    assert_steady(operator)


def test_a_scale_up_with_the_primary_full_lands_ready_on_the_overflow_pool_and_a_scale_down_removes_it_first(
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
    namespace: str,
) -> None:
    secret(core, namespace)
    fill_h200(core, apps, namespace, free_gpus=2)  # room for the 2 replicas of one H200 each, no more
    apply(custom, namespace, overflowing_body())
    wait_for(
        lambda: (d := workload(apps, namespace, NAME)) is not None and ready_replicas(d) == 2,
        120,
        "two Ready replicas on h200",
    )
    assert workload(apps, namespace, OVERFLOW) is None

    def on(pool: str) -> set[str]:
        return {
            str(meta(p).name)
            for p in pod_list(core, namespace, NAME)
            if labels(p).get(POOL_LABEL) == pool and meta(p).deletion_timestamp is None and phase(p) == "Running"
        }

    serving_h200 = on("h200")
    assert len(serving_h200) == 2

    # What the autoscaler writes on a scale-up: spec.replicas.desired through the scale subresource.
    scaled_at = time.monotonic()
    custom.patch_namespaced_custom_object_scale(GROUP, VERSION, namespace, PLURAL, NAME, {"spec": {"replicas": 4}})
    wait_for(
        lambda: (d := workload(apps, namespace, OVERFLOW)) is not None and ready_replicas(d) == 2,
        120,
        f"two Ready replicas on h100 ({OVERFLOW}) after the scale-up",
    )
    up_after = time.monotonic() - scaled_at
    print(
        f"\noverflow: scale-up 2 -> 4 with h200 full -> 2 more Ready on h100 in {up_after:.1f} s "
        f"(grace {GRACE_SECONDS} s)"
    )
    obj = wait_for(
        lambda: (
            (o := get(custom, namespace, NAME))["status"]["placement"]["summary"] == "h200 2/4, h100 2/2 overflow" and o
        ),
        30,
        "the placement to show both pools",
    )
    assert require_condition(obj, "Overflowing")["status"] == "True"
    assert on("h200") == serving_h200  # the h200 replicas stay where they were
    assert len(on("h100")) == 2

    # Scale back down: the overflow goes, the h200 replicas (the same pods) stay.
    scaled_at = time.monotonic()
    custom.patch_namespaced_custom_object_scale(GROUP, VERSION, namespace, PLURAL, NAME, {"spec": {"replicas": 2}})
    wait_for(lambda: workload(apps, namespace, OVERFLOW) is None, 60, "the overflow workload to go")
    down_after = time.monotonic() - scaled_at
    print(f"overflow: scale-down 4 -> 2 -> overflow removed in {down_after:.1f} s, h200 replicas untouched")
    assert on("h200") == serving_h200
    obj = wait_for(
        lambda: (o := get(custom, namespace, NAME))["status"]["placement"]["summary"] == "h200 2/2" and o,
        30,
        "the placement to show h200 alone",
    )
    assert require_condition(obj, "Overflowing")["status"] == "False"
    assert_steady(operator)


def test_a_policy_forbidding_overflow_keeps_them_pending_and_says_so(
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
    namespace: str,
    no_overflow_policy: str,
) -> None:
    secret(core, namespace)
    fill_h200(core, apps, namespace)
    apply(custom, namespace, overflowing_body())
    obj = wait_for(
        lambda: (
            (o := get(custom, namespace, NAME))
            and (c := condition(o, "Overflowing"))
            and c["reason"] == "OverflowNotAllowed"
            and o
        ),
        60,
        "Overflowing=False OverflowNotAllowed",
    )
    assert f"SizingPolicy {no_overflow_policy} forbids it" in require_condition(obj, "Overflowing")["message"]
    time.sleep(GRACE_SECONDS + RESYNC_SECONDS)
    assert workload(apps, namespace, OVERFLOW) is None
    pending = [p for p in pod_list(core, namespace, NAME) if phase(p) == "Pending"]
    assert len(pending) == 2
    assert require_condition(get(custom, namespace, NAME), "Ready")["status"] == "False"
    assert_steady(operator)
