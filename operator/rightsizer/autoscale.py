"""The SLO autoscaler's decision: how many replicas an LLMDeployment needs now. Pure and replayable.

One call per tick turns what the metrics show into a replica count, combining three estimates:

* capacity (predictive): the arrival rate over what one replica sustains within the SLO (the performance model's
  `max_request_rate`), with headroom so latency stays under target while new replicas start;
* latency (reactive): when the observed p95 TTFT or ITL exceeds its target, capacity grows in proportion to the
  worst ratio (normalised like llm-d's SLO recipe), because the model can be wrong for this traffic mix;
* queue: requests waiting beyond what the running replicas' batches absorb need replicas of their own.

Scale up fast, scale down slowly: the highest recommendation inside each direction's stabilization window wins
(as HPA's behavior does), scale-ups are bounded per tick, and replicas still starting count as capacity on the way.
Everything stays within the bounds (spec.replicas and policy). Scale to zero is opt-in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Observation:
    """Metrics of all replicas of one deployment over the last window."""

    time: float  # seconds, any monotonic origin
    request_rate: float  # arrivals per second
    ttft_p95_s: float | None = None  # None: no request finished in the window
    itl_p95_s: float | None = None
    waiting: float = 0.0  # requests queued, summed over replicas
    running: float = 0.0  # requests in the running batches, summed
    kv_usage: float | None = None  # mean KV-cache usage 0..1


@dataclass(frozen=True)
class Targets:
    """What one replica of the current plan can do, and the SLO to hold."""

    ttft_p95_s: float | None
    itl_p95_s: float | None
    capacity_rps: float | None  # requests/s one replica sustains within the SLO (None: unknown, reactive only)
    max_running: int  # max-num-seqs: the batch one replica runs


@dataclass(frozen=True)
class Behavior:
    min_replicas: int
    max_replicas: int
    scale_up_window_s: float = 0.0
    scale_down_window_s: float = 300.0
    headroom: float = 0.85  # plan for this share of a replica's SLO capacity
    tolerance: float = 0.10  # latency within target × (1 ± tolerance) causes no reactive change
    max_scale_up_factor: float = 2.0  # per tick, at least +max_scale_up_step
    max_scale_up_step: int = 4
    scale_to_zero: bool = False
    idle_before_zero_s: float = 600.0


@dataclass(frozen=True)
class ScalerState:
    """Carried from one decision to the next (kept in memory; rebuilt from scratch after a restart)."""

    recommendations: tuple[tuple[float, int], ...] = ()
    idle_since: float | None = None


@dataclass(frozen=True)
class Decision:
    replicas: int
    recommendation: int  # before stabilization and bounds
    reason: str
    state: ScalerState = field(default_factory=ScalerState)


def _capacity_estimate(obs: Observation, targets: Targets, behavior: Behavior) -> int:
    if not targets.capacity_rps or targets.capacity_rps <= 0:
        return 0
    return math.ceil(obs.request_rate / (targets.capacity_rps * behavior.headroom))


def _latency_ratio(obs: Observation, targets: Targets) -> float | None:
    ratios = []
    if targets.ttft_p95_s and obs.ttft_p95_s is not None:
        ratios.append(obs.ttft_p95_s / targets.ttft_p95_s)
    if targets.itl_p95_s and obs.itl_p95_s is not None:
        ratios.append(obs.itl_p95_s / targets.itl_p95_s)
    return max(ratios) if ratios else None


def _queue_estimate(obs: Observation, targets: Targets, serving: int) -> int:
    if obs.waiting <= 0 or targets.max_running <= 0:
        return 0
    return serving + math.ceil(obs.waiting / targets.max_running)


def recommend(obs: Observation, targets: Targets, behavior: Behavior, serving: int) -> tuple[int, str]:
    """The replicas needed now, before stabilization, and why. `serving` counts ready and starting replicas."""
    capacity = _capacity_estimate(obs, targets, behavior)
    ratio = _latency_ratio(obs, targets)
    reactive = serving
    if ratio is not None and ratio > 1 + behavior.tolerance:
        reactive = math.ceil(max(serving, 1) * min(ratio, behavior.max_scale_up_factor))
    elif ratio is not None and ratio < 1 - behavior.tolerance and capacity:
        reactive = 0  # comfortably inside the SLO: let the capacity estimate decide the size
    queue = _queue_estimate(obs, targets, serving)
    candidates = {"capacity": capacity, "latency": reactive if ratio is not None else 0, "queue": queue}
    if not any(candidates.values()):
        candidates["hold"] = serving if obs.request_rate > 0 or obs.running > 0 else 0
    winner = max(candidates, key=lambda k: candidates[k])
    detail = {
        "capacity": f"{obs.request_rate:.2f} req/s over {targets.capacity_rps or 0:.2f} req/s per replica within SLO",
        "latency": f"observed p95 at {ratio or 0:.2f}× the target",
        "queue": f"{obs.waiting:.0f} requests waiting",
        "hold": "no signal to change",
    }[winner]
    return candidates[winner], f"{winner}: {detail}"


def decide(
    obs: Observation, targets: Targets, behavior: Behavior, *, current: int, starting: int, state: ScalerState
) -> Decision:
    """Replicas to set. `current` is the replica count in force (ready + starting), `starting` those not ready yet."""
    recommendation, reason = recommend(obs, targets, behavior, current)
    idle = obs.request_rate <= 0 and obs.running <= 0 and obs.waiting <= 0
    idle_since = (state.idle_since if state.idle_since is not None else obs.time) if idle else None
    horizon = max(behavior.scale_up_window_s, behavior.scale_down_window_s)
    history = (*((t, r) for t, r in state.recommendations if obs.time - t <= horizon), (obs.time, recommendation))

    if recommendation > current:
        window = [r for t, r in history if obs.time - t <= behavior.scale_up_window_s]
        wanted = min(window) if behavior.scale_up_window_s else recommendation  # sustained demand only
        step = max(math.ceil(current * behavior.max_scale_up_factor), current + behavior.max_scale_up_step)
        desired = min(wanted, step)
    else:
        window = [r for t, r in history if obs.time - t <= behavior.scale_down_window_s]
        desired = max(window)  # the highest recent need: no flapping on noisy load
        if starting and desired < current:
            desired = current  # never cancel replicas on their way up on a momentary dip
            reason += "; replicas still starting count as capacity"

    floor = behavior.min_replicas
    if behavior.scale_to_zero and floor == 0:
        zero_ok = idle_since is not None and obs.time - idle_since >= behavior.idle_before_zero_s
        floor = 0 if zero_ok else min(1, behavior.max_replicas)
        if obs.request_rate > 0 or obs.waiting > 0:
            floor = max(floor, 1)
    bounded = max(floor, min(desired, behavior.max_replicas))
    if bounded != desired:
        reason += f"; bounded to {floor}..{behavior.max_replicas}"
    return Decision(bounded, recommendation, reason, replace(state, recommendations=history, idle_since=idle_since))
