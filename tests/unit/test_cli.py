"""`rightsizer plan`: outputs, and bad input that exits 2 with one line naming the field and the fix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rightsizer.cli.main import main
from tests.unit.helpers import REPO

MANIFEST = """
apiVersion: rightsizer.dev/v1alpha1
kind: LLMDeployment
metadata: {{name: demo}}
spec:
  model: {{name: {model}}}
{extra}
"""


def manifest(tmp_path: Path, model: str = "meta-llama/Llama-3.1-8B-Instruct", extra: str = "") -> str:
    path = tmp_path / "llmd.yaml"
    path.write_text(MANIFEST.format(model=model, extra=extra))
    return str(path)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_json_output_has_every_documented_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["plan", "-f", manifest(tmp_path), "-o", "json", "--gpu", "H200", "--offline"], capsys)
    assert code == 0
    plan = json.loads(out)["plan"]
    for field in (
        "gpuProduct",
        "gpusPerReplica",
        "nodesPerReplica",
        "tensorParallelSize",
        "pipelineParallelSize",
        "maxNumSeqs",
        "maxModelLen",
        "maxNumBatchedTokens",
        "gpuMemoryUtilization",
        "kvCacheTokens",
        "maxConcurrency",
        "memory",
        "vllmArgs",
        "reasons",
    ):
        assert field in plan
    for field in (
        "totalGiBPerGpu",
        "weightsGiBPerGpu",
        "activationGiBPerGpu",
        "nonTorchGiBPerGpu",
        "cudaGraphGiBPerGpu",
        "kvCacheGiBPerGpu",
    ):
        assert field in plan["memory"]
    assert plan["gpuProduct"] == "NVIDIA-H200"


def test_table_output_reads_well(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["plan", "-f", manifest(tmp_path), "--gpu", "H100", "--offline"], capsys)
    assert code == 0
    assert "NVIDIA-H100-80GB-HBM3" in out and "Why" in out and "vllm serve" in out
    assert "--max-num-seqs" in out


def test_yaml_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["plan", "-f", manifest(tmp_path), "-o", "yaml", "--offline"], capsys)
    assert code == 0 and out.startswith("plan:\n")


@pytest.mark.parametrize(
    ("model", "extra", "args", "expected"),
    [
        ("acme/unknown-model", "", [], "spec.model.name"),
        (
            "meta-llama/Llama-3.1-8B-Instruct",
            "  serving: {maxModelLen: 131072, gpuMemoryUtilization: 0.3}",
            ["--pools", "POOLS"],
            "spec.serving.maxModelLen",
        ),
        ("microsoft/Phi-3-medium-128k-instruct", "  gpu: {tensorParallelSize: 4}", [], "spec.gpu.tensorParallelSize"),
        ("meta-llama/Llama-3.1-8B-Instruct", "  gpu: {products: [TPU-v5]}", [], "spec.gpu.products"),
        ("meta-llama/Llama-3.1-8B-Instruct", "", ["--gpu", "Voodoo2"], "--gpu"),
        ("meta-llama/Llama-3.1-8B-Instruct", "  replicas: {min: 3, max: 1}", [], "spec.replicas"),
        ("meta-llama/Llama-3.1-8B-Instruct", "", ["--speed", "1.4"], "--speed"),
        ("meta-llama/Llama-3.1-8B-Instruct", "", ["--speed", "0,1"], "--speed"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model: str, extra: str, args: list[str], expected: str
) -> None:
    pools = tmp_path / "pools.yaml"
    pools.write_text("- {name: tiny, product: H100, gpusPerNode: 1, maxNodes: 1}\n")
    args = [str(pools) if a == "POOLS" else a for a in args]
    code, out, err = run(["plan", "-f", manifest(tmp_path, model, extra), "--offline", *args], capsys)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("error: ") and expected in err


def test_malformed_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("spec:\n  model: {name: x\n")
    code, _, err = run(["plan", "-f", str(path)], capsys)
    assert code == 2 and "malformed YAML at line" in err


def test_console_script_prints_no_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rightsizer", "plan", "-f", manifest(tmp_path, "acme/nope"), "--offline"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        env={"PYTHONPATH": str(REPO / "operator"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: spec.model.name:")


def test_crds_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["crds", str(tmp_path), "--check"], capsys)[0] == 1
    assert run(["crds", str(tmp_path)], capsys)[0] == 0
    assert run(["crds", str(tmp_path), "--check"], capsys)[0] == 0


def test_a_closed_pipe_ends_the_plan_quietly() -> None:
    """`rightsizer plan ... | head` may close stdout before the plan is written: exit 0, no traceback."""
    manifest = REPO / "examples" / "llama-3.1-8b-h200.yaml"
    command = [sys.executable, "-m", "rightsizer", "plan", "-f", str(manifest), "--offline"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # the reader is gone before anything is written
        stderr = proc.stderr.read().decode()
        code = proc.wait(timeout=120)
    assert code == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr


def test_speed_sizes_at_a_measured_speed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # An ITL target that caps --max-num-seqs: a replica 40 % slower than the model holds it at a smaller batch (or
    # needs more GPUs), one 30 % faster at a larger one (or fewer GPUs); 1,1 is the model itself.
    slo = "  slo: {itlP95Ms: 30}\n  gpu: {tensorParallelSize: 1, products: [H200]}"
    plans = {}
    for speed in (None, "1,1", "1.4,1.4", "0.7,0.7"):
        extra = ["--speed", speed] if speed else []
        code, out, _ = run(["plan", "-f", manifest(tmp_path, extra=slo), "-o", "json", "--offline", *extra], capsys)
        assert code == 0
        plans[speed] = json.loads(out)["plan"]
    assert plans["1,1"] == plans[None]
    assert plans["1.4,1.4"]["maxNumSeqs"] <= plans[None]["maxNumSeqs"] <= plans["0.7,0.7"]["maxNumSeqs"]
    assert plans["0.7,0.7"]["maxNumSeqs"] > plans[None]["maxNumSeqs"]
    assert all(p["performance"]["itlP95MsHigh"] <= 30 for p in plans.values())
    # the same batch, predicted at the slower speed
    slow, model = plans["1.4,1.4"]["performance"], plans[None]["performance"]
    assert slow["itlP50Ms"] > model["itlP50Ms"] * 1.2
