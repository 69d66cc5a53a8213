"""The SLO autoscaler's decision: how many replicas an LLMDeployment needs now. Pure and replayable.

Interface: Observation, Targets, Behavior, ScalerState, Decision and `decide(obs, targets, behavior, *, current,
starting, state)` keep their fields and signature; Behavior and ScalerState gained fields with defaults, and
`recommend` takes `ready`, `trend`, `spread`, `settled` and `queue_growth` as optional arguments. `Behavior.window_s`
should be set to the window the observations cover (the operator's autoscale_window_seconds).

One call per tick (the operator's autoscale_interval_seconds) turns one window of metrics into a replica count:

* demand (req/s to plan for) = the arrival rate (first tokens plus the waiting queue's growth over the window)
  + a backlog beyond the short queue every busy replica has (what it admits in `queue_allowance` of the TTFT
  target), spread over `queue_drain_s`
  + a rising trend (least squares over `trend_window_s`) carried `forecast_s` ahead: a new replica takes a minute
  or more to start, so the count must be right for the load a minute from now
  + `rate_spread` standard deviations of the observed rates around their trend line over `spread_window_s`: bursty
  traffic keeps more in hand than smooth traffic at the same mean, without a fixed headroom that would waste GPUs on
  smooth traffic (around the trend, not the mean: a steady ramp down after a peak is no burst, and counting it as
  one held 10-12 replicas while the rate wanted 5-6);
* capacity (predictive, the main signal): ceil(demand / (one replica's SLO capacity × `headroom`)). The capacity is
  the performance model's `max_request_rate` at the lengths observed, which already keeps 10 % below saturation;
* queue (reactive to the queue itself, before the rate shows it): when the waiting queue is beyond the normal
  allowance and has grown over the last `queue_growth_window_s`, its growth (req/s arriving beyond what the
  replicas serve) asks for that many replicas' capacity more, and at least one more when none is starting. A 60 s
  rate window reacts to a burst in its first seconds with a fraction of it; the queue's slope shows it at once;
* latency (reactive, for what the model misses): once the latencies describe the present — nothing starting and no
  backlog for a whole window, since TTFT is observed at first token and over a window — a p95 above
  `latency_margin` × its target asks for one replica more (up to `latency_step` × the ready ones). The margin sits
  under the target because replicas take minutes to arrive: at the target the SLO is already being lost. While
  replicas start, they are the response already, and nothing is added; once the replicas it added serve, a p95
  that has not come down by `tolerance` is left alone below the target for `latency_probe_s` (see decide);
* near the target (within `tolerance`) the count holds.

Scale up fast, scale down slowly: the highest recommendation inside the scale-down stabilization window wins (as the
HPA's behavior does), scale-ups are bounded per tick (×`max_scale_up_factor`, at least +`max_scale_up_step`), and
replicas still starting are never cancelled by a momentary dip. The first decision seeds the window with the
replicas in force, so a restarted operator waits a whole window before it scales down. Everything stays within the
bounds (spec.replicas and policy). Scale to zero is opt-in (`scale_to_zero` with min_replicas 0): after
`idle_before_zero_s` with no request arriving, running or waiting; the next request then waits for a cold start.

The defaults were chosen with a trace-driven simulation (bench/autoscale.py; docs/autoscaling.md has the
procedure, the hold-outs and where the targets are not met).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

Rates = tuple[tuple[float, float], ...]  # (time, observed arrival rate) pairs, oldest first


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
    # What the calibrated model expects at this window's load per ready replica (perf.in_force.predicted_p95); None:
    # it cannot say (no model, no lengths yet, or the load saturates a replica).
    expected_ttft_p95_s: float | None = None
    expected_itl_p95_s: float | None = None


@dataclass(frozen=True)
class Targets:
    """What one replica of the current plan can do, and the SLO to hold."""

    ttft_p95_s: float | None
    itl_p95_s: float | None
    capacity_rps: float | None  # requests/s one replica sustains within the SLO (None: unknown, reactive only)
    max_running: int  # max-num-seqs: the batch one replica runs
    # Across pools (scaling.capacity): the capacities of the replicas in force, in the order a scale-down keeps
    # them (the primary pool's first), and capacity_rps is then what one more replica adds. Empty: every replica
    # has capacity_rps.
    in_force: tuple[float, ...] = ()

    @property
    def mean_capacity_rps(self) -> float | None:
        return sum(self.in_force) / len(self.in_force) if self.in_force else self.capacity_rps


@dataclass(frozen=True)
class Behavior:
    min_replicas: int
    max_replicas: int
    scale_up_window_s: float = 0.0
    scale_down_window_s: float = 300.0
    headroom: float = 1.0  # plan for this share of a replica's SLO capacity (the model keeps 10 % in hand already)
    tolerance: float = 0.10  # latency within target × (1 ± tolerance) causes no reactive change
    max_scale_up_factor: float = 2.0  # per tick, at least +max_scale_up_step
    max_scale_up_step: int = 4
    scale_to_zero: bool = False
    idle_before_zero_s: float = 600.0
    window_s: float = 60.0  # the metrics window each observation covers (the operator's autoscale_window_seconds)
    queue_allowance: float = 0.25  # normal queue per ready replica: what it admits in this share of the TTFT target
    queue_drain_s: float = 60.0  # a backlog beyond that counts as extra demand, to be served within this time
    latency_step: float = 1.0  # the most the latency signal multiplies the ready replicas by (and at least +1)
    latency_margin: float = 0.6  # a settled p95 above this share of its target adds replicas
    forecast_s: float = 60.0  # extrapolate a rising arrival rate this far ahead (0: off)
    trend_window_s: float = 240.0  # the recent past whose rates give the trend
    rate_spread: float = 1.0  # plan for the rate plus this many standard deviations of its recent swings
    spread_window_s: float = 300.0  # the recent past whose rates give that deviation
    queue_growth_window_s: float = 30.0  # the recent past whose waiting gauges give the queue's growth (0: off)
    # The queue's growth is a signal from this share of one replica's capacity on: a slope of a bursty gauge below
    # it is noise (one request waiting a moment, 0.02 req/s, added a replica in CI), and the backlog term of the
    # demand already serves a small steady excess.
    queue_growth_floor: float = 0.1
    # How long a latency signal that replicas did not answer stays ignored (below the target) before one more
    # replica may test it again.
    latency_probe_s: float = 600.0


@dataclass(frozen=True)
class ScalerState:
    """Carried from one decision to the next (kept in memory; rebuilt from scratch after a restart)."""

    recommendations: tuple[tuple[float, int], ...] = ()
    idle_since: float | None = None
    rates: Rates = ()  # for the trend and the spread
    unsettled_at: float | None = None  # last time a backlog or starting replicas made the latencies stale
    waiting: Rates = ()  # (time, waiting requests): the queue's growth
    # (time, ready replicas, latency ratio) when the latency signal last added replicas: if the p95 has not come
    # down once those are serving, more replicas do not lower it (see recommend).
    latency_probe: tuple[float, int, float] | None = None


@dataclass(frozen=True)
class Decision:
    replicas: int
    recommendation: int  # before stabilization and bounds
    reason: str
    state: ScalerState = field(default_factory=ScalerState)


def _backlog(obs: Observation, targets: Targets, behavior: Behavior, ready: int) -> float:
    """Waiting requests beyond the short queue that ready replicas always have between two scheduler steps: what
    each admits in `queue_allowance` of the TTFT target, and never less than one request. An arrival waits for the
    next step (or behind a chunked prefill), so the gauge reads one waiting on a replica at half its capacity; with
    a slow replica's allowance under one, that lone request read as a backlog and added a replica (CI, 0.8 req/s
    on a 1.5 req/s replica)."""
    if obs.waiting <= 0:
        return 0.0
    if targets.mean_capacity_rps and targets.ttft_p95_s:
        normal = max(1.0, targets.mean_capacity_rps * targets.ttft_p95_s * behavior.queue_allowance)
    else:
        normal = float(targets.max_running)
    return max(0.0, obs.waiting - max(ready, 1) * normal)


def _trend(rates: Rates) -> float:
    """Least-squares slope (req/s per s) of the observed rates; 0 with fewer than three."""
    if len(rates) < 3:
        return 0.0
    mean_t = sum(t for t, _ in rates) / len(rates)
    mean_r = sum(r for _, r in rates) / len(rates)
    var = sum((t - mean_t) ** 2 for t, _ in rates)
    return sum((t - mean_t) * (r - mean_r) for t, r in rates) / var if var > 0 else 0.0


def _within(rates: Rates, now: float, window_s: float) -> Rates:
    """The (time, rate) observations of the last `window_s`."""
    return tuple(p for p in rates if now - p[0] <= window_s)


def _trend_history(rates: Rates, now: float, window_s: float) -> Rates:
    """The rates of the last `window_s`; none until they span half of it. A slope from a few overlapping windows
    is noise, and the forecast multiplies it — 60 s ahead from ten seconds of history doubled a steady rate in the
    end-to-end tests — so a freshly started (or restarted) operator extrapolates no trend at first. (The spread
    needs no such wait: from a short history it reads low, and it only ever adds a margin.)"""
    recent = _within(rates, now, window_s)
    return recent if recent and now - recent[0][0] >= window_s / 2 else ()


def _spread(rates: Rates, *, around_trend: bool) -> float:
    """Standard deviation of the observed rates around their least-squares line, or around their mean while there
    is too little history for a line (`around_trend` False, as for the trend itself: a line through three nearby
    rates leaves one degree of freedom, and its residuals read a steady load as a burst — in the end-to-end tests
    a freshly started scrape source planned for 1.45 req/s under 0.8)."""
    if len(rates) < 2:
        return 0.0
    mean_t = sum(t for t, _ in rates) / len(rates)
    mean_r = sum(r for _, r in rates) / len(rates)
    fitted = around_trend and len(rates) >= 3
    slope = _trend(rates) if fitted else 0.0
    residuals = [r - mean_r - slope * (t - mean_t) for t, r in rates]
    free = len(rates) - (2 if fitted else 1)
    return math.sqrt(sum(x * x for x in residuals) / free)


def _queue_growth(waiting: Rates) -> float:
    """The waiting queue's least-squares slope (requests per second) over the samples given; 0 with fewer than two
    or when the last sample is no higher than the first (a queue already draining is no new demand)."""
    if len(waiting) < 2 or waiting[-1][1] <= waiting[0][1]:
        return 0.0
    if len(waiting) == 2:
        (t0, w0), (t1, w1) = waiting
        return (w1 - w0) / (t1 - t0) if t1 > t0 else 0.0
    return max(0.0, _trend(waiting))


def demand(
    obs: Observation, targets: Targets, behavior: Behavior, ready: int, *, trend: float = 0.0, spread: float = 0.0
) -> float:
    """Requests per second to plan for: arrivals, plus a backlog spread over queue_drain_s, plus a rising trend
    carried forecast_s ahead, plus rate_spread standard deviations of the recent rates."""
    backlog = _backlog(obs, targets, behavior, ready)
    ahead = max(0.0, trend) * behavior.forecast_s + behavior.rate_spread * spread
    return obs.request_rate + backlog / behavior.queue_drain_s + ahead


def _capacity_estimate(wanted: float, targets: Targets, behavior: Behavior) -> int:
    if not targets.capacity_rps or targets.capacity_rps <= 0:
        return 0
    return math.ceil(wanted / (targets.capacity_rps * behavior.headroom) - 1e-9)


def _replicas_for(wanted: float, targets: Targets, behavior: Behavior) -> int:
    """The fewest replicas whose capacity holds `wanted`: the replicas in force in the order a scale-down keeps
    them, then as many more as needed at what one more adds (all at capacity_rps without in_force)."""
    if not targets.in_force or not targets.capacity_rps or targets.capacity_rps <= 0:
        return _capacity_estimate(wanted, targets, behavior)
    need, held = wanted / behavior.headroom, 0.0
    if need <= 1e-9 * targets.capacity_rps:
        return 0
    for count, capacity in enumerate(targets.in_force, start=1):
        held += capacity
        if held >= need - 1e-9 * capacity:
            return count
    return len(targets.in_force) + _capacity_estimate((need - held) * behavior.headroom, targets, behavior)


def _latency_ratio(obs: Observation, targets: Targets) -> float | None:
    ratios = []
    if targets.ttft_p95_s and obs.ttft_p95_s is not None:
        ratios.append(obs.ttft_p95_s / targets.ttft_p95_s)
    if targets.itl_p95_s and obs.itl_p95_s is not None:
        ratios.append(obs.itl_p95_s / targets.itl_p95_s)
    return max(ratios) if ratios else None


def _latency_excess(obs: Observation, targets: Targets, behavior: Behavior) -> float | None:
    """The observed p95s over the point where the latency signal acts (above 1: act), the larger of TTFT and ITL.
    That point is `latency_margin` × the target, raised to what the calibrated model expects at this load (plus the
    tolerance) where it expects more, but never above (1 − tolerance) × the target. A p95 the model explains at
    this load is the capacity term's to answer: reacting to it as well added one replica per settled window under a
    steady long-context load until replicas.max (bench, Mooncake ×4: 2.4× the oracle's GPU-hours)."""
    excess = []
    for observed, target, expected in (
        (obs.ttft_p95_s, targets.ttft_p95_s, obs.expected_ttft_p95_s),
        (obs.itl_p95_s, targets.itl_p95_s, obs.expected_itl_p95_s),
    ):
        if not target or observed is None:
            continue
        point = target * behavior.latency_margin
        if expected is not None:
            point = min(target * (1 - behavior.tolerance), max(point, expected * (1 + behavior.tolerance)))
        excess.append(observed / point)
    return max(excess) if excess else None


def recommend(
    obs: Observation,
    targets: Targets,
    behavior: Behavior,
    serving: int,
    ready: int | None = None,
    *,
    trend: float = 0.0,
    spread: float = 0.0,
    settled: bool = True,
    queue_growth: float = 0.0,
    unanswered: bool = False,
) -> tuple[int, str]:
    """The replicas needed now, before stabilization, and why. `serving` counts ready and starting replicas,
    `ready` those already serving (default: all), `trend` the arrival rate's slope (req/s per second), `settled`
    whether the latencies describe the present (see decide), `queue_growth` the waiting queue's slope (req/s),
    `unanswered` whether replicas the latency signal added lately left the p95 where it was, or none can be added
    (the count is at replicas.max): below the target it then adds and holds nothing (a p95 set by the prompts'
    own prefill, which no replica count lowers, ratcheted long-context deployments to replicas.max); at the target
    it still acts."""
    ready = serving if ready is None else ready
    wanted = demand(obs, targets, behavior, ready, trend=trend, spread=spread)
    capacity = _replicas_for(wanted, targets, behavior)
    queue = 0
    floor = behavior.queue_growth_floor * (targets.capacity_rps or 0.0)
    if queue_growth > floor and _backlog(obs, targets, behavior, ready) > 0:
        more = _capacity_estimate(queue_growth, targets, behavior) if targets.capacity_rps else 1
        queue = max(ready + more, serving + (0 if serving > ready else 1))
    ratio = _latency_ratio(obs, targets)
    excess = _latency_excess(obs, targets, behavior)
    reactive = 0
    below_target = ratio is not None and ratio < 1 - behavior.tolerance
    if ratio is not None and excess is not None and excess > 1 and settled and not (unanswered and below_target):
        # Replicas still starting are the response on its way; else at least one more, up to latency_step times.
        step = min(excess, behavior.latency_step)
        reactive = serving if serving > ready else max(ready + 1, math.ceil(max(ready, 1) * step))
    elif ratio is not None and ratio >= 1 - behavior.tolerance:
        reactive = serving  # near the target: no reason to move either way
    candidates = {"capacity": capacity, "queue": queue, "latency": reactive}
    if not any(candidates.values()):
        candidates["hold"] = serving if obs.request_rate > 0 or obs.running > 0 or obs.waiting > 0 else 0
    winner = max(candidates, key=lambda k: candidates[k])
    per_replica = targets.mean_capacity_rps or 0
    detail = {
        "capacity": f"{wanted:.2f} req/s over {per_replica:.2f} req/s per replica within SLO",
        "queue": f"{obs.waiting:.0f} waiting, growing {queue_growth:.2f} req/s",
        "latency": f"observed p95 at {ratio or 0:.2f}× the target",
        "hold": "no signal to change",
    }[winner]
    if winner == "capacity" and obs.waiting:
        detail += f" ({obs.waiting:.0f} waiting)"
    return candidates[winner], f"{winner}: {detail}"


def decide(
    obs: Observation, targets: Targets, behavior: Behavior, *, current: int, starting: int, state: ScalerState
) -> Decision:
    """Replicas to set. `current` is the replica count in force (ready + starting), `starting` those not ready yet."""
    span = max(behavior.trend_window_s, behavior.spread_window_s)
    rates = (*((t, r) for t, r in state.rates if obs.time - t <= span), (obs.time, obs.request_rate))
    trend_rates = _trend_history(rates, obs.time, behavior.trend_window_s)
    trend = _trend(trend_rates) if behavior.forecast_s else 0.0
    spread = _spread(_within(rates, obs.time, behavior.spread_window_s), around_trend=bool(trend_rates))
    ready = current - starting
    unsettled_at = state.unsettled_at
    if starting or _backlog(obs, targets, behavior, ready) > 0:
        unsettled_at = obs.time
    # Latencies are observed at first token and over a window: after a backlog or while replicas start they
    # describe a past the capacity estimate already answers. React to them only once a whole window is settled.
    settled = unsettled_at is None or obs.time - unsettled_at >= behavior.window_s
    waiting = (
        *((t, w) for t, w in state.waiting if obs.time - t <= behavior.queue_growth_window_s),
        (obs.time, obs.waiting),
    )
    growth = _queue_growth(waiting) if behavior.queue_growth_window_s > 0 else 0.0
    ratio = _latency_ratio(obs, targets)
    probe = state.latency_probe
    if probe is not None and obs.time - probe[0] > behavior.latency_probe_s:
        probe = None
    # At replicas.max no replica can answer a latency signal, so below the target it holds nothing either: it
    # recommended max + 1 on every pass and pinned a long-context deployment at max (48) for the whole trace while
    # capacity asked for about 35 (bench, Mooncake ×1.4 seed 0); its probe, refreshed at the bound on every pass,
    # never saw more replicas ready than when it was taken. Above the target it still holds max.
    unanswered = current >= behavior.max_replicas or (
        probe is not None
        and settled
        and ready > probe[1]
        and ratio is not None
        and ratio >= probe[2] * (1 - behavior.tolerance)
    )
    recommendation, reason = recommend(
        obs,
        targets,
        behavior,
        current,
        ready,
        trend=trend,
        spread=spread,
        settled=settled,
        queue_growth=growth,
        unanswered=unanswered,
    )
    if reason.startswith("latency:") and recommendation > current and ratio is not None:
        probe = (obs.time, ready, ratio)
    elif ratio is None or (probe is not None and ratio < probe[2] * (1 - behavior.tolerance)):
        # The p95 came down (the replicas answered the signal) or nothing finished: a later signal starts afresh.
        # Not merely under the margin: a p95 the prompts' own prefill sets hovers around it, and clearing the probe
        # on each dip let the next window add a replica (bench, Mooncake ×0.7: 16 → 27 while capacity asked for 11).
        probe = None
    idle = obs.request_rate <= 0 and obs.running <= 0 and obs.waiting <= 0
    idle_since = (state.idle_since if state.idle_since is not None else obs.time) if idle else None
    horizon = max(behavior.scale_up_window_s, behavior.scale_down_window_s)
    # The first decision sees no history: seed it with the replicas in force, as the HPA does, so that a restart
    # does not scale down before a whole window has shown it is safe.
    seed = ((obs.time, current),) if behavior.scale_down_window_s > 0 else ()
    past = state.recommendations or seed
    history = (*((t, r) for t, r in past if obs.time - t <= horizon), (obs.time, recommendation))

    if recommendation > current:
        window = [r for t, r in history if obs.time - t <= behavior.scale_up_window_s]
        wanted_up = min(window) if behavior.scale_up_window_s else recommendation  # sustained demand only
        step = max(math.ceil(current * behavior.max_scale_up_factor), current + behavior.max_scale_up_step)
        desired = min(wanted_up, step)
    else:
        window = [r for t, r in history if obs.time - t <= behavior.scale_down_window_s]
        desired = max(window)  # the highest recent need: no flapping on noisy load
        if starting and desired < current:
            desired = current  # never cancel replicas on their way up on a momentary dip
            reason += "; replicas still starting count as capacity"

    floor = behavior.min_replicas
    if floor == 0:
        # Zero only when opted in and idle long enough; any request (arriving or queued) needs a replica.
        idle_long = idle_since is not None and obs.time - idle_since >= behavior.idle_before_zero_s
        zero_ok = behavior.scale_to_zero and idle_long
        busy = obs.request_rate > 0 or obs.waiting > 0 or obs.running > 0
        floor = 0 if zero_ok and not busy else min(1, behavior.max_replicas)
    bounded = max(floor, min(desired, behavior.max_replicas))
    if bounded != desired:
        reason += f"; bounded to {floor}..{behavior.max_replicas}"
    next_state = ScalerState(history, idle_since, rates, unsettled_at, waiting, probe)
    return Decision(bounded, recommendation, reason, next_state)
