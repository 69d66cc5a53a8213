"""Self-calibration end to end on the local plane: the simulated vLLM fleet runs at another speed than the model
believes (e2e/vllm_sim --model-error), the operator learns it from the pods' own /metrics (embedded scrape), writes
status.performance and PredictionAccurate, and in Recommend mode never writes /scale.

Two cases, one deployment each (the autoscaling rig: Llama 3.1 70B FP8 on H200, tests/integration/autoscaling_env.py):
replicas 40 % slower than the model in Recommend mode, and twice as fast (×0.5) in Act mode: 30 % faster is inside the
model's held-out interval at this point (its fast edge is about 0.67), so PredictionAccurate rightly stays True. Each
prints its figures (when the factors came within 10 % of the injected error, the condition's flip) on one
`calibration-e2e:` line.

A third re-sizes: 40 % slower replicas under an ITL target the model's --max-num-seqs only meets at the model's
speed, with spec.autoscaling.applyRecommendations; the operator applies the corrected plan (status.recommendation)
and the Deployment rolls out with the lower --max-num-seqs (`resize-e2e:` line).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from e2e.loadgen import Phase
from tests.integration.autoscaling_env import NAME, Rig, operator_for, scratch_namespace
from tests.integration.kube import wait_for
from tests.integration.operator import OperatorProcess

pytestmark = pytest.mark.integration

SUSTAIN_S = 20.0  # RIGHTSIZER_PREDICTION_SUSTAIN_SECONDS here (300 s by default)
LOAD_S = 120.0
RATE = 1.0  # req/s: within one replica by the model (1.31 req/s); near the truth's capacity at x1.4
PREFILL_TOLERANCE = 0.20
# An ITL target the model's --max-num-seqs (11) meets at the model's speed, and a 40 % slower replica only at a far
# smaller batch (3 at exactly ×1.4 by the model; fewer as the measured decode factor comes out above it).
RESIZE_SLO = {"ttftP95Ms": 2000, "itlP95Ms": 30}


@pytest.fixture
def rig(
    kubeconfig: str,
    crds: None,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
    tmp_path: Path,
) -> Iterator[tuple[Rig, OperatorProcess]]:
    sd_dir = tmp_path / "file_sd"
    with scratch_namespace(core) as namespace:
        operator = operator_for(
            kubeconfig,
            namespace,
            tmp_path / "operator.log",
            prometheus_url=None,
            targets_dir=sd_dir,
            extra_env={"RIGHTSIZER_PREDICTION_SUSTAIN_SECONDS": str(SUSTAIN_S)},
        )
        operator.start()
        r = Rig(custom, core, apps, namespace, tmp_path, sd_dir)
        try:
            yield r, operator
        finally:
            r.close()
            operator.stop()


def accuracy(obj: dict[str, Any]) -> dict[str, str] | None:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "PredictionAccurate"), None)


@pytest.mark.parametrize(
    ("case", "error", "mode"),
    [("slower-recommend", 1.4, "Recommend"), ("faster-act", 0.5, "Act")],
)
def test_factors_converge_and_prediction_accurate_flips(
    rig: tuple[Rig, OperatorProcess], case: str, error: float, mode: str
) -> None:
    r, _ = rig
    r.deploy({"min": 1, "max": 4}, {"mode": mode, "scaleDownStabilizationSeconds": 60}, model_error=(error, error))
    start = r.load([Phase(LOAD_S, rate=RATE)])
    within_at: float | None = None
    flipped_at: float | None = None
    trail = []
    while r.now() < start + LOAD_S:
        obj = r.get()
        perf = (obj.get("status") or {}).get("performance") or {}
        condition = accuracy(obj)
        factors = (perf.get("prefillFactor"), perf.get("decodeFactor"))
        trail.append((round(r.now() - start, 1), factors, perf.get("samples"), condition and condition["status"]))
        prefill, decode = factors
        near = (
            prefill is not None
            and decode is not None
            and abs(decode / error - 1) <= 0.10
            and abs(prefill / error - 1) <= PREFILL_TOLERANCE
        )
        if within_at is None and near:
            within_at = r.now() - start
        if flipped_at is None and condition and condition["status"] == "False":
            flipped_at = r.now() - start
        time.sleep(2.0)
    r.wait_load()
    obj = r.get()
    perf = obj["status"]["performance"]
    condition = accuracy(obj)
    # The factors converge and stay there: decode within 10 % of the injected error, prefill within 20 % (the
    # simulator's prefill times run 6-14 % over the model's own-prompt steps even at x1: test_calibration_sim.py).
    assert within_at is not None, f"factors never near {error}: {trail}"
    assert perf["prefillFactor"] == pytest.approx(error, rel=PREFILL_TOLERANCE), trail
    assert perf["decodeFactor"] == pytest.approx(error, rel=0.10), trail
    assert perf["observedItlMs"] and perf["predictedItlMs"] and perf["samples"] > 10
    # Observed and predicted disagree beyond the model's interval: PredictionAccurate went False, naming why.
    assert condition is not None and condition["status"] == "False", condition
    assert condition["reason"] == "OutsideInterval" and "× the predicted" in condition["message"]
    autoscaling = obj["status"]["autoscaling"]
    if mode == "Recommend":
        # Decisions are recorded, /scale is never written: spec.replicas.desired stays unset, one replica runs.
        assert obj["spec"]["replicas"].get("desired") is None
        assert obj["status"]["replicas"] == 1 and all((s.desired or 1) == 1 for s in r.samples)
        assert autoscaling["reason"].startswith("recommendation only:")
        if autoscaling["desiredReplicas"] != 1:
            assert [e for e in r.events() if e.reason == "ScaleRecommended"], "no ScaleRecommended event"
    print(
        "\ncalibration-e2e: "
        + json.dumps(
            {
                "case": case,
                "injected": error,
                "within_10pct_after_s": round(within_at, 1),
                "prediction_accurate_false_after_s": flipped_at and round(flipped_at, 1),
                "factors": [perf["prefillFactor"], perf["decodeFactor"]],
                "confidence": perf["confidence"],
                "samples": perf["samples"],
                "capacity_rps": [perf["capacityRps"], perf["modelCapacityRps"]],
                "ttft_ms": [perf["observedTtftMs"], perf["predictedTtftMs"], perf["correctedTtftMs"]],
                "itl_ms": [perf["observedItlMs"], perf["predictedItlMs"], perf["correctedItlMs"]],
                "recommended": autoscaling["desiredReplicas"],
                "condition": condition["message"],
            }
        )
    )


def workload_args(r: Rig) -> list[str]:
    deployment = r.apps.api_client.sanitize_for_serialization(r.apps.read_namespaced_deployment(NAME, r.namespace))
    return [str(a) for a in deployment["spec"]["template"]["spec"]["containers"][0]["args"]]


def max_num_seqs_of(args: list[str]) -> int:
    return int(args[args.index("--max-num-seqs") + 1])


def test_a_slower_fleet_is_re_sized_when_the_spec_asks(rig: tuple[Rig, OperatorProcess]) -> None:
    r, _ = rig
    error = 1.4
    before = r.deploy(
        {"min": 1, "max": 4},
        {"applyRecommendations": True, "scaleDownStabilizationSeconds": 60},
        model_error=(error, error),
        slo=RESIZE_SLO,
    )
    seqs_before = before["status"]["plan"]["maxNumSeqs"]
    assert max_num_seqs_of(workload_args(r)) == seqs_before
    start = r.load([Phase(LOAD_S, rate=RATE)])
    applied_at: float | None = None
    trail = []
    while r.now() < start + LOAD_S and applied_at is None:
        recommendation = (r.get().get("status") or {}).get("recommendation") or {}
        trail.append((round(r.now() - start, 1), recommendation.get("state"), recommendation.get("confidence")))
        if recommendation.get("applied"):
            applied_at = r.now() - start
        time.sleep(2.0)
    assert applied_at is not None, f"never applied: {trail}"

    # The reconciler sizes with the applied factors: the plan and the Deployment's arguments follow.
    def re_sized() -> int | None:
        seqs = int(r.get()["status"]["plan"]["maxNumSeqs"])
        return seqs if seqs < seqs_before else None

    seqs_after = wait_for(re_sized, 60, "status.plan re-sized")
    wait_for(lambda: max_num_seqs_of(workload_args(r)) == seqs_after or None, 60, "the Deployment re-sized")
    r.wait_load()
    recommendation = r.get()["status"]["recommendation"]
    assert recommendation["applied"]["decodeFactor"] == pytest.approx(error, rel=0.10), recommendation
    applied_events = [e for e in r.events() if e.reason == "RecommendationApplied"]
    assert len(applied_events) == 1, [e.reason for e in r.events()]
    assert f"--max-num-seqs {seqs_before} → {seqs_after}" in applied_events[0].message
    print(
        "\nresize-e2e: "
        + json.dumps(
            {
                "injected": error,
                "applied_after_s": round(applied_at, 1),
                "max_num_seqs": [seqs_before, seqs_after],
                "applied": recommendation["applied"],
                "event": applied_events[0].message,
            }
        )
    )
