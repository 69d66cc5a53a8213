"""The Argo CD health check (manifests/argocd/llmdeployment-health.lua) on live LLMDeployments the operator reconciled:
each scenario is created on the real API server, waited for, and judged by Argo CD's own interpreter
(`argocd admin settings resource-overrides health`, tests/argocd/health.py).

`RIGHTSIZER_WRITE_FIXTURES=1` also saves each object (spec and status as the operator wrote them) to
tests/argocd/fixtures/, which tests/argocd/test_health.py replays without a cluster.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.argocd.health import EXPECTED, FIXTURES, health, require_argocd
from tests.integration.conftest import PROGRESS_DEADLINE_SECONDS
from tests.integration.kube import wait_for
from tests.integration.objects import custom_object
from tests.integration.operator import OperatorProcess
from tests.integration.test_operator import GROUP, PLURAL, VERSION, apply, condition, get, small, wait_condition

pytestmark = pytest.mark.integration
require_argocd()

KEEP_METADATA = ("name", "generation", "labels", "annotations")


def save(name: str, obj: dict[str, Any]) -> None:
    if os.environ.get("RIGHTSIZER_WRITE_FIXTURES") != "1":
        return
    metadata = {k: v for k, v in obj["metadata"].items() if k in KEEP_METADATA}
    fixture = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": metadata}
    fixture |= {"spec": obj["spec"], "status": obj["status"]}
    header = f"# Captured from the local plane by tests/integration/test_argocd_health.py ({name}).\n"
    (FIXTURES / f"{name}.yaml").write_text(
        header + yaml.safe_dump(fixture, sort_keys=False, width=120, allow_unicode=True)
    )


def judged(name: str, obj: dict[str, Any]) -> dict[str, str]:
    save(name, obj)
    return health(obj)


def first_status(
    custom: client.CustomObjectsApi, namespace: str, name: str, matches: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Poll fast for a passing state (kwok makes pods ready within a second). Judged after the wait: each verdict runs
    Argo CD's binary (tests/argocd/health.py)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        obj = get(custom, namespace, name)
        if matches(obj):
            return obj
        time.sleep(0.02)
    raise TimeoutError(f"{namespace}/{name} never showed the state; last status: {obj.get('status')}")


def test_ready(operator: OperatorProcess, custom: client.CustomObjectsApi, namespace: str) -> None:
    apply(custom, namespace, small("ready"))
    obj = wait_condition(custom, namespace, "ready", "Ready")
    assert judged("ready", obj)["status"] == EXPECTED["ready"]


def test_rolling_out(operator: OperatorProcess, custom: client.CustomObjectsApi, namespace: str) -> None:
    apply(custom, namespace, small("rolling", replicas={"min": 2, "max": 2}))

    def rolling(obj: dict[str, Any]) -> bool:
        progressing = condition(obj, "Progressing")
        return progressing is not None and progressing["reason"] == "RollingOut"

    assert judged("rolling-out", first_status(custom, namespace, "rolling", rolling))["status"] == "Progressing"


def test_not_sized(operator: OperatorProcess, custom: client.CustomObjectsApi, namespace: str) -> None:
    apply(custom, namespace, small("nowhere", gpu={"products": ["L40S"]}))
    obj = wait_condition(custom, namespace, "nowhere", "Sized", "False")
    result = judged("not-sized", obj)
    assert result["status"] == EXPECTED["not-sized"] and "NoFeasiblePlan" in result["message"]


def test_unschedulable(
    operator: OperatorProcess, custom: client.CustomObjectsApi, core: client.CoreV1Api, namespace: str
) -> None:
    h100_nodes = len(core.list_node(label_selector="rightsizer.dev/pool=h100").items)
    replicas = h100_nodes + 1  # one 8-GPU replica per node: one more than fits
    gpu = {"products": ["H100"], "tensorParallelSize": 8}
    body = small("big", gpu=gpu, replicas={"min": replicas, "max": replicas})
    apply(custom, namespace, body)

    def waiting(obj: dict[str, Any]) -> bool:
        progressing, degraded = condition(obj, "Progressing"), condition(obj, "Degraded")
        return bool(progressing and progressing["reason"] == "Unschedulable" and degraded)

    # First the routine wait for a node (within the operator's progress deadline, conftest.py): Progressing.
    result = judged("waiting-for-gpus", first_status(custom, namespace, "big", waiting))
    assert result["status"] == EXPECTED["waiting-for-gpus"] and "Insufficient nvidia.com/gpu" in result["message"]
    # Then, past the deadline, a stuck replica: Degraded.
    obj = wait_condition(custom, namespace, "big", "Degraded", timeout=PROGRESS_DEADLINE_SECONDS + 60)
    result = judged("unschedulable", obj)
    assert result["status"] == EXPECTED["unschedulable"] and "Unschedulable" in result["message"]


def test_policy_tightened_after_admission(
    operator: OperatorProcess, custom: client.CustomObjectsApi, namespace: str
) -> None:
    apply(custom, namespace, small("chat", replicas={"min": 2, "max": 2}))
    wait_condition(custom, namespace, "chat", "Ready")
    policy = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SizingPolicy",
        "metadata": {"name": f"{namespace}-tight"},
        "spec": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "limits": {"maxReplicas": 1},
        },
    }
    custom.create_cluster_custom_object(GROUP, VERSION, "sizingpolicies", policy)
    try:
        obj = wait_condition(custom, namespace, "chat", "PolicyCompliant", "False")
        result = judged("policy-violation", obj)
        assert result["status"] == EXPECTED["policy-violation"] and "maxReplicas" in result["message"]
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, "sizingpolicies", f"{namespace}-tight")


def test_scaled_to_zero(operator: OperatorProcess, custom: client.CustomObjectsApi, namespace: str) -> None:
    apply(custom, namespace, small("idle", replicas={"min": 0, "max": 0}))
    obj = wait_condition(custom, namespace, "idle", "Sized")
    assert judged("scaled-to-zero", obj)["status"] == EXPECTED["scaled-to-zero"]


def test_a_spec_change_is_progressing_until_the_operator_acts(
    operator: OperatorProcess, custom: client.CustomObjectsApi, namespace: str
) -> None:
    apply(custom, namespace, small("chat"))
    wait_condition(custom, namespace, "chat", "Ready")
    patch = {"spec": {"serving": {"maxModelLen": 8192}}}
    obj = custom_object(custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "chat", patch))
    assert obj["status"]["observedGeneration"] < obj["metadata"]["generation"]  # the patch response precedes it
    assert judged("generation-behind", obj)["status"] == EXPECTED["generation-behind"]
    wait_for(lambda: health(get(custom, namespace, "chat"))["status"] == "Healthy", 60, "Healthy again")
