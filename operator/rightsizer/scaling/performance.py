"""status.performance and the PredictionAccurate condition from a deployment's calibration. Pure.

The autoscaler (controller.autoscaler) keeps one scaling.calibration.Calibration per deployment, feeds it every
metrics window, plans with the corrected model's capacity and writes what calibration saw here. After an operator
restart, `calibration_from` continues from what status.performance recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import ValidationError

from rightsizer.api.conditions import ConditionType, Reason
from rightsizer.api.v1alpha1.common import Condition
from rightsizer.api.v1alpha1.llmdeployment import PerformanceStatus
from rightsizer.scaling.calibration import SUSTAIN_S, Accuracy, Calibration, restored

RATIO_FIELDS = ("ttft", "itl")

JSON = Mapping[str, Any]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e3, 2)


def _interval(record: Accuracy) -> str | None:
    return None if record.low is None or record.high is None else f"{record.low:.2f}-{record.high:.2f}"


def performance_status(
    calibration: Calibration, *, capacity_rps: float | None, model_capacity_rps: float | None
) -> PerformanceStatus:
    last = calibration.last
    return PerformanceStatus(
        request_rate_per_replica=None if last is None else round(last.request_rate, 3),
        mean_prompt_tokens=None if last is None else round(last.prompt_tokens, 1),
        mean_output_tokens=None if last is None else round(last.output_tokens, 1),
        observed_ttft_ms=_ms(last.observed_ttft_s) if last else None,
        predicted_ttft_ms=_ms(last.predicted_ttft_s) if last else None,
        corrected_ttft_ms=_ms(last.corrected_ttft_s) if last else None,
        observed_itl_ms=_ms(last.observed_itl_s) if last else None,
        predicted_itl_ms=_ms(last.predicted_itl_s) if last else None,
        corrected_itl_ms=_ms(last.corrected_itl_s) if last else None,
        ttft_interval=_interval(calibration.ttft),
        itl_interval=_interval(calibration.itl),
        prefill_factor=round(calibration.prefill.factor, 3),
        decode_factor=round(calibration.decode.factor, 3),
        samples=calibration.samples,
        confidence=round(calibration.confidence, 3),
        capacity_rps=None if capacity_rps is None else round(capacity_rps, 3),
        model_capacity_rps=None if model_capacity_rps is None else round(model_capacity_rps, 3),
        skipped=None if last is None else last.skipped,
    )


def calibration_from(status: JSON) -> Calibration:
    """The calibration status.performance recorded (a fresh one when there is none or it does not parse)."""
    raw = status.get("performance")
    if not raw:
        return Calibration()
    try:
        recorded = PerformanceStatus.model_validate(raw)
    except ValidationError:
        return Calibration()
    return restored(recorded.prefill_factor, recorded.decode_factor, recorded.samples, recorded.confidence)


def error_ratios(calibration: Calibration) -> dict[str, float]:
    """Observed / predicted mean, per metric, of the last window compared (rightsizer_prediction_error_ratio)."""
    pairs = (("ttft", calibration.ttft.ratio), ("itl", calibration.itl.ratio))
    return {name: ratio for name, ratio in pairs if ratio is not None}


def accuracy_condition(
    calibration: Calibration, *, now: float, wall: str, generation: int | None, sustain_s: float = SUSTAIN_S
) -> Condition:
    ok, why = calibration.accurate(now, sustain_s)
    status: Literal["True", "False", "Unknown"] = "Unknown" if ok is None else "True" if ok else "False"
    return Condition(
        type=ConditionType.PREDICTION_ACCURATE,
        status=status,
        reason=Reason.NO_EVIDENCE if ok is None else Reason.WITHIN_INTERVAL if ok else Reason.OUTSIDE_INTERVAL,
        message=why,
        last_transition_time=wall,
        observed_generation=generation,
    )


def condition_changed(conditions: list[JSON], new: Condition) -> bool:
    """Whether status.conditions lacks `new` (by type, status and reason): the message's figures move every window
    and are not worth a write."""
    for c in conditions:
        if c.get("type") == new.type:
            return bool(c.get("status") != new.status or c.get("reason") != new.reason)
    return True
