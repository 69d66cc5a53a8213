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
from tests.integration.objects import (
    custom_object,
    labels,
    limits,
    meta,
    node_name,
    phase,
    pod_spec,
    template_spec,
    typed,
)
from tests.integration.operator import RESYNC_SECONDS, OperatorProcess

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
GROUP, VERSION, PLURAL = "rightsizer.dev", "v1alpha1", "llmdeployments"
LWS = ("leaderworkerset.x-k8s.io", "v1", "leaderworkersets")


# --- helpers -----------------------------------------------------------------------------------------------------


def example(name: str) -> dict[str, Any]:
    manifest = yaml.safe_load((REPO / "examples" / name).read_text())
    assert isinstance(manifest, dict), f"examples/{name} is not one YAML mapping"
    return manifest


def apply(custom: client.CustomObjectsApi, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    return custom_object(custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body))


def get(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    return custom_object(custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return dict(c)
    return None


def require_condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    """The condition of type `kind`, which the test expects to be there."""
    found = condition(obj, kind)
    assert found is not None, f"no {kind} condition in {(obj.get('status') or {}).get('conditions')}"
    return found


def wait_condition(
    custom: client.CustomObjectsApi, namespace: str, name: str, kind: str, status: str = "True", timeout: float = 90
) -> dict[str, Any]:
    seen: list[str] = []  # what the object last showed, for the timeout's message

    def check() -> dict[str, Any] | None:
        obj = get(custom, namespace, name)
        c = condition(obj, kind)
        observed = (obj.get("status") or {}).get("observedGeneration")
        seen[:] = [status_summary(obj)]
        return obj if c and c["status"] == status and observed == obj["metadata"]["generation"] else None

    try:
        return wait_for(check, timeout, f"{namespace}/{name} {kind}={status}")
    except TimeoutError as err:
        raise TimeoutError(f"{err}; the object showed: {seen[0] if seen else 'nothing (never read)'}") from None


def status_summary(obj: dict[str, Any]) -> str:
    """generation, observedGeneration and each condition's type=status (reason), on one line."""
    found = obj.get("status") or {}
    conditions = ", ".join(f"{x['type']}={x['status']} ({x.get('reason')})" for x in found.get("conditions") or [])
    observed = found.get("observedGeneration")
    return f"generation {obj['metadata'].get('generation')}, observedGeneration {observed}, [{conditions}]"


def pod_list(core: client.CoreV1Api, namespace: str, name: str) -> list[client.V1Pod]:
    return list(core.list_namespaced_pod(namespace, label_selector=f"app.kubernetes.io/instance={name}").items)


def node_label(core: client.CoreV1Api, node: str, key: str) -> str | None:
    return labels(core.read_node(node)).get(key)


def secret(core: client.CoreV1Api, namespace: str) -> None:
    token = typed(client.V1Secret, {"metadata": {"name": "hf-token"}, "stringData": {"token": "hf_x"}})
    core.create_namespaced_secret(namespace, token)


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
    assert require_condition(obj, "Ready")["status"] == "True"
    deployment = apps.read_namespaced_deployment(name, namespace)
    container = template_spec(deployment).containers[0]
    assert container.args == plan["vllmArgs"]
    assert limits(container)["nvidia.com/gpu"] == str(plan["gpusPerReplica"])
    pods = pod_list(core, namespace, name)
    assert len(pods) == obj["status"]["replicas"] == plan["replicas"]
    for pod in pods:
        assert node_label(core, node_name(pod), "rightsizer.dev/pool") == plan["pool"]
        assert node_label(core, node_name(pod), "nvidia.com/gpu.product") == plan["gpuProduct"]
    owners, managers = meta(deployment).owner_references, meta(deployment).managed_fields
    assert owners and managers, meta(deployment)
    assert (owners[0].kind, owners[0].name, owners[0].controller) == ("LLMDeployment", name, True)
    assert managers[0].manager == "rightsizer"
    # The replicas' measured start-up on their pool (status.startup), once a reconcile has seen them Ready.
    startup = wait_for(
        lambda: (get(custom, namespace, name)["status"].get("startup") or {}).get("pools"), 30, "status.startup"
    )
    assert [(e["pool"], e["samples"]) for e in startup] == [(plan["pool"], plan["replicas"])]
    assert 0 <= startup[0]["p50Seconds"] <= startup[0]["p95Seconds"] < 120


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
    lws = custom_object(custom.get_namespaced_custom_object(*LWS[:2], namespace, LWS[2], name))
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == 2
    pods = pod_list(core, namespace, name)
    assert len(pods) == 2
    assert len({node_name(p) for p in pods}) == 2
    assert all(node_label(core, node_name(p), "rightsizer.dev/pool") == "h100" for p in pods)
    assert all(limits(pod_spec(p).containers[0])["nvidia.com/gpu"] == "8" for p in pods)
    # rightsizer's Service (not LWS's headless one) answers on the OpenAI port, selecting only leaders.
    spec = core.read_namespaced_service(name, namespace).spec
    assert spec is not None and spec.ports and spec.selector, spec
    assert spec.cluster_ip != "None" and spec.ports[0].port == 8000
    assert spec.selector["leaderworkerset.sigs.k8s.io/worker-index"] == "0"
    assert require_condition(obj, "Ready")["status"] == "True"


# --- behaviour ---------------------------------------------------------------------------------------------------


def small(name: str = "chat", **spec: Any) -> dict[str, Any]:
    """Llama 3.1 8B on H200, pinned to 2 GPUs per replica with a load one replica serves, whatever the performance
    model's calibration says (the example itself asks for 64 concurrent requests: three replicas at the slow edge)."""
    body = example("llama-3.1-8b-h200.yaml")
    body["metadata"]["name"] = name
    body["spec"]["workload"]["concurrency"] = 16
    body["spec"].setdefault("gpu", {})["tensorParallelSize"] = 2
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
) -> tuple[str | None, ...]:
    return (
        get(custom, namespace, "chat")["metadata"]["resourceVersion"],
        meta(apps.read_namespaced_deployment("chat", namespace)).resource_version,
        meta(core.read_namespaced_service("chat", namespace)).resource_version,
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
    old_pods = {meta(p).name for p in pod_list(core, namespace, "chat")}
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "chat", {"spec": {"serving": {"maxModelLen": 8192}}}
    )
    after = wait_condition(custom, namespace, "chat", "Ready")["status"]["plan"]
    assert before["maxModelLen"] == 32768 and after["maxModelLen"] == 8192
    wait_for(
        lambda: "8192" in (template_spec(apps.read_namespaced_deployment("chat", namespace)).containers[0].args or []),
        30,
        "new args",
    )
    wait_for(
        lambda: (
            {meta(p).name for p in pod_list(core, namespace, "chat")}.isdisjoint(old_pods)
            and all(phase(p) == "Running" for p in pod_list(core, namespace, "chat"))
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
    scale = custom_object(custom.get_namespaced_custom_object_scale(GROUP, VERSION, namespace, PLURAL, "chat"))
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
    assert "spec.gpu.tensorParallelSize" in require_condition(obj, "Sized")["message"]
    assert require_condition(obj, "Degraded")["status"] == "True"
    assert require_condition(obj, "Available")["status"] == "True"
    time.sleep(RESYNC_SECONDS + 1)
    assert meta(apps.read_namespaced_deployment("chat", namespace)).resource_version == (
        meta(deployment).resource_version
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
    assert require_condition(obj, "Degraded")["reason"] == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in require_condition(obj, "Degraded")["message"]
    assert require_condition(obj, "Ready")["status"] == "False"


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
