"""The plane itself: scheduling against simulated GPU pools, garbage collection, LeaderWorkerSet.

These run on any cluster with the same pools (the local plane, or kind plus e2e/kind/add-gpu-nodes), and pin down
what every rightsizer integration test relies on.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from tests.integration.kube import (
    GPU_PRODUCT_LABEL,
    GPU_TOLERATION,
    describe_pods,
    gone,
    gpu_container,
    gpu_nodes_report,
    node_pool,
    pods,
    ready_pods,
    unschedulable_message,
    wait_for,
    wait_for_empty_gpu_nodes,
)
from tests.integration.objects import available_replicas, custom_object, labels, meta, node_name, phase, pod_spec, typed

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def empty_gpu_nodes(core: client.CoreV1Api) -> None:
    """These cases need whole GPU nodes: start once the last test's pods are gone, or fail naming what holds them."""
    wait_for_empty_gpu_nodes(core)


H200 = {GPU_PRODUCT_LABEL: "NVIDIA-H200"}
LWS_GROUP, LWS_VERSION, LWS_PLURAL = "leaderworkerset.x-k8s.io", "v1", "leaderworkersets"
LWS_NAME_LABEL = "leaderworkerset.sigs.k8s.io/name"


def deployment(name: str, template: dict[str, Any], replicas: int = 1) -> client.V1Deployment:
    selector = {"app": name}
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": selector}, "spec": template},
        },
    }
    return typed(client.V1Deployment, manifest)


def test_gpu_deployment_lands_on_an_h200_node_and_becomes_ready(
    core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str
) -> None:
    spec = {"containers": [gpu_container(8)], "nodeSelector": H200, "tolerations": [GPU_TOLERATION]}
    apps.create_namespaced_deployment(namespace, deployment("llm", spec))

    try:
        wait_for(
            lambda: available_replicas(apps.read_namespaced_deployment("llm", namespace)) == 1,
            90,
            "Deployment llm to have 1 available replica",
        )
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\npods: {describe_pods(core, namespace)}\nnodes: {gpu_nodes_report(core)}") from exc
    [pod] = ready_pods(core, namespace, "app=llm", 1) or pytest.fail(describe_pods(core, namespace))
    node = core.read_node(node_name(pod))
    assert labels(node)["rightsizer.dev/pool"] == "h200"
    assert labels(node)[GPU_PRODUCT_LABEL] == "NVIDIA-H200"
    assert node.status is not None and node.status.allocatable is not None, node.status
    assert node.status.allocatable["nvidia.com/gpu"] == "8"


def test_pod_asking_for_more_gpus_than_any_node_has_stays_pending(core: client.CoreV1Api, namespace: str) -> None:
    pod = {
        "metadata": {"name": "too-big"},
        "spec": {"containers": [gpu_container(16)], "tolerations": [GPU_TOLERATION]},
    }
    core.create_namespaced_pod(namespace, typed(client.V1Pod, pod))

    message = wait_for(lambda: unschedulable_message(core, namespace, "too-big"), 60, "the scheduler to give up")
    assert "Insufficient nvidia.com/gpu" in message
    pod_now = core.read_namespaced_pod("too-big", namespace)
    assert phase(pod_now) == "Pending"
    assert pod_spec(pod_now).node_name is None


def test_pod_without_the_gpu_toleration_is_kept_off_gpu_nodes(core: client.CoreV1Api, namespace: str) -> None:
    """The pools' NoSchedule taint works: a GPU pod that forgets the toleration never lands."""
    pod = {"metadata": {"name": "no-toleration"}, "spec": {"containers": [gpu_container(1)], "nodeSelector": H200}}
    core.create_namespaced_pod(namespace, typed(client.V1Pod, pod))

    message = wait_for(lambda: unschedulable_message(core, namespace, "no-toleration"), 60, "the scheduler to give up")
    assert "untolerated taint" in message


def test_deleting_an_owner_deletes_its_dependents(core: client.CoreV1Api, namespace: str) -> None:
    """The controller-manager's garbage collector follows ownerReferences."""
    owner = core.create_namespaced_config_map(namespace, typed(client.V1ConfigMap, {"metadata": {"name": "owner"}}))
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": meta(owner).uid}
    dependent = {"metadata": {"name": "dependent", "ownerReferences": [reference]}}
    core.create_namespaced_config_map(namespace, typed(client.V1ConfigMap, dependent))

    core.delete_namespaced_config_map("owner", namespace)

    wait_for(lambda: gone(lambda: core.read_namespaced_config_map("dependent", namespace)), 60, "GC of the dependent")


def test_deleting_a_deployment_removes_its_replicasets_and_pods(
    core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str
) -> None:
    """The whole cascade, including kwok finalizing the deletion of pods that have no kubelet."""
    spec = {"containers": [{"name": "app", "image": "registry.invalid/app:test"}]}
    apps.create_namespaced_deployment(namespace, deployment("web", spec, replicas=2))
    wait_for(lambda: ready_pods(core, namespace, "app=web", 2), 90, "2 ready pods of web")

    apps.delete_namespaced_deployment("web", namespace, propagation_policy="Background")

    wait_for(lambda: not apps.list_namespaced_replica_set(namespace).items, 60, "ReplicaSets to be collected")
    wait_for(lambda: not pods(core, namespace, "app=web"), 60, "pods to be deleted")


def test_leaderworkerset_of_two_lands_on_two_h200_nodes(
    core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str
) -> None:
    pod_spec = {"containers": [gpu_container(8)], "nodeSelector": H200, "tolerations": [GPU_TOLERATION]}
    lws = {
        "apiVersion": f"{LWS_GROUP}/{LWS_VERSION}",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": "llm"},
        "spec": {"replicas": 1, "leaderWorkerTemplate": {"size": 2, "workerTemplate": {"spec": pod_spec}}},
    }
    custom.create_namespaced_custom_object(LWS_GROUP, LWS_VERSION, namespace, LWS_PLURAL, lws)

    try:
        group = wait_for(lambda: ready_pods(core, namespace, f"{LWS_NAME_LABEL}=llm", 2), 120, "2 ready LWS pods")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\npods: {describe_pods(core, namespace)}\nnodes: {gpu_nodes_report(core)}") from exc
    nodes = {node_name(pod) for pod in group}
    assert len(nodes) == 2, describe_pods(core, namespace)
    assert {node_pool(core, node) for node in nodes} == {"h200"}
    # LWS's pod webhook ran (it stamps the group index), and the controller saw the group become ready.
    assert all(labels(pod).get("leaderworkerset.sigs.k8s.io/group-index") == "0" for pod in group)
    wait_for(
        lambda: (
            custom_object(custom.get_namespaced_custom_object(LWS_GROUP, LWS_VERSION, namespace, LWS_PLURAL, "llm"))
            .get("status", {})
            .get("readyReplicas")
            == 1
        ),
        60,
        "LeaderWorkerSet llm to report 1 ready replica",
    )
