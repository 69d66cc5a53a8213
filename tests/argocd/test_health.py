"""The LLMDeployment health check under Argo CD's own interpreter (`argocd admin settings resource-overrides health`,
tests/argocd/health.py) over LLMDeployments captured from the local plane (tests/argocd/fixtures, written by
tests/integration/test_argocd_health.py), plus the edge cases a real object passes through too briefly to capture.
The table in docs/install.md is checked against the same verdicts."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.argocd.health import ARGOCD_CM, EXPECTED, FIXTURES, SCRIPT, documented_mapping, health, require_argocd

require_argocd()


def fixture(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((FIXTURES / f"{name}.yaml").read_text()))


def test_every_scenario_has_a_captured_fixture() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.yaml")) == sorted(EXPECTED)


def test_the_table_in_install_md_is_what_argo_cd_does() -> None:
    assert documented_mapping() == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_captured_objects(name: str) -> None:
    result = health(fixture(name))
    assert result["status"] == EXPECTED[name]
    assert result["message"]


def test_healthy_says_what_was_planned() -> None:
    message = health(fixture("ready"))["message"]
    assert "per replica" in message and "on pool" in message  # the Sized condition's plan summary


def test_waiting_for_gpus_says_why() -> None:
    """A scale-up that waits for a node is routine: Progressing, with the scheduler's reason."""
    message = health(fixture("waiting-for-gpus"))["message"]
    assert "Insufficient nvidia.com/gpu" in message


def test_stuck_replicas_say_for_how_long() -> None:
    message = health(fixture("unschedulable"))["message"]
    assert message.startswith("Unschedulable: ") and "Insufficient nvidia.com/gpu" in message


def with_status(name: str, change: Callable[[dict[str, Any]], Any]) -> Callable[[], dict[str, Any]]:
    """A captured object, changed: built when the test runs (the fixtures may be re-captured meanwhile)."""

    def build() -> dict[str, Any]:
        obj = copy.deepcopy(fixture(name))
        change(obj)
        return obj

    return build


def stale_degraded(obj: dict[str, Any]) -> None:
    for condition in obj["status"]["conditions"]:
        if condition["type"] == "Degraded":
            condition.update(status="True", reason="Unschedulable", observedGeneration=0)


@pytest.mark.parametrize(
    ("case", "obj", "status", "message"),
    [
        ("just created", lambda: {"metadata": {"name": "x", "generation": 1}, "spec": {}}, "Progressing", "Waiting"),
        (
            "status without observedGeneration",
            lambda: {"metadata": {"generation": 1}, "spec": {}, "status": {"conditions": []}},
            "Progressing",
            "Waiting",
        ),
        (
            "a newer generation not yet acted on",
            with_status("ready", lambda o: o["metadata"].update(generation=o["metadata"]["generation"] + 1)),
            "Progressing",
            "generation",
        ),
        (
            "a Degraded condition left from an older generation is ignored",
            with_status("ready", stale_degraded),
            "Healthy",
            "",
        ),
        (
            "zero replicas through the scale subresource",
            with_status("ready", lambda o: o["spec"]["replicas"].update(min=0, desired=0)),
            "Suspended",
            "zero",
        ),
        (
            "desired 0 is clamped to min 1: not suspended",
            with_status("ready", lambda o: o["spec"]["replicas"].update(min=1, desired=0)),
            "Healthy",
            "",
        ),
        (
            "a plan that cannot be sized while suspended is still Degraded",
            with_status("not-sized", lambda o: o["spec"].update(replicas={"min": 0, "max": 0})),
            "Degraded",
            "Cannot be sized",
        ),
    ],
)
def test_edge_cases(case: str, obj: Callable[[], dict[str, Any]], status: str, message: str) -> None:
    result = health({"apiVersion": "rightsizer.dev/v1alpha1", "kind": "LLMDeployment", **obj()})
    assert result["status"] == status, case
    assert message in result["message"], case


def test_argocd_cm_carries_this_script_and_the_ignore_rules() -> None:
    (cm,) = [d for d in yaml.safe_load_all(ARGOCD_CM.read_text()) if d]
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["name"] == "argocd-cm"
    assert cm["data"]["resource.customizations.health.rightsizer.dev_LLMDeployment"] == SCRIPT.read_text()
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        rule = yaml.safe_load(
            cm["data"][f"resource.customizations.ignoreDifferences.admissionregistration.k8s.io_{kind}"]
        )
        assert rule["jqPathExpressions"] == [".webhooks[]?.clientConfig.caBundle"]
    rule = yaml.safe_load(cm["data"]["resource.customizations.ignoreDifferences.rightsizer.dev_LLMDeployment"])
    assert rule["jsonPointers"] == ["/spec/replicas/desired"]


def test_a_broken_script_is_an_error_not_a_verdict(tmp_path: Any) -> None:
    """The harness can fail: a script that calls the string library (absent in Argo CD's sandbox) gives no health."""
    (cm,) = [d for d in yaml.safe_load_all(ARGOCD_CM.read_text()) if d]
    key = "resource.customizations.health.rightsizer.dev_LLMDeployment"
    cm["data"][key] = 'hs = {}\nhs.status = string.upper("healthy")\nreturn hs\n'
    broken = tmp_path / "argocd-cm.yaml"
    broken.write_text(yaml.safe_dump(cm))
    with pytest.raises(ValueError, match="string"):
        health(fixture("ready"), argocd_cm=broken)
