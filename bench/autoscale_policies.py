"""The scaling policies bench/autoscale.py compares, the hindsight oracle, and the loop that drives them.

Every policy sees the simulation the way its real counterpart sees a cluster, on its own period:

* static: a fixed replica count (at the peak minute's rate, or the mean rate, over one replica's SLO capacity);
* concurrency target, like KubeAI (substratusai/kubeai@09cf9ba: internal/modelautoscaler/autoscaler.go,
  internal/config/system.go): every 10 s it samples the active requests (in flight at the replicas plus held at
  the router), averages the last 10 minutes of samples, and wants ceil(average / target); a scale-down happens
  only after ceil(scaleDownDelaySeconds / 10 s) consecutive lower answers (default 30 s). The moving average
  starts filled with the first sample (KubeAI starts it at zero, which only matters after a restart);
* queue length, like KEDA on vllm:num_requests_waiting with threshold 5 (the vLLM production stack's default):
  the HPA every 15 s wants ceil(Σ waiting / 5) (an AverageValue external metric), ignores changes within its 10 %
  tolerance, scales up by at most max(100 %, 4 pods) per period and down only to the highest recommendation of the
  last 300 s (the HPA's default behavior);
* rightsizer: rightsizer.scaling.decision.decide every sync period, fed the observations the operator builds from
  Prometheus: p95 TTFT and ITL over the window from histogram bucket deltas, the arrival rate over the window, the
  waiting and running gauges, with Targets from perf.max_request_rate at the declared workload and the plan's
  max_num_seqs; and, as the operator does, each window also feeds self-calibration (scaling.calibration), whose
  corrected model gives the per-replica capacity (`rightsizer-model` is the same without calibration);
* oracle: see oracle_schedule.

The loop advances the simulation in ticks of 5 s; a policy acts on the ticks that fall on its period.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from bench.autoscale_sim import READY, STARTING, Simulation, WindowMetrics
from rightsizer.perf import Replica
from rightsizer.perf.in_force import predicted_p95
from rightsizer.scaling import decision as autoscale
from rightsizer.scaling.calibration import Calibration, observe
from rightsizer.scaling.window import WindowStats

TICK_S = 5.0


class Policy(Protocol):
    name: str
    period_s: float
    lead_s: float | None  # None: new pods start when asked; else they are ready at once, billed from lead_s ago

    def decide(self, sim: Simulation, now: float, current: int) -> int: ...


@dataclass
class Timeline:
    """Per tick: time, replicas in force (ready + starting), ready, draining."""

    times: list[float] = field(default_factory=list)
    serving: list[int] = field(default_factory=list)
    ready: list[int] = field(default_factory=list)
    draining: list[int] = field(default_factory=list)


def run(sim: Simulation, policy: Policy, initial: int) -> Timeline:
    """Play the whole trace under `policy`, from `initial` ready replicas, until every request has finished."""
    sim.scale_to(initial, 0.0, lead=0.0)
    timeline = Timeline()
    every = max(1, round(policy.period_s / TICK_S))
    tick, now = 0, 0.0
    n = len(sim.arrival)
    while True:
        tick += 1
        now = tick * TICK_S
        sim.feed(now)
        sim.advance_all(now)
        sim.sample_gauges(now)
        serving = sim.serving()
        if tick % every == 0:
            wanted = policy.decide(sim, now, len(serving))
            if wanted != len(serving):
                sim.scale_to(wanted, now, lead=policy.lead_s)
                serving = sim.serving()
        timeline.times.append(now)
        timeline.serving.append(len(serving))
        timeline.ready.append(sum(1 for s in serving if s.state == READY))
        timeline.draining.append(sum(1 for s in sim.servers if s.state == "draining"))
        if sim.next_arrival >= n and now >= sim.horizon and not any(s.in_flight for s in sim.servers):
            break
    sim.advance_all(math.inf)
    return timeline


# --- the policies -------------------------------------------------------------------------------------------------


@dataclass
class Static:
    name: str
    replicas: int
    period_s: float = TICK_S
    lead_s: float | None = None

    def decide(self, sim: Simulation, now: float, current: int) -> int:
        return self.replicas


@dataclass
class ConcurrencyTarget:
    """KubeAI's autoscaler (see the module docstring)."""

    target: float
    min_replicas: int
    max_replicas: int
    name: str = "concurrency"
    period_s: float = 10.0
    window_s: float = 600.0
    scale_down_delay_s: float = 30.0
    lead_s: float | None = None
    _samples: deque[float] = field(default_factory=deque)
    _downs: int = 0

    def decide(self, sim: Simulation, now: float, current: int) -> int:
        active = float(sum(s.in_flight for s in sim.servers) + len(sim.pending))
        size = math.ceil(self.window_s / self.period_s)
        if not self._samples:
            self._samples.extend([active] * size)
        self._samples.append(active)
        while len(self._samples) > size:
            self._samples.popleft()
        wanted = math.ceil(sum(self._samples) / len(self._samples) / self.target)
        wanted = max(self.min_replicas, min(self.max_replicas, wanted))
        if wanted < current:
            self._downs += 1
            if self._downs < math.ceil(self.scale_down_delay_s / self.period_s):
                return current
        self._downs = 0
        return wanted


@dataclass
class QueueLength:
    """KEDA's Prometheus scaler on Σ vllm:num_requests_waiting through the HPA (see the module docstring)."""

    threshold: float
    min_replicas: int
    max_replicas: int
    name: str = "queue"
    period_s: float = 15.0
    tolerance: float = 0.1
    scale_down_window_s: float = 300.0
    lead_s: float | None = None
    _history: deque[tuple[float, int]] = field(default_factory=deque)

    def decide(self, sim: Simulation, now: float, current: int) -> int:
        waiting = sum(len(s.waiting) for s in sim.servers) + len(sim.pending)
        ratio = waiting / (self.threshold * max(current, 1))
        wanted = current if abs(1 - ratio) <= self.tolerance else math.ceil(waiting / self.threshold)
        wanted = max(self.min_replicas, min(self.max_replicas, wanted))
        if not self._history:
            self._history.append((now, current))  # the HPA seeds its window with the replicas it first sees
        self._history.append((now, wanted))
        while self._history and now - self._history[0][0] >= self.scale_down_window_s:
            self._history.popleft()
        if wanted < current:
            return max(min(current, max(r for _, r in self._history)), wanted)
        return min(wanted, max(2 * current, current + 4))


@dataclass
class Rightsizer:
    """scaling.decision.decide, fed like the operator feeds it (rightsizer.scaling.window, rightsizer.perf.in_force):
    the arrival rate is first tokens plus the waiting queue's growth over the window, and one replica's capacity is
    perf.max_request_rate at the mean lengths of the requests that finished in the window (`capacity_at`), or at
    the declared workload before any finished."""

    targets: autoscale.Targets
    behavior: autoscale.Behavior
    # (replica, mean prompt, mean output) -> req/s per replica; the replica is the model, corrected by calibration
    capacity_at: Callable[[Replica, float, float], float] | None = None
    model: Replica | None = None  # the plan's replica as the model sees it: with it, windows feed calibration
    period_s: float = 15.0  # the operator's autoscale_interval_seconds
    window_s: float = 60.0  # the operator's autoscale_window_seconds
    name: str = "rightsizer"
    lead_s: float | None = None
    state: autoscale.ScalerState = field(default_factory=autoscale.ScalerState)
    decisions: list[autoscale.Decision] = field(default_factory=list)
    calibration: Calibration = field(default_factory=Calibration)
    calibrate: bool = True

    def decide(self, sim: Simulation, now: float, current: int) -> int:
        m = sim.window(now, self.window_s)
        replica = self.model
        if self.model is not None and self.calibrate:
            self.calibration = observe(self.calibration, stats_of(m), self.model, now, window_s=self.window_s)
            replica = self.calibration.corrected(self.model)
        starting = sum(1 for s in sim.servers if s.state == STARTING)
        expected = None  # what the operator computes the same way (controller.autoscaler._predicted)
        if replica is not None and m.mean_prompt_tokens is not None and m.mean_output_tokens is not None:
            ready = max(1, sum(1 for s in sim.servers if s.state == READY))
            expected = predicted_p95(replica, m.mean_prompt_tokens, m.mean_output_tokens, m.request_rate / ready)
        obs = autoscale.Observation(
            time=now,
            request_rate=m.request_rate,
            ttft_p95_s=m.ttft_p95_s,
            itl_p95_s=m.itl_p95_s,
            waiting=float(m.waiting),
            running=float(m.running),
            kv_usage=m.kv_usage,
            expected_ttft_p95_s=expected[0] if expected else None,
            expected_itl_p95_s=expected[1] if expected else None,
        )
        targets = self.targets
        if (
            self.capacity_at is not None
            and replica is not None
            and m.mean_prompt_tokens is not None
            and m.mean_output_tokens is not None
        ):
            capacity = self.capacity_at(replica, m.mean_prompt_tokens, m.mean_output_tokens)
            targets = replace(targets, capacity_rps=capacity)
        d = autoscale.decide(obs, targets, self.behavior, current=current, starting=starting, state=self.state)
        self.state = d.state
        self.decisions.append(d)
        return d.replicas


def stats_of(m: WindowMetrics) -> WindowStats:
    """The window as the operator's metrics source reports it (scaling.window.WindowStats)."""
    return WindowStats(
        pods=m.pods,
        request_rate=m.request_rate,
        ttft_p95_s=m.ttft_p95_s,
        itl_p95_s=m.itl_p95_s,
        waiting=float(m.waiting),
        running=float(m.running),
        kv_usage=m.kv_usage,
        mean_prompt_tokens=m.mean_prompt_tokens,
        mean_generation_tokens=m.mean_output_tokens,
        finished=float(m.finished),
        ttft_mean_s=m.ttft_mean_s,
        itl_mean_s=m.itl_mean_s,
        prefill_mean_s=m.prefill_mean_s,
    )


@dataclass
class Schedule:
    """A replica count per interval, known in advance: pods are started `lead_s` before they are needed."""

    counts: list[int]
    interval_s: float
    lead_s: float | None
    name: str = "oracle"

    @property
    def period_s(self) -> float:
        return self.interval_s

    def decide(self, sim: Simulation, now: float, current: int) -> int:
        i = min(round(now / self.interval_s), len(self.counts) - 1)
        return self.counts[i]


# --- the oracle -----------------------------------------------------------------------------------------------------


def _attainment(sim: Simulation, lo: int, hi: int, target_s: float) -> float:
    if hi <= lo:
        return 1.0
    first = np.asarray(sim.first_token[lo:hi])
    ttft = first - sim.arrivals[lo:hi] + sim.engine.request_overhead_s
    return float(np.mean(np.nan_to_num(ttft, nan=math.inf) <= target_s))


def oracle_needs(
    sim: Simulation, *, interval_s: float, ttft_target_s: float, attainment: float, bounds: tuple[int, int]
) -> list[int]:
    """The fewest ready replicas per interval such that at least `attainment` of the requests arriving in the
    interval get their first token within the target, interval by interval in time order, each starting from the
    state the previous intervals' choices left (queues carried over). A trial for interval [a, b) routes its
    arrivals and runs on to b + target: a request without its first token by then has missed."""
    lo_bound, hi_bound = bounds
    needs: list[int] = []
    count = lo_bound
    intervals = math.ceil(sim.horizon / interval_s) + 1
    for i in range(intervals):
        start, end = i * interval_s, (i + 1) * interval_s
        first, last = (int(i) for i in np.searchsorted(sim.arrivals, [start, end]))
        snap = sim.snapshot()

        def meets(
            n: int,
            snap: tuple[object, ...] = snap,
            start: float = start,
            end: float = end,
            span: range = range(first, last),
        ) -> bool:
            sim.restore(snap)
            sim.scale_to(n, start, lead=0.0)
            sim.feed(end)
            sim.advance_all(end + ttft_target_s)
            return _attainment(sim, span.start, span.stop, ttft_target_s) >= attainment

        if last == first:
            count = lo_bound
        elif meets(count):
            low, high = lo_bound, count  # high meets; find the fewest that does
            while low < high:
                mid = (low + high) // 2
                low, high = (low, mid) if meets(mid) else (mid + 1, high)
            count = high
        else:
            low, high = count + 1, min(hi_bound, max(count + 1, 2 * count))
            while high < hi_bound and not meets(high):
                low, high = high + 1, min(hi_bound, 2 * high)
            while low < high:
                mid = (low + high) // 2
                low, high = (low, mid) if meets(mid) else (mid + 1, high)
            count = high
        sim.restore(snap)
        sim.scale_to(count, start, lead=0.0)
        sim.feed(end)
        sim.advance_all(end)
        needs.append(count)
    return needs


def cheapest_cover(needs: list[int], interval_s: float, startup_s: float) -> list[int]:
    """The cheapest replica counts that give at least needs[i] ready replicas in every interval, when every pod
    costs the start-up delay on top of its ready time: for each level j (the j-th replica), a gap in which fewer
    than j are needed stays filled when it is shorter than the start-up delay (keeping the pod idle costs less than
    stopping it and starting another). Levels are independent, so this is optimal for interchangeable pods."""
    counts = list(needs)
    for level in range(1, max(needs, default=0) + 1):
        up = [n >= level for n in needs]
        i = 0
        while i < len(up):
            if up[i]:
                i += 1
                continue
            j = i
            while j < len(up) and not up[j]:
                j += 1
            inside = i > 0 and j < len(up)  # a gap between two needs (not before the first or after the last)
            if inside and (j - i) * interval_s < startup_s:
                for g in range(i, j):
                    counts[g] = max(counts[g], level)
            i = j
    return counts
