"""The operator end to end on a real API server: examples become Available on the planned pools, drift is restored,
the steady state writes nothing, impossible specs become conditions, and it converges after SIGKILL and API-server
restarts."""

from __future__ import annotations

import copy
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.integration.kube import wait_for
from tests.integration.operator import RESYNC_SECONDS, OperatorProcess

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
GROUP, VERSION, PLURAL = "rightsizer.dev", "v1alpha1", "llmdeployments"
LWS = ("leaderworkerset.x-k8s.io", "v1", "leaderworkersets")


# --- helpers -----------------------------------------------------------------------------------------------------


def example(name: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "examples" / name).read_text())


def apply(custom: client.CustomObjectsApi, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    return dict(custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body))


def get(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    return dict(custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return dict(c)
    return None


def wait_condition(
    custom: client.CustomObjectsApi, namespace: str, name: str, kind: str, status: str = "True", timeout: float = 90
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = get(custom, namespace, name)
        c = condition(obj, kind)
        current = (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"]
        return obj if c and c["status"] == status and current else None

    return wait_for(check, timeout, f"{namespace}/{name} {kind}={status}")


def pod_list(core: client.CoreV1Api, namespace: str, name: str) -> list[client.V1Pod]:
    return list(core.list_namespaced_pod(namespace, label_selector=f"app.kubernetes.io/instance={name}").items)


def node_label(core: client.CoreV1Api, node: str, key: str) -> str | None:
    return (core.read_node(node).metadata.labels or {}).get(key)


def secret(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_secret(namespace, {"metadata": {"name": "hf-token"}, "stringData": {"token": "hf_x"}})


# --- the examples ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "file", ["llama-3.1-8b-h200.yaml", "llama-3.1-70b-fp8-h200.yaml", "llama-3.1-70b-bf16-h100.yaml"]
)
def test_single_node_example_becomes_available_on_its_pool(
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
    namespace: str,
    file: str,
) -> None:
    secret(core, namespace)
    body = example(file)
    name = body["metadata"]["name"]
    apply(custom, namespace, body)
    obj = wait_condition(custom, namespace, name, "Available")
    plan = obj["status"]["plan"]
    assert condition(obj, "Ready")["status"] == "True"  # type: ignore[index]
    deployment = apps.read_namespaced_deployment(name, namespace)
    container = deployment.spec.template.spec.containers[0]
    assert container.args == plan["vllmArgs"]
    assert container.resources.limits["nvidia.com/gpu"] == str(plan["gpusPerReplica"])
    pods = pod_list(core, namespace, name)
    assert len(pods) == obj["status"]["replicas"] == plan["replicas"]
    for pod in pods:
        assert node_label(core, pod.spec.node_name, "rightsizer.dev/pool") == plan["pool"]
        assert node_label(core, pod.spec.node_name, "nvidia.com/gpu.product") == plan["gpuProduct"]
    owner = deployment.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.controller) == ("LLMDeployment", name, True)
    assert deployment.metadata.managed_fields[0].manager == "rightsizer"


def test_405b_runs_as_a_leader_worker_set_across_two_h100_nodes(
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    namespace: str,
) -> None:
    body = example("llama-3.1-405b-h100-multinode.yaml")
    name = body["metadata"]["name"]
    apply(custom, namespace, body)
    obj = wait_condition(custom, namespace, name, "Available", timeout=120)
    plan = obj["status"]["plan"]
    assert (plan["tensorParallelSize"], plan["pipelineParallelSize"], plan["nodesPerReplica"]) == (8, 2, 2)
    lws = custom.get_namespaced_custom_object(*LWS[:2], namespace, LWS[2], name)
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == 2
    pods = pod_list(core, namespace, name)
    assert len(pods) == 2
    assert len({p.spec.node_name for p in pods}) == 2
    assert all(node_label(core, p.spec.node_name, "rightsizer.dev/pool") == "h100" for p in pods)
    assert all(p.spec.containers[0].resources.limits["nvidia.com/gpu"] == "8" for p in pods)
    # rightsizer's Service (not LWS's headless one) answers on the OpenAI port, selecting only leaders.
    service = core.read_namespaced_service(name, namespace)
    assert service.spec.cluster_ip != "None" and service.spec.ports[0].port == 8000
    assert service.spec.selector["leaderworkerset.sigs.k8s.io/worker-index"] == "0"
    assert condition(obj, "Ready")["status"] == "True"  # type: ignore[index]


# --- behaviour ---------------------------------------------------------------------------------------------------


def small(name: str = "chat", **spec: Any) -> dict[str, Any]:
    body = example("llama-3.1-8b-h200.yaml")
    body["metadata"]["name"] = name
    body["spec"].update(spec)
    return body


def test_drift_is_restored_and_the_steady_state_writes_nothing(
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
    namespace: str,
) -> None:
    apply(custom, namespace, small())
    wait_condition(custom, namespace, "chat", "Ready")

    apps.patch_namespaced_deployment("chat", namespace, {"spec": {"replicas": 3}})
    wait_for(lambda: apps.read_namespaced_deployment("chat", namespace).spec.replicas == 1, 30, "replicas restored")
    core.delete_namespaced_service("chat", namespace)
    wait_for(lambda: core.read_namespaced_service("chat", namespace), 30, "Service recreated")
    wait_condition(custom, namespace, "chat", "Ready")

    time.sleep(RESYNC_SECONDS + 1)  # let the writes caused by the drift settle
    versions = _resource_versions(custom, core, apps, namespace)
    writes = operator.metric("rightsizer_api_writes_total")
    resyncs = operator.metric("rightsizer_reconciles_total")
    time.sleep(3 * RESYNC_SECONDS + 1)
    assert operator.metric("rightsizer_reconciles_total") > resyncs  # it did look again...
    assert operator.metric("rightsizer_api_writes_total") == writes  # ...and wrote nothing
    assert _resource_versions(custom, core, apps, namespace) == versions


def _resource_versions(
    custom: client.CustomObjectsApi, core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str
) -> tuple[str, ...]:
    return (
        get(custom, namespace, "chat")["metadata"]["resourceVersion"],
        apps.read_namespaced_deployment("chat", namespace).metadata.resource_version,
        core.read_namespaced_service("chat", namespace).metadata.resource_version,
    )


def test_spec_change_replans_and_rolls_the_pods(
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
    namespace: str,
) -> None:
    apply(custom, namespace, small())
    before = wait_condition(custom, namespace, "chat", "Ready")["status"]["plan"]
    old_pods = {p.metadata.name for p in pod_list(core, namespace, "chat")}
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "chat", {"spec": {"serving": {"maxModelLen": 8192}}}
    )
    after = wait_condition(custom, namespace, "chat", "Ready")["status"]["plan"]
    assert before["maxModelLen"] == 32768 and after["maxModelLen"] == 8192
    wait_for(
        lambda: "8192" in apps.read_namespaced_deployment("chat", namespace).spec.template.spec.containers[0].args,
        30,
        "new args",
    )
    wait_for(
        lambda: (
            {p.metadata.name for p in pod_list(core, namespace, "chat")}.isdisjoint(old_pods)
            and all(p.status.phase == "Running" for p in pod_list(core, namespace, "chat"))
        ),
        60,
        "pods replaced",
    )


def test_scale_subresource(
    operator: OperatorProcess, custom: client.CustomObjectsApi, apps: client.AppsV1Api, namespace: str
) -> None:
    apply(custom, namespace, small())
    wait_condition(custom, namespace, "chat", "Ready")
    custom.patch_namespaced_custom_object_scale(GROUP, VERSION, namespace, PLURAL, "chat", {"spec": {"replicas": 3}})
    wait_for(lambda: apps.read_namespaced_deployment("chat", namespace).spec.replicas == 3, 30, "3 replicas")
    obj = wait_for(
        lambda: (o := get(custom, namespace, "chat"))["status"].get("readyReplicas") == 3 and o, 60, "3 ready"
    )
    assert obj["status"]["replicas"] == 3
    scale = custom.get_namespaced_custom_object_scale(GROUP, VERSION, namespace, PLURAL, "chat")
    assert scale["status"]["replicas"] == 3 and "app.kubernetes.io/instance=chat" in scale["status"]["selector"]
    custom.patch_namespaced_custom_object_scale(GROUP, VERSION, namespace, PLURAL, "chat", {"spec": {"replicas": 9}})
    wait_for(lambda: apps.read_namespaced_deployment("chat", namespace).spec.replicas == 4, 30, "clamped to max 4")


def test_impossible_spec_is_a_condition_and_running_replicas_stay(
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    apps: client.AppsV1Api,
    namespace: str,
) -> None:
    apply(custom, namespace, small("nowhere", gpu={"products": ["L40S"]}))
    obj = wait_condition(custom, namespace, "nowhere", "Sized", "False")
    sized = condition(obj, "Sized")
    assert sized is not None and sized["reason"] == "NoFeasiblePlan" and "spec.gpu.products" in sized["message"]
    with pytest.raises(ApiException):
        apps.read_namespaced_deployment("nowhere", namespace)

    apply(custom, namespace, small())
    wait_condition(custom, namespace, "chat", "Ready")
    deployment = apps.read_namespaced_deployment("chat", namespace)
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "chat", {"spec": {"gpu": {"tensorParallelSize": 3}}}
    )
    obj = wait_condition(custom, namespace, "chat", "Sized", "False")
    assert "spec.gpu.tensorParallelSize" in condition(obj, "Sized")["message"]  # type: ignore[index]
    assert condition(obj, "Degraded")["status"] == "True"  # type: ignore[index]
    assert condition(obj, "Available")["status"] == "True"  # type: ignore[index]
    time.sleep(RESYNC_SECONDS + 1)
    assert apps.read_namespaced_deployment("chat", namespace).metadata.resource_version == (
        deployment.metadata.resource_version
    )


def test_pool_out_of_gpus_is_reported(
    operator: OperatorProcess, custom: client.CustomObjectsApi, core: client.CoreV1Api, namespace: str
) -> None:
    """One more whole-node replica than the H100 pool has nodes: the last one cannot be scheduled."""
    nodes = len(core.list_node(label_selector="nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3").items)
    body = small(
        "big",
        model={"name": "meta-llama/Llama-3.1-8B-Instruct"},
        gpu={"products": ["H100"], "tensorParallelSize": 8},
        replicas={"min": nodes + 1, "max": nodes + 1},
    )
    apply(custom, namespace, body)
    wait_condition(custom, namespace, "big", "Degraded")
    obj = wait_for(
        lambda: (o := get(custom, namespace, "big"))["status"].get("readyReplicas") == nodes and o,
        60,
        f"the {nodes} replicas that fit to be ready",
    )
    assert condition(obj, "Degraded")["reason"] == "Unschedulable"  # type: ignore[index]
    assert "Insufficient nvidia.com/gpu" in condition(obj, "Degraded")["message"]  # type: ignore[index]
    assert condition(obj, "Ready")["status"] == "False"  # type: ignore[index]


def test_deleting_the_llmdeployment_collects_its_children(
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
    namespace: str,
) -> None:
    apply(custom, namespace, small())
    wait_condition(custom, namespace, "chat", "Ready")
    assert not get(custom, namespace, "chat")["metadata"].get("finalizers")  # deletion never waits for rightsizer
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "chat")
    wait_for(lambda: not apps.list_namespaced_deployment(namespace).items, 60, "Deployment collected")
    wait_for(lambda: not core.list_namespaced_service(namespace).items, 60, "Service collected")
    wait_for(lambda: not pod_list(core, namespace, "chat"), 60, "pods gone")


def test_reconcile_never_touches_spec_or_user_metadata(
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    namespace: str,
) -> None:
    body = small()
    body["metadata"]["labels"] = {"team": "search"}
    body["metadata"]["annotations"] = {"argocd.argoproj.io/tracking-id": "app:rightsizer.dev/LLMDeployment:ns/chat"}
    sent = copy.deepcopy(body)
    apply(custom, namespace, body)
    obj = wait_condition(custom, namespace, "chat", "Ready")
    assert obj["spec"] == get(custom, namespace, "chat")["spec"]
    assert obj["metadata"]["labels"] == sent["metadata"]["labels"]
    assert obj["metadata"]["annotations"] == sent["metadata"]["annotations"]
    assert obj["metadata"]["generation"] == 1
    managers = {m["manager"]: m for m in obj["metadata"]["managedFields"]}
    ours = [m for m in managers.values() if m["manager"] != "kubernetes-python-client"]  # the test's own create
    assert all(m.get("subresource") == "status" for m in ours), ours


# --- resilience --------------------------------------------------------------------------------------------------


def test_operator_killed_mid_reconcile_converges_after_restart(
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    apps: client.AppsV1Api,
    namespace: str,
) -> None:
    apply(custom, namespace, small(replicas={"min": 2, "max": 4}))
    wait_for(lambda: apps.read_namespaced_deployment("chat", namespace), 30, "Deployment created")
    operator.stop(signal.SIGKILL)  # typically between writing the children and writing the status
    operator.start()
    obj = wait_condition(custom, namespace, "chat", "Ready")
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"] == 1
    assert obj["status"]["readyReplicas"] == 2
    assert apps.read_namespaced_deployment("chat", namespace).spec.replicas == 2


def test_converges_after_an_api_server_restart(
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    apps: client.AppsV1Api,
    namespace: str,
    local_plane: Any,
) -> None:
    apply(custom, namespace, small())
    wait_condition(custom, namespace, "chat", "Ready")
    local_plane.restart("kube-apiserver")
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "chat", {"spec": {"replicas": {"min": 2, "max": 4}}}
    )
    wait_for(
        lambda: apps.read_namespaced_deployment("chat", namespace).spec.replicas == 2,
        90,
        "operator reacted after the restart",
    )
    assert operator.process is not None and operator.process.poll() is None
