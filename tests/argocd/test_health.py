"""The Argo CD health check over LLMDeployments captured from the local plane (tests/argocd/fixtures, written by
tests/integration/test_argocd_health.py), plus the edge cases a real object passes through too briefly to capture.
The script runs under lupa's Lua 5.1 with Argo CD's sandbox (tests/argocd/health.py)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.argocd.health import EXPECTED, FIXTURES, SCRIPT, health

ARGOCD_CM = SCRIPT.parent / "argocd-cm.yaml"


def fixture(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((FIXTURES / f"{name}.yaml").read_text()))


def test_every_scenario_has_a_captured_fixture() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_captured_objects(name: str) -> None:
    result = health(fixture(name))
    assert result["status"] == EXPECTED[name]
    assert result["message"]


def test_healthy_says_what_was_planned() -> None:
    message = health(fixture("ready"))["message"]
    assert "per replica" in message and "on pool" in message  # the Sized condition's plan summary


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
    result = health(obj())
    assert result["status"] == status, case
    assert message in result["message"], case


def test_the_script_runs_without_string_or_math(tmp_path: Path) -> None:
    """The sandbox is real: a script that uses the string library fails here as it would in Argo CD."""
    bad = tmp_path / "bad.lua"
    bad.write_text('hs = {}\nhs.status = string.upper("healthy")\nreturn hs\n')
    with pytest.raises(Exception, match="string"):
        health(fixture("ready"), script=bad)


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
