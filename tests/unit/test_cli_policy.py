"""`rightsizer plan --policy` and `rightsizer policy explain`, on the shipped example policies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rightsizer.cli.main import main
from tests.unit.helpers import REPO

POLICIES = REPO / "examples" / "policies"
CHAT = POLICIES / "deployments" / "llama-8b-chat.yaml"
BIG = POLICIES / "deployments" / "llama-405b-h100.yaml"
DENIAL = (
    "error: denied by policy: plan needs 16 × NVIDIA-H100-80GB-HBM3 per replica; SizingPolicy gpu-budget allows 8 "
    "(limits.maxGpusPerReplica)"
)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def plan_args(manifest: Path, *extra: str) -> list[str]:
    return ["plan", "-f", str(manifest), "--policy", str(POLICIES), "--offline", *extra]


def test_allowed_plan_shows_the_defaults_it_applied(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(plan_args(CHAT, "--namespace-labels", "gpu-tier=standard"), capsys)
    assert (code, err) == (0, "")
    assert "Policy (namespace ml-chat: SizingPolicy gpu-budget, gpu-pools, platform-defaults)" in out
    assert "spec.slo.ttftP95Ms = 1000: default from SizingPolicy platform-defaults (defaults.slo.ttftP95Ms)" in out
    assert "spec.serving.engine.image = registry.example.com/vllm/vllm-openai:v0.19.0" in out
    assert out.rstrip().endswith("verdict   allowed")


def test_denied_plan_exits_2_with_one_line_naming_policy_field_limit_and_value(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(plan_args(BIG, "--namespace-labels", "gpu-tier=standard"), capsys)
    assert code == 2
    assert err.splitlines() == [DENIAL]
    assert "verdict   denied" in out and "16 GPU · TP 8 · PP 2" in out


def test_the_namespace_labels_decide_which_policies_apply(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(plan_args(BIG), capsys)  # no gpu-tier label: gpu-budget does not select ml-chat
    assert code == 0
    assert "Policy (namespace ml-chat: SizingPolicy gpu-pools, platform-defaults)" in out


def test_json_output_carries_the_decision(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(plan_args(BIG, "--namespace-labels", "gpu-tier=standard", "-o", "json"), capsys)
    assert code == 2
    data = json.loads(out)
    assert data["plan"]["gpusPerReplica"] == 16
    policy = data["policy"]
    assert policy["allowed"] is False
    assert policy["violations"] == [
        {
            "kind": "TooManyGpusPerReplica",
            "field": "spec.gpu",
            "limit": "limits.maxGpusPerReplica",
            "policies": ["gpu-budget"],
            "message": DENIAL.removeprefix("error: denied by policy: "),
        }
    ]
    assert {d["field"] for d in policy["defaulted"]} >= {
        "spec.serving.engine.image",
        "spec.serving.gpuMemoryUtilization",
    }


def test_sandbox_sizing_stays_on_its_allowed_product(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(plan_args(CHAT, "-n", "sandbox-1", "--namespace-labels", "gpu-tier=sandbox", "-o", "yaml"),
                       capsys)  # fmt: skip
    data = yaml.safe_load(out)
    # The manifest asks for maxModelLen 16384 and 3 replicas; the sandbox allows 8192 and 1.
    assert code == 2
    assert data["plan"]["gpuProduct"] == "NVIDIA-L40S"
    kinds = [v["kind"] for v in data["policy"]["violations"]]
    assert kinds == ["TooManyReplicas", "MaxModelLenTooLong"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--namespace-labels", "gpu-tier"], "--namespace-labels: 'gpu-tier' is not key=value"),
        (["--policy", str(REPO / "examples" / "policies" / "deployments")], "expected SizingPolicy manifests only"),
        (["--policy", "/nonexistent.yaml"], "/nonexistent.yaml: No such file or directory"),
    ],
)
def test_bad_policy_input_is_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(plan_args(CHAT, *argv), capsys)
    assert code == 2 and len(err.splitlines()) == 1 and message in err


def test_a_policy_defined_twice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = {"apiVersion": "rightsizer.dev/v1alpha1", "kind": "SizingPolicy", "metadata": {"name": "x"}, "spec": {}}
    (tmp_path / "two.yaml").write_text(yaml.safe_dump_all([doc, doc]))
    code, _, err = run(["policy", "explain", "-n", "a", "--policies", str(tmp_path)], capsys)
    assert code == 2 and "SizingPolicy x is defined twice" in err


def test_explain_lists_every_value_with_its_policy(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "policy",
        "explain",
        "-n",
        "ml-chat",
        "--policies",
        str(POLICIES),
        "--namespace-labels",
        "gpu-tier=standard",
    ]
    code, out, _ = run(argv, capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[:2] == [
        "namespace ml-chat (labels: gpu-tier=standard)",
        "selected by SizingPolicy gpu-budget, gpu-pools, platform-defaults",
    ]
    row = next(line for line in lines if "limits.maxGpusPerReplica" in line)
    assert row.split() == ["limits.maxGpusPerReplica", "8", "from", "gpu-budget"]
    assert any("h200-ondemand" in line and "3.8/GPU-hour" in line for line in lines)


def test_explain_json_and_a_namespace_no_policy_restricts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    only_team = {
        "apiVersion": "rightsizer.dev/v1alpha1",
        "kind": "SizingPolicy",
        "metadata": {"name": "team-a-only"},
        "spec": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "team-a"}},
                 "limits": {"maxReplicas": 2}},
    }  # fmt: skip
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(only_team))
    code, out, _ = run(["policy", "explain", "-n", "team-a", "--policies", str(path), "-o", "json"], capsys)
    assert code == 0
    assert json.loads(out)["effective"] == {"limits.maxReplicas": {"value": 2, "from": ["team-a-only"]}}
    code, out, _ = run(["policy", "explain", "-n", "team-b", "--policies", str(path)], capsys)
    assert code == 0 and "no SizingPolicy selects this namespace" in out
