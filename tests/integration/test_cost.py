"""status.cost and the cost metrics on the local plane, with declared pool prices (RIGHTSIZER_POOLS_FILE): GPUs held
per product, price per hour, the usage history through a scale-up, the series removed with the deployment, and the
cost-allocation labels on the vLLM pods."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.integration.autoscaling_env import namespaced_operator
from tests.integration.conftest import NAMESPACE_LABEL
from tests.integration.kube import gone, wait_for
from tests.integration.objects import labels as labels_of
from tests.integration.objects import typed
from tests.integration.operator import OperatorProcess
from tests.integration.test_operator import GROUP, PLURAL, VERSION, apply, get, small, wait_condition

pytestmark = pytest.mark.integration

PRICE = 3.5  # $ per H200 GPU-hour, declared for the plane's h200 pool
H200 = "NVIDIA-H200"


@pytest.fixture
def namespace(core: client.CoreV1Api) -> Iterator[str]:
    """Outside the session's it-* prefix: the session operator (conftest.py, no declared prices) must not reconcile
    it too, or the two would take turns writing status.cost with different prices."""
    name = f"cost-{uuid.uuid4().hex[:10]}"
    core.create_namespace(typed(client.V1Namespace, {"metadata": {"name": name, "labels": {NAMESPACE_LABEL: "true"}}}))
    wait_for(lambda: core.read_namespaced_service_account("default", name), 30, f"ServiceAccount {name}/default")
    yield name
    try:
        core.delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise
    wait_for(lambda: gone(lambda: core.read_namespace(name)), 120, f"namespace {name} to be deleted")


@pytest.fixture
def priced_operator(kubeconfig: str, crds: None, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    """An operator for this namespace only, with the h200 pool's price declared as a platform team would."""
    pools = tmp_path / "pools.yaml"
    pools.write_text(yaml.safe_dump([{"name": "h200", "product": H200, "gpusPerNode": 8, "pricePerGpuHour": PRICE}]))
    env = {"RIGHTSIZER_POOLS_FILE": str(pools)}
    process = namespaced_operator(kubeconfig, namespace, tmp_path / "operator.log", env)
    process.start()
    yield process
    process.stop()


def series(operator: OperatorProcess, name: str, namespace: str, deployment: str) -> dict[str, float]:
    """Every sample of one metric for one deployment, keyed by its label set."""
    text = httpx.get(operator.metrics_url, timeout=5).text
    out = {}
    for labels, value in re.findall(rf"^{re.escape(name)}{{([^}}]*)}} (\S+)$", text, re.MULTILINE):
        if f'namespace="{namespace}"' in labels and f'name="{deployment}"' in labels:
            out[labels] = float(value)
    return out


def cost_of(custom: client.CustomObjectsApi, namespace: str) -> dict[str, Any]:
    return dict((get(custom, namespace, "chat").get("status") or {}).get("cost") or {})


def test_cost_in_status_and_metrics_with_declared_prices(
    priced_operator: OperatorProcess, custom: client.CustomObjectsApi, core: client.CoreV1Api, namespace: str
) -> None:
    apply(custom, namespace, small("chat", replicas={"min": 1, "max": 1}))
    obj = wait_condition(custom, namespace, "chat", "Ready")
    per_replica = obj["status"]["plan"]["gpusPerReplica"]
    cost = wait_for(
        lambda: (c := cost_of(custom, namespace)).get("gpus") == [{"product": H200, "gpus": per_replica}] and c,
        30,
        "status.cost with the ready replica's GPUs",
    )
    assert cost["pricePerHour"] == pytest.approx(per_replica * PRICE) and cost["priceSource"] == "declared"
    # One entry per change: 0 while the pod was not yet bound to a node (if a reconcile saw that), then the replica.
    assert [u["gpus"] for u in cost["usage"]] in ([per_replica], [0, per_replica])
    gpus = series(priced_operator, "rightsizer_gpus", namespace, "chat")
    assert list(gpus.values()) == [per_replica] and f'gpu_product="{H200}"' in next(iter(gpus))
    assert list(series(priced_operator, "rightsizer_cost_per_hour", namespace, "chat").values()) == [
        pytest.approx(per_replica * PRICE)
    ]
    assert series(priced_operator, "rightsizer_cost_per_million_tokens", namespace, "chat") == {}  # no load metrics

    pods = core.list_namespaced_pod(namespace, label_selector="rightsizer.dev/llmdeployment=chat").items
    assert pods and all(labels_of(p)["rightsizer.dev/model"] == "meta-llama.Llama-3.1-8B-Instruct" for p in pods)

    # A scale-up: the history gains an entry, the price doubles.
    patch = {"spec": {"replicas": {"min": 2, "max": 2}}}
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "chat", patch)
    cost = wait_for(
        lambda: (c := cost_of(custom, namespace)).get("pricePerHour") == pytest.approx(2 * per_replica * PRICE) and c,
        60,
        "the scale-up in status.cost",
    )
    assert [u["gpus"] for u in cost["usage"]][-2:] == [per_replica, 2 * per_replica]
    assert cost["peakGpusLastDay"] <= 2 * per_replica  # the day's figures run up to the last full hour

    # Deleted: its series go at the next resync.
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "chat")
    wait_for(
        lambda: (
            not series(priced_operator, "rightsizer_cost_per_hour", namespace, "chat")
            and not series(priced_operator, "rightsizer_gpus", namespace, "chat")
        ),
        60,
        "the cost series of the deleted deployment to go",
    )
