"""What one reconcile costs in a namespace of many LLMDeployments (docs/benchmarks.md, *Under load*): the neighbours'
GPU charges are parsed only when a namespace quota counts them, and then once per resourceVersion of each; the
indexes keep objects without metadata.managedFields."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from rightsizer.adapters.settings import OperatorSettings
from rightsizer.api.v1alpha1.sizingpolicy import SizingPolicy
from rightsizer.controller import handlers
from rightsizer.controller import reconcile as reconcile_module
from rightsizer.controller.reconcile import Observed, Reconciler
from tests.unit.fake_kube import FakeKube
from tests.unit.test_webhooks import FOUR_GPUS, H200_NODES, sized

JSON = dict[str, Any]


def neighbours(count: int, version: str = "1") -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    for i in range(count):
        body = sized(f"n{i}", 1)
        body["metadata"]["resourceVersion"] = version
        out.append(body)
    return out


def parsed_charges(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = getattr(reconcile_module, "charge_of")  # noqa: B009  (imported there, not re-exported)

    def counting(deployment: Any) -> Any:
        calls.append(str(deployment.metadata.get("name")))
        return real(deployment)

    monkeypatch.setattr(reconcile_module, "charge_of", counting)
    return calls


@pytest.mark.parametrize("quota", [False, True], ids=["no quota", "a namespace quota"])
def test_neighbours_are_parsed_only_under_a_quota_and_once_per_version(
    monkeypatch: pytest.MonkeyPatch, quota: bool
) -> None:
    calls = parsed_charges(monkeypatch)
    kube = FakeKube()
    reconciler = Reconciler(kube, OperatorSettings(allow_hub=False))
    body = sized("chat", 1)
    del body["status"]
    body["metadata"]["namespace"] = "team-a"
    others = neighbours(50)
    observed = Observed(
        nodes=list(H200_NODES),
        policies=[SizingPolicy.model_validate(FOUR_GPUS)] if quota else [],
        neighbours=others,
    )
    for _ in range(3):  # three reconciles of the same object: its create, its children appearing, a resync
        reconciler.reconcile(body, Observed(**{**observed.__dict__, "children": {}}))
    assert ("apply", "Deployment", "chat") in kube.verbs()  # sized and placed: the replicas were bounded
    assert len(calls) == (50 if quota else 0)
    if quota:
        others[7]["metadata"]["resourceVersion"] = "2"  # one neighbour changed: only it is parsed again
        reconciler.reconcile(body, Observed(**{**observed.__dict__, "children": {}}))
        assert calls[50:] == ["n7"]
        reconciler.forget("uid-n7")
        assert "uid-n7" not in reconciler._charges


def test_indexes_keep_objects_without_managed_fields() -> None:
    body: JSON = {"kind": "Pod", "metadata": {"name": "p", "managedFields": [{"manager": "x"}]}, "spec": {"a": 1}}
    kept = handlers.slim(body)
    assert kept == {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"a": 1}}
    assert body["metadata"]["managedFields"]  # kopf's own body is left as it is
    assert kept["spec"] is not body["spec"]  # a copy: kopf's parsed event is not kept alive by the index


def test_index_copies_share_their_keys_and_short_values() -> None:
    """Each watch event is parsed on its own: without interning, 1,000 pods hold 1,000 copies of every key."""
    raw = '{"metadata": {"name": "pod-%d", "labels": {"app.kubernetes.io/managed-by": "rightsizer"}}, "status": "True"}'
    a, b = (handlers.slim(json.loads(raw % i)) for i in (1, 2))
    assert a["metadata"]["labels"] == b["metadata"]["labels"]
    key_a = next(iter(a["metadata"]["labels"]))
    key_b = next(iter(b["metadata"]["labels"]))
    assert key_a is key_b
    assert a["metadata"]["labels"][key_a] is b["metadata"]["labels"][key_b]
    assert a["status"] is b["status"]
