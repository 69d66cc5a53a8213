"""Platform policy through the real API server: the API server calls rightsizer's admission webhook, which refuses,
defaults and enforces the namespace quota (also under concurrent applies); policy tightened later is enforced at
reconcile; with the webhook down, applies fail closed."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from e2e.cluster import localplane
from tests.integration.kube import wait_for
from tests.integration.objects import custom_object
from tests.integration.operator import OperatorProcess
from tests.integration.test_operator import (
    GROUP,
    PLURAL,
    VERSION,
    apply,
    condition,
    get,
    require_condition,
    small,
    wait_condition,
)

pytestmark = pytest.mark.integration
POLICIES = "sizingpolicies"


@pytest.fixture
def webhook(operator: OperatorProcess, local_plane: Any) -> OperatorProcess:
    if operator.extra_env.get("RIGHTSIZER_WEBHOOK_ENABLED") != "true":
        pytest.skip("the admission webhook runs only against the local plane")
    return operator


@pytest.fixture
def policy(custom: client.CustomObjectsApi, namespace: str) -> Iterator[Callable[..., dict[str, Any]]]:
    """Create SizingPolicies that select only this test's namespace; deleted afterwards."""
    created: list[str] = []

    def make(name: str, **spec: Any) -> dict[str, Any]:
        full = f"{namespace}-{name}"
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "SizingPolicy",
            "metadata": {"name": full},
            "spec": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}, **spec},
        }
        created.append(full)
        result = custom_object(custom.create_cluster_custom_object(GROUP, VERSION, POLICIES, body))
        # The webhook judges with the operator's cache: give the watch a moment to deliver the new policy.
        wait_for(lambda: _dry_run_sees(custom, namespace, full), 30, f"the operator to see policy {full}")
        return result

    yield make
    for name in created:
        try:
            custom.delete_cluster_custom_object(GROUP, VERSION, POLICIES, name)
        except ApiException as err:
            if err.status != 404:
                raise


def _dry_run_sees(custom: client.CustomObjectsApi, namespace: str, policy_name: str) -> bool:
    """True once a dry-run create is judged with the new policy in force (denied, or defaulted with a warning
    naming it); policies without a visible effect on `small()` are waited for with a plain delay instead."""
    try:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, small("probe"), dry_run="All")
    except ApiException as err:
        return policy_name in str(err.body)
    return True


def denial(custom: client.CustomObjectsApi, namespace: str, body: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as err:
        apply(custom, namespace, body)
    assert err.value.status in (403, 422), err.value.body
    return str(err.value.body)


def test_a_plan_over_policy_is_refused_with_the_policy_field_limit_and_value(
    webhook: OperatorProcess, custom: client.CustomObjectsApi, namespace: str, policy: Callable[..., Any]
) -> None:
    policy("gpu-budget", limits={"maxGpusPerReplica": 8})
    body = small("big", model={"name": "meta-llama/Llama-3.1-405B-Instruct"}, gpu={"products": ["H100"]})
    message = denial(custom, namespace, body)
    assert "plan needs 16 × NVIDIA-H100-80GB-HBM3 per replica" in message
    assert f"SizingPolicy {namespace}-gpu-budget allows 8" in message
    apply(custom, namespace, small())  # within the limit: admitted


def test_defaults_are_filled_in_and_reported(
    webhook: OperatorProcess, custom: client.CustomObjectsApi, namespace: str, policy: Callable[..., Any]
) -> None:
    policy("defaults", defaults={"slo": {"ttftP95Ms": 900, "itlP95Ms": 70}, "gpuMemoryUtilization": 0.85})
    body = small()
    del body["spec"]["slo"]
    created = apply(custom, namespace, body)
    assert created["spec"]["slo"] == {"ttftP95Ms": 900, "itlP95Ms": 70}
    assert created["spec"]["serving"]["gpuMemoryUtilization"] == 0.85
    obj = wait_condition(custom, namespace, "chat", "Ready")
    assert obj["status"]["plan"]["gpuMemoryUtilization"] == 0.85


def test_several_policies_combine_to_the_most_restrictive(
    webhook: OperatorProcess, custom: client.CustomObjectsApi, namespace: str, policy: Callable[..., Any]
) -> None:
    policy("hopper", allowed={"gpuProducts": ["H200", "H100"]}, limits={"maxReplicas": 8})
    policy("h200-only", allowed={"gpuProducts": ["H200"]}, limits={"maxReplicas": 2})
    message = denial(custom, namespace, small("h100", gpu={"products": ["H100"]}))
    assert f"{namespace}-h200-only" in message
    message = denial(custom, namespace, small("many", replicas={"min": 3, "max": 4}))
    assert "maxReplicas" in message and f"{namespace}-h200-only" in message
    apply(custom, namespace, small(replicas={"min": 1, "max": 2}))


def test_namespace_quota_is_enforced(
    webhook: OperatorProcess, custom: client.CustomObjectsApi, namespace: str, policy: Callable[..., Any]
) -> None:
    policy("quota", limits={"namespaceQuota": [{"product": "NVIDIA-H200", "maxGpus": 2}]})
    one_gpu = {"products": ["H200"], "tensorParallelSize": 1}
    apply(custom, namespace, small("first", gpu=one_gpu, replicas={"min": 2, "max": 2}))
    wait_condition(custom, namespace, "first", "Ready")
    message = denial(custom, namespace, small("second", gpu=one_gpu))
    assert "namespace" in message and "NVIDIA-H200" in message and f"{namespace}-quota" in message


def test_concurrent_applies_cannot_both_pass_a_quota_that_fits_one(
    webhook: OperatorProcess, custom: client.CustomObjectsApi, namespace: str, policy: Callable[..., Any]
) -> None:
    policy("quota", limits={"namespaceQuota": [{"product": "NVIDIA-H200", "maxGpus": 1}]})
    results: dict[str, str] = {}
    barrier = threading.Barrier(4)

    def create(name: str) -> None:
        barrier.wait()
        try:
            apply(custom, namespace, small(name, gpu={"products": ["H200"], "tensorParallelSize": 1}))
            results[name] = "admitted"
        except ApiException as err:
            results[name] = f"refused {err.status}"

    threads = [threading.Thread(target=create, args=(f"race-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results.values()).count("admitted") == 1, results


def test_dry_run_returns_the_plan(webhook: OperatorProcess, kubeconfig: str, namespace: str) -> None:
    kubectl = localplane.CACHE / "bin" / f"k8s-v{localplane.read_versions()['K8S_VERSION']}" / "kubectl"
    result = subprocess.run(
        [str(kubectl), "-n", namespace, "apply", "--dry-run=server", "-f", "-"],
        input=yaml.safe_dump(small()),
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "KUBECONFIG": kubeconfig},
    )
    assert result.returncode == 0, result.stderr
    assert "Warning: rightsizer plan: " in result.stderr and "NVIDIA-H200 per replica on pool h200 (TP" in result.stderr
    assert "(server dry run)" in result.stdout


def test_policy_tightened_after_admission_stops_growth_and_keeps_running_replicas(
    webhook: OperatorProcess,
    custom: client.CustomObjectsApi,
    apps: client.AppsV1Api,
    namespace: str,
    policy: Callable[..., Any],
) -> None:
    apply(custom, namespace, small(replicas={"min": 2, "max": 4}))
    wait_condition(custom, namespace, "chat", "Ready")
    policy("late", allowed={"gpuProducts": ["H100"]})
    obj = wait_condition(custom, namespace, "chat", "PolicyCompliant", "False")
    assert f"{namespace}-late" in require_condition(obj, "PolicyCompliant")["message"]
    assert require_condition(obj, "Ready")["status"] == "False"
    assert apps.read_namespaced_deployment("chat", namespace).spec.replicas == 2
    custom.patch_namespaced_custom_object_scale(GROUP, VERSION, namespace, PLURAL, "chat", {"spec": {"replicas": 4}})
    assert apps.read_namespaced_deployment("chat", namespace).spec.replicas == 2


def test_webhook_down_fails_closed_then_recovers(
    webhook: OperatorProcess, custom: client.CustomObjectsApi, namespace: str
) -> None:
    webhook.stop(signal.SIGKILL)  # no graceful shutdown: the webhook configuration stays registered
    try:
        with pytest.raises(ApiException) as err:
            apply(custom, namespace, small())
        assert err.value.status == 500 and "failed calling webhook" in str(err.value.body)
        assert get_or_none(custom, namespace, "chat") is None
    finally:
        webhook.start()
    wait_for(lambda: _created(custom, namespace), 30, "an apply to succeed once the webhook is back")
    wait_condition(custom, namespace, "chat", "Ready")


def _created(custom: client.CustomObjectsApi, namespace: str) -> bool:
    try:
        apply(custom, namespace, small())
    except ApiException as err:
        return bool(err.status == 409)  # created by an earlier attempt (ApiException.status is untyped)
    return True


def get_or_none(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return get(custom, namespace, name)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def test_policies_report_whether_they_are_accepted(
    webhook: OperatorProcess, custom: client.CustomObjectsApi, namespace: str, policy: Callable[..., Any]
) -> None:
    policy("good", allowed={"gpuProducts": ["H200"]})
    policy("typo", allowed={"gpuProducts": ["H2OO"]})

    def accepted(name: str) -> str | None:
        obj = custom_object(custom.get_cluster_custom_object(GROUP, VERSION, POLICIES, f"{namespace}-{name}"))
        found = condition(obj, "Accepted")
        return found["status"] if found and obj["status"].get("observedGeneration") == 1 else None

    wait_for(lambda: accepted("good") == "True", 30, "the valid policy Accepted")
    wait_for(lambda: accepted("typo") == "False", 30, "the policy with an unknown product not Accepted")
    obj = custom_object(custom.get_cluster_custom_object(GROUP, VERSION, POLICIES, f"{namespace}-typo"))
    assert "H2OO" in require_condition(obj, "Accepted")["message"]
