"""Self-calibration: each deployment's real speed, learnt from its own vLLM metrics, on top of the model. Pure.

The performance model (perf) can be 20-50 % off on a model, GPU or driver it was not fitted on. A running deployment
tells how far: every metrics window (scaling.window.WindowStats) gives the mean TTFT and inter-token latency its
replicas delivered at the load they carried (the arrival rate per replica and the mean prompt and output lengths of
the requests that finished). The model predicts both for that load (perf.predict); their ratio measures two
correction factors, the ones perf.Replica.scaled applies:

* decode: how much longer than the model's a step takes that only decodes (what the mean ITL mostly is);
* prefill: how much longer the prompt part of a step takes: what vLLM's per-request prefill time
  (`vllm:request_prefill_time_seconds`, first scheduling to first token) is, against the model's time for the same
  mean prompt scheduled beside the prompts that arrived during the step before (Replica.scheduled_prefill_seconds);
  without that histogram, what the TTFT net of the fixed request overhead mostly is.

Each window's measurement of a factor is log(current factor) + log(observed mean / mean the corrected model
predicts): with a latency proportional to its factor this is the true factor whatever the current estimate, and the
small cross-effects (prompt chunks slow the ITL; each prefill step also reads the weights) are taken out by
iterating, since the prediction already uses both current factors. Measurements are smoothed by an exponentially
weighted mean of log factors that starts at 0 (the model is right until shown otherwise) and gives each window the
weight ALPHA for the share of it that is new data (overlapping windows are not independent evidence), so a handful of
windows cannot swing it; its exponentially weighted variance gives a confidence.

What is not evidence is skipped, not averaged in: windows with fewer than MIN_FINISHED requests finished or no rate
(idle, or replicas just restarted: their counters start at zero and the window's increase is small), windows where
the model calls the load saturating (the latency is then queueing, which says nothing about speed), for the decode
factor windows where prompt chunks take more than half the decoding sequences' time, for the prefill factor
windows where the wait behind other prompts is more than half the TTFT (net of the overhead: either way the
measurement would mostly carry the other factor's or the queueing model's error), and a single
window's log ratio is clamped to ±log(MAX_RATIO) so that a scrape glitch moves the factor by a bounded step. Counter
resets inside a window are already handled by the window (scaling.histograms). After an operator restart the filter
continues from status.performance (its factors, samples and confidence), not from scratch.

Accuracy, per metric: the uncorrected model's mean over the observed mean, against the held-out interval the model
states for such a point (perf.uncertainty: fast and slow edges). Outside it for SUSTAIN_S without a window inside
it, the prediction is inaccurate (the PredictionAccurate condition goes False, with the metric and the ratio).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from rightsizer.perf import Replica, Traffic, predict
from rightsizer.perf.uncertainty import interval
from rightsizer.scaling.window import WindowStats

ALPHA = 0.4  # weight of one window's worth of new data in the smoothed log factor (see `_alpha`)
MIN_FINISHED = 8.0  # requests finished in a window before it counts as evidence
MAX_RATIO = 3.0  # one window moves a factor by at most this ratio
SUSTAIN_S = 300.0  # outside the interval this long before the prediction is called inaccurate
FACTOR_BOUNDS = (0.1, 10.0)  # a factor outside this says the metrics are wrong, not the model
# The evidence (Σ of window weights, 1 − (1 − ALPHA)^n for n windows of new data: 4.5 windows, 4.5 min at the
# operator's defaults) after which a speed counts as measured and its edges narrow (Calibration.corrected).
MEASURED_WEIGHT = 0.9
SLACK_STEP = 0.05  # a measured speed's slack is rounded up to this grid, so cached capacities are reused
OWN_SHARE = 0.5  # a latency is evidence of a step part only while that part is at least this share of it


@dataclass(frozen=True)
class Filter:
    """An exponentially weighted estimate of one log factor, started at 0 (the model) with no weight."""

    log_factor: float = 0.0  # Σ w_i z_i with w_i = ALPHA (1 − ALPHA)^(age): shrunk towards 0 by the missing weight
    variance: float = 0.0  # exponentially weighted variance of the measurements around their weighted mean
    weight: float = 0.0  # Σ w_i = 1 − (1 − ALPHA)^n
    weight_squares: float = 0.0  # Σ w_i², for the effective number of samples
    samples: int = 0

    def update(self, z: float, alpha: float = ALPHA) -> Filter:
        keep = 1.0 - alpha
        log_factor = keep * self.log_factor + alpha * z
        weight = keep * self.weight + alpha
        mean_before = self.log_factor / self.weight if self.weight > 0 else z
        variance = keep * (self.variance + alpha * (z - mean_before) ** 2) if self.samples else 0.0
        squares = keep**2 * self.weight_squares + alpha**2
        return Filter(log_factor, variance, weight, squares, self.samples + 1)

    @property
    def factor(self) -> float:
        low, high = FACTOR_BOUNDS
        return min(high, max(low, math.exp(self.log_factor)))

    @property
    def half_width(self) -> float:
        """How far (in log) the estimate may be from the truth: the shrinkage still left towards 1, plus twice the
        standard error of the weighted mean. Infinite before any sample."""
        if self.samples == 0 or self.weight <= 0:
            return math.inf
        mean = self.log_factor / self.weight
        effective = self.weight**2 / self.weight_squares
        standard_error = math.sqrt(self.variance / effective) if self.samples > 1 else abs(mean)
        return abs(mean - self.log_factor) + 2.0 * standard_error

    @property
    def confidence(self) -> float:
        """1 − the relative half-width of the factor's interval, within 0..1: 0.95 means the factor is known to
        within ±5 %."""
        return max(0.0, 1.0 - (math.exp(self.half_width) - 1.0)) if math.isfinite(self.half_width) else 0.0


@dataclass(frozen=True)
class Accuracy:
    """One metric's record: since when the uncorrected model has been outside its interval (None: inside)."""

    outside_since: float | None = None
    ratio: float | None = None  # the last observed / predicted mean
    low: float | None = None  # the interval's fast and slow edges at that point
    high: float | None = None


@dataclass(frozen=True)
class Reading:
    """One window as calibration read it: the observed and predicted means (seconds) at the observed load."""

    request_rate: float  # per replica
    prompt_tokens: float
    output_tokens: float
    observed_ttft_s: float | None
    observed_itl_s: float | None
    predicted_ttft_s: float | None  # the model's, uncorrected
    predicted_itl_s: float | None
    corrected_ttft_s: float | None  # with the factors after this window
    corrected_itl_s: float | None
    skipped: str | None = None  # why the window was no evidence


@dataclass(frozen=True)
class Calibration:
    """A deployment's correction factors and accuracy record, carried from one window to the next."""

    prefill: Filter = field(default_factory=Filter)
    decode: Filter = field(default_factory=Filter)
    ttft: Accuracy = field(default_factory=Accuracy)
    itl: Accuracy = field(default_factory=Accuracy)
    last: Reading | None = None
    updated_at: float | None = None  # when a window last counted as evidence

    def corrected(self, model: Replica) -> Replica:
        """The model with this deployment's factors (the model itself before any evidence), rounded to 1 % so that
        the capacities cached per replica (perf.in_force) are reused while the factors hold still. Once both factors
        rest on MEASURED_WEIGHT of evidence, the replica is at a measured speed (Replica.measured): its slow edges
        are the within-deployment ones times the wider factor's e^half-width, rounded up to SLACK_STEP. Before
        that a half-width is no measure of doubt (one window's is a guess from its own distance to 1)."""
        if self.prefill.samples == 0 and self.decode.samples == 0:
            return model
        slack = self.slack
        factors = self._factors()
        return model.scaled(*factors) if slack is None else model.measured(*factors, slack)

    def transferred(self, model: Replica) -> Replica:
        """This deployment's factors on another shape's replica (the overflow pool's plan): its speed is corrected
        alike, but it was not measured on that GPU and layout, so its edges stay the model's cross-source ones."""
        if self.prefill.samples == 0 and self.decode.samples == 0:
            return model
        return model.scaled(*self._factors())

    def _factors(self) -> tuple[float, float]:
        return round(self.prefill.factor, 2), round(self.decode.factor, 2)

    @property
    def slack(self) -> float | None:
        """e^(the wider factor's half-width) on the SLACK_STEP grid, or None while the evidence is too thin."""
        half_width = max(self.prefill.half_width, self.decode.half_width)
        if min(self.prefill.weight, self.decode.weight) < MEASURED_WEIGHT or not math.isfinite(half_width):
            return None
        return round(math.ceil(math.exp(half_width) / SLACK_STEP - 1e-9) * SLACK_STEP, 2)

    @property
    def samples(self) -> int:
        return min(self.prefill.samples, self.decode.samples)

    @property
    def confidence(self) -> float:
        return min(self.prefill.confidence, self.decode.confidence)

    def accurate(self, now: float, sustain_s: float = SUSTAIN_S) -> tuple[bool | None, str]:
        """Whether the model's predictions hold here, and why: None before any comparison."""
        if self.ttft.ratio is None and self.itl.ratio is None:
            return None, "no window with enough requests yet to compare the prediction with"
        for name, record in (("TTFT", self.ttft), ("inter-token latency", self.itl)):
            if record.outside_since is not None and now - record.outside_since >= sustain_s:
                return False, (
                    f"observed mean {name} is {record.ratio:.2f}× the predicted, outside the model's interval "
                    f"{record.low:.2f}-{record.high:.2f}× for {now - record.outside_since:.0f} s"
                )
        return True, "observed latencies are within the model's interval (or not outside it for long)"


def restored(prefill: float, decode: float, samples: int, confidence: float) -> Calibration:
    """A filter state from what status.performance recorded (an operator restart continues from it): the factors
    with the weight `samples` windows give, and a variance that reproduces the recorded confidence."""

    def one(factor: float) -> Filter:
        if samples <= 0 or not (factor > 0 and math.isfinite(factor)):
            return Filter()
        n = min(samples, 1000)
        weight = 1.0 - (1.0 - ALPHA) ** n
        squares = ALPHA**2 * (1.0 - (1.0 - ALPHA) ** (2 * n)) / (1.0 - (1.0 - ALPHA) ** 2)
        log_factor = math.log(factor)
        half = math.log(max(1e-9, 2.0 - min(max(confidence, 0.0), 1.0)))  # invert confidence = 2 − e^half
        spread = max(0.0, half - abs(log_factor / weight - log_factor)) / 2.0
        variance = spread**2 * weight**2 / squares
        return Filter(log_factor, variance, weight, squares, n)

    return Calibration(prefill=one(prefill), decode=one(decode))


def _clamped_log(ratio: float) -> float:
    return max(-math.log(MAX_RATIO), min(math.log(MAX_RATIO), math.log(ratio)))


def _accuracy(record: Accuracy, ratio: float, low: float, high: float, now: float) -> Accuracy:
    inside = low <= ratio <= high
    since = None if inside else (record.outside_since if record.outside_since is not None else now)
    return Accuracy(since, ratio, low, high)


def _alpha(updated_at: float | None, now: float, window_s: float) -> float:
    """The weight of this window: ALPHA for a window of data the filter has not seen, less for one that overlaps the
    last (the operator decides every 15 s over 60 s windows: each window brings a quarter of new requests, and
    counting it whole would make the filter four times as jumpy as its ALPHA says)."""
    fresh = window_s if updated_at is None else min(max(0.0, now - updated_at), window_s)
    return 1.0 - (1.0 - ALPHA) ** (fresh / window_s) if window_s > 0 else ALPHA


def observe(
    state: Calibration, stats: WindowStats, model: Replica, now: float, *, window_s: float = 60.0
) -> Calibration:
    """The calibration after one window of `window_s` seconds ending at `now`. `model` is the uncorrected replica of
    the plan in force."""
    pods = max(stats.pods, 1)
    prompt, output = stats.mean_prompt_tokens, stats.mean_generation_tokens
    if (
        stats.request_rate is None
        or stats.request_rate <= 0
        or stats.finished < MIN_FINISHED
        or prompt is None
        or output is None
    ):
        return replace(state, last=_skipped(state.last, "idle window (too few requests finished)"))
    rate = stats.request_rate / pods
    limit = model.settings.max_model_len
    p_in = max(1, min(round(prompt), limit - 1))
    p_out = max(1, min(round(output), limit - p_in))
    traffic = Traffic(p_in, p_out, request_rate=rate)
    believed = predict(model, traffic)
    corrected_model = state.corrected(model)
    current = predict(corrected_model, traffic) if corrected_model is not model else believed
    reading = Reading(rate, prompt, output, stats.ttft_mean_s, stats.itl_mean_s, None, None, None, None)
    if current.saturated or believed.saturated:
        return replace(state, last=replace(reading, skipped="the model calls this load saturating"))
    overhead = model.efficiency.request_overhead_s
    prefill, decode, ttft_record, itl_record = state.prefill, state.decode, state.ttft, state.itl
    alpha = _alpha(state.updated_at, now, window_s)
    if alpha <= 0:
        return state  # the same window again
    load = believed.running
    # A latency measures a step part only where that part is most of it: the ITL while decode steps outweigh the
    # prompt chunks interleaved with them (the prediction's prefill share), the TTFT while the prompt's own steps
    # outweigh the wait behind others. Elsewhere the measurement would carry the other factor's error, and the two
    # estimates would chase each other (a fleet 40 % slower, near its true capacity: the wait, priced with the
    # decode factor, drove the prefill factor to its bound while the decode factor overshot to 1.8).
    if stats.itl_mean_s is not None and stats.itl_mean_s > 0 and current.itl.mean > 0:
        if current.prefill_share <= 1.0 - OWN_SHARE:
            decode = decode.update(math.log(decode.factor) + _clamped_log(stats.itl_mean_s / current.itl.mean), alpha)
        edges = interval("itl", model.family, load, calibrated=model.calibrated)
        itl_record = _accuracy(itl_record, stats.itl_mean_s / believed.itl.mean, edges.fast, edges.slow, now)
    # vLLM's prefill time runs from a prompt's first scheduling, in a step it shares with the prompts that arrived
    # during the step before; against the prompt's own steps alone, a busy TP8 replica read as 1.6-2.3× slow at
    # ×1 (bench, coding trace) and the capacity followed. The estimate is the least such a step takes: one that
    # guessed a long prompt's place in the queue read a ×1.4 fleet as ×1.25 (Mooncake) and under-provisioned it.
    co_scheduled = rate * current.arrival_step_s * p_in
    own = corrected_model.scheduled_prefill_seconds(p_in, round(current.running), p_in + p_out / 2, co_scheduled)
    net, predicted_net = (stats.ttft_mean_s or 0.0) - overhead, current.ttft.mean - overhead
    if stats.prefill_mean_s is not None and stats.prefill_mean_s > 0 and own > 0:
        # vLLM's own prefill time (first scheduling to first token) of the same finished requests whose mean prompt
        # `p_in` is: no queue in it, so the best evidence there is.
        prefill = prefill.update(math.log(prefill.factor) + _clamped_log(stats.prefill_mean_s / own), alpha)
    elif stats.ttft_mean_s is not None and net > 0 and predicted_net > 0 and own >= OWN_SHARE * predicted_net:
        prefill = prefill.update(math.log(prefill.factor) + _clamped_log(net / predicted_net), alpha)
    if stats.ttft_mean_s is not None and believed.ttft.mean > 0:
        edges = interval("ttft", model.family, load, calibrated=model.calibrated)
        ttft_record = _accuracy(ttft_record, stats.ttft_mean_s / believed.ttft.mean, edges.fast, edges.slow, now)
    updated = prefill is not state.prefill or decode is not state.decode
    after = Calibration(prefill, decode, ttft_record, itl_record, updated_at=now if updated else state.updated_at)
    fitted = predict(after.corrected(model), traffic)
    reading = replace(
        reading,
        predicted_ttft_s=believed.ttft.mean,
        predicted_itl_s=believed.itl.mean,
        corrected_ttft_s=None if fitted.saturated else fitted.ttft.mean,
        corrected_itl_s=None if fitted.saturated else fitted.itl.mean,
    )
    return replace(after, last=reading)


def _skipped(last: Reading | None, why: str) -> Reading | None:
    return replace(last, skipped=why) if last is not None else None
