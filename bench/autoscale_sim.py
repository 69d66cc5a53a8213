"""A discrete-event simulation of vLLM replicas behind a least-loaded router, step by step (bench/autoscale.py's core).

Each replica runs vLLM V1's continuous-batching loop (vllm/v1/core/sched/scheduler.py, 0.19.0) with step times from
the performance model (rightsizer.perf.Replica.step_seconds):

* every step decodes one token for each running sequence that has its first token, and spends the rest of the
  token budget (max_num_batched_tokens − decoding sequences) on prompts: first the prompt already being prefilled,
  then waiting requests in arrival order, each admitted while running < max_num_seqs and the KV cache holds it;
  a prompt larger than the budget left is chunked and continues at the next step;
* a request's first token comes at the end of the step that prefills its last prompt token; its next tokens come
  one per step; every decoding sequence's inter-token latency is the step's duration;
* the step time is the performance model's for (decoding sequences, their mean context, prompt tokens in the step,
  their mean start, number of prompts), so mixed steps cost what the roofline says; with several prompt chunks in
  one step, their attention is priced at the chunks' mean start (a small error: attention is a few per cent of a
  prefill step for these prompt lengths);
* each request's TTFT also includes the performance model's per-request overhead (HTTP, tokenisation).

Simplifications, none of which changes which policy wins: the KV cache reserves a request's final length at
admission, so vLLM's preemption (which happens when blocks run out mid-decode) never occurs; with the plans this
benchmark uses the batch is bounded by max_num_seqs long before the KV cache (checked: reserved tokens stay below the
cache). Prefix caching is off (the traces carry no prompt contents).

Replicas are created, become ready after the pod start-up delay, and on scale-down either vanish (still starting)
or drain: removed from routing at once, billed until their last request finishes (the grace period Kubernetes gives
a terminating pod). When no replica is ready, requests wait at the router (KubeAI's proxy behaviour) and go to the
first replica that becomes ready.

Metrics are recorded as vLLM exports them: TTFT and ITL histograms with vLLM's bucket bounds
(vllm/v1/metrics/loggers.py, 0.19.0, L728–785) in one-second bins, and the running/waiting gauges; a window's
quantile is computed from bucket deltas exactly as PromQL's histogram_quantile does.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bench.autoscale_trace import Trace

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0)
TTFT_BUCKETS += (40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0)
ITL_BUCKETS += (80.0,)

STARTING, READY, DRAINING, GONE = "starting", "ready", "draining", "gone"

StepFn = Callable[[float, float, float, float, float | None], float]


@dataclass(frozen=True)
class Engine:
    """What every replica is: its step-time function and vLLM's scheduler limits."""

    step: StepFn  # (decode seqs, mean context, prefill tokens, prefill start, prompts) -> seconds
    max_num_seqs: int
    max_num_batched_tokens: int
    kv_tokens: int
    request_overhead_s: float
    gpus: int


def histogram_quantile(q: float, counts: Sequence[float], bounds: Sequence[float]) -> float | None:
    """PromQL's histogram_quantile over per-bucket counts (the last count is the +Inf bucket): linear
    interpolation inside the bucket holding the rank, the lowest bucket starting at 0, +Inf answered by the
    highest finite bound. None without observations."""
    total = float(sum(counts))
    if total <= 0:
        return None
    rank = q * total
    below = 0.0
    for i, count in enumerate(counts):
        if below + count >= rank and count > 0:
            if i >= len(bounds):
                return float(bounds[-1])
            lower = bounds[i - 1] if i > 0 else 0.0
            return lower + (bounds[i] - lower) * (rank - below) / count
        below += count
    return float(bounds[-1])


class Server:
    """One vLLM replica: its lifecycle and its scheduler state."""

    __slots__ = (
        "created",
        "ctx_sum",
        "durations",
        "finishing",
        "free_at",
        "idle_since",
        "in_flight",
        "kv_free",
        "n_decode",
        "prefilling",
        "ready_at",
        "removed_at",
        "sid",
        "state",
        "waiting",
    )

    def __init__(self, sid: int, created: float, ready_at: float, kv_tokens: int) -> None:
        self.sid = sid
        self.created = created
        self.ready_at = ready_at
        self.removed_at: float | None = None
        self.state = STARTING
        self.free_at = ready_at  # when the next step can start
        self.waiting: deque[int] = deque()
        self.prefilling: list[list[int]] = []  # [request, prompt tokens prefilled so far], admission order
        self.n_decode = 0
        self.ctx_sum = 0  # tokens in the KV cache of the decoding sequences
        self.finishing: dict[int, list[int]] = {}  # step index -> requests whose last token that step produces
        self.durations: list[float] = []  # every step's duration, in order
        self.in_flight = 0  # routed and not finished (what the router balances on)
        self.kv_free = kv_tokens
        self.idle_since = ready_at  # when in_flight last dropped to 0

    @property
    def running(self) -> int:
        return self.n_decode + len(self.prefilling)

    def advance(self, until: float, sim: Simulation) -> None:
        """Run the replica's steps that start at or before `until` (the hot loop: locals only)."""
        t = self.free_at
        waiting, prefilling, finishing, durations = self.waiting, self.prefilling, self.finishing, self.durations
        if t > until or not (self.n_decode or prefilling or waiting) or self.state in (STARTING, GONE):
            return
        engine = sim.engine
        step, max_seqs, budget_all = engine.step, engine.max_num_seqs, engine.max_num_batched_tokens
        prompt, output, arrival = sim.prompt, sim.output, sim.arrival
        first_token, first_step, admitted_at = sim.first_token, sim.first_step, sim.admitted_at
        overhead, record = engine.request_overhead_s, sim.record
        n_dec, ctx, kv_free, in_flight, k = self.n_decode, self.ctx_sum, self.kv_free, self.in_flight, len(durations)
        while t <= until and (n_dec or prefilling or waiting):
            budget = budget_all - n_dec
            tokens = chunks = start_sum = 0
            for entry in prefilling:
                if budget <= 0:
                    break
                rid, done = entry
                c = min(prompt[rid] - done, budget)
                tokens += c
                chunks += 1
                start_sum += done
                budget -= c
                entry[1] = done + c
            running = n_dec + len(prefilling)
            while waiting and budget > 0 and running < max_seqs:
                rid = waiting[0]
                need = prompt[rid] + output[rid]
                if need > kv_free and running:
                    break  # the KV cache is full: wait for a sequence to finish
                waiting.popleft()
                admitted_at[rid] = t  # vLLM's scheduled time: its prefill time runs from here to the first token
                kv_free -= need
                running += 1
                c = min(prompt[rid], budget)
                prefilling.append([rid, c])
                tokens += c
                chunks += 1
                budget -= c
            dt = step(
                n_dec, ctx / n_dec if n_dec else 0.0, tokens, start_sum / chunks if chunks else 0.0, chunks or None
            )
            t += dt
            durations.append(dt)
            if n_dec:
                ctx += n_dec
                if record:
                    sim.observe_itl(t, dt, n_dec)
            ending = finishing.pop(k, None)
            if ending:
                for rid in ending:
                    size = prompt[rid] + output[rid]
                    n_dec -= 1
                    ctx -= size
                    kv_free += size
                    in_flight -= 1
                    if record:
                        sim.observe_finish(t, rid)
            if chunks:
                still = []
                for entry in prefilling:
                    rid, done = entry
                    if done < prompt[rid]:
                        still.append(entry)
                        continue
                    first_token[rid] = t
                    first_step[rid] = k
                    if record:
                        sim.observe_ttft(t, t - arrival[rid] + overhead)
                    o = output[rid]
                    if o > 1:
                        n_dec += 1
                        ctx += prompt[rid] + 1
                        finishing.setdefault(k + o - 1, []).append(rid)
                    else:
                        kv_free += prompt[rid] + o
                        in_flight -= 1
                        if record:
                            sim.observe_finish(t, rid)
                prefilling[:] = still
            if in_flight == 0:
                self.idle_since = t
            k += 1
        self.free_at, self.n_decode, self.ctx_sum, self.kv_free, self.in_flight = t, n_dec, ctx, kv_free, in_flight

    def snapshot(self) -> tuple[object, ...]:
        return (
            self.state,
            self.ready_at,
            self.removed_at,
            self.free_at,
            tuple(self.waiting),
            [list(e) for e in self.prefilling],
            self.n_decode,
            self.ctx_sum,
            {k: list(v) for k, v in self.finishing.items()},
            len(self.durations),
            self.in_flight,
            self.kv_free,
            self.idle_since,
        )

    def restore(self, snap: tuple[object, ...]) -> None:
        (state, ready_at, removed_at, free_at, waiting, prefilling, n_decode, ctx_sum, finishing, steps, in_flight) = (
            snap[:11]
        )
        self.state, self.ready_at, self.removed_at, self.free_at = state, ready_at, removed_at, free_at  # type: ignore[assignment]
        self.waiting = deque(waiting)  # type: ignore[call-overload]
        self.prefilling = [list(e) for e in prefilling]  # type: ignore[attr-defined]
        self.n_decode, self.ctx_sum = n_decode, ctx_sum  # type: ignore[assignment]
        self.finishing = {k: list(v) for k, v in finishing.items()}  # type: ignore[attr-defined]
        del self.durations[steps:]  # type: ignore[misc]
        self.in_flight = in_flight  # type: ignore[assignment]
        self.kv_free, self.idle_since = snap[11], snap[12]  # type: ignore[assignment]


class Simulation:
    """Replicas, the router and the metrics, advanced lazily: a replica runs its steps up to a time only when
    something (an arrival, a tick) needs its state then."""

    def __init__(self, trace: Trace, engine: Engine, *, startup_s: float, record_metrics: bool = True) -> None:
        self.engine = engine
        self.startup_s = startup_s
        self.horizon = trace.duration
        self.arrivals = trace.arrival
        self.arrival: list[float] = trace.arrival.tolist()
        self.prompt: list[int] = trace.prompt.tolist()
        self.output: list[int] = trace.output.tolist()
        n = len(self.arrival)
        self.first_token: list[float] = [math.nan] * n
        self.first_step: list[int] = [-1] * n
        self.admitted_at: list[float] = [math.nan] * n  # when the scheduler first took the request in
        self.server_of: list[int] = [-1] * n
        self.servers: list[Server] = []
        self.pending: deque[int] = deque()  # at the router while no replica is ready
        self.next_arrival = 0
        self.record = record_metrics
        bins = int(self.horizon) + 3600  # one-second bins, with room for the tail after the last arrival
        self._bins = bins
        self.ttft_counts = [0] * (bins * (len(TTFT_BUCKETS) + 1))
        self.itl_counts = [0] * (bins * (len(ITL_BUCKETS) + 1))
        self.ttft_sums = [0.0] * bins  # the histograms' _sum per second (their means feed self-calibration)
        self.itl_sums = [0.0] * bins
        self.finished = [0] * bins  # requests that finished, per second
        self.finished_prompt = [0] * bins  # their prompt tokens
        self.finished_output = [0] * bins  # their generated tokens
        self.finished_prefill = [0.0] * bins  # their prefill times (vllm:request_prefill_time_seconds' sum)
        self.waiting_at: dict[float, int] = {}  # the waiting gauge (summed) at each sample time
        self._events: list[tuple[float, int, int]] = []  # (time, seq, server) readiness

    # -- the replicas ------------------------------------------------------------------------------------------

    def live(self) -> list[Server]:
        return [s for s in self.servers if s.state != GONE]

    def serving(self) -> list[Server]:
        """Replicas in force: ready or starting (not draining)."""
        return [s for s in self.servers if s.state in (READY, STARTING)]

    def add_server(self, now: float, ready_at: float) -> Server:
        s = Server(len(self.servers), now, ready_at, self.engine.kv_tokens)
        self.servers.append(s)
        if ready_at <= now:
            self._make_ready(s, ready_at)
        else:
            heapq.heappush(self._events, (ready_at, s.sid, s.sid))
        return s

    def _make_ready(self, s: Server, t: float) -> None:
        if s.state != STARTING:
            return
        s.state = READY
        s.free_at = max(s.free_at, t)
        while self.pending:
            self._route(self.pending.popleft(), t)

    def scale_to(self, n: int, now: float, *, lead: float | None = None) -> None:
        """Set the replicas in force to n. New ones are ready after the start-up delay, or, with `lead` (the
        oracle, which starts pods ahead of need), ready now and billed from `lead` seconds ago. Removal takes
        starting replicas first (newest first), then drains the ready ones with the fewest requests in flight."""
        force = self.serving()
        for _ in range(n - len(force)):
            if lead is None:
                self.add_server(now, now + self.startup_s)
            else:
                self.add_server(now - lead, now)
        excess = len(force) - n
        if excess <= 0:
            return
        starting = sorted((s for s in force if s.state == STARTING), key=lambda s: -s.created)
        for s in starting[:excess]:
            s.state, s.removed_at = GONE, now
        excess -= min(excess, len(starting))
        ready = sorted((s for s in force if s.state == READY), key=lambda s: (s.in_flight, -s.created))
        for s in ready[:excess]:
            s.state = DRAINING
            self._maybe_gone(s, now)

    def _maybe_gone(self, s: Server, now: float) -> None:
        if s.state == DRAINING and s.in_flight == 0:
            s.state, s.removed_at = GONE, max(now, s.idle_since)

    # -- requests ----------------------------------------------------------------------------------------------

    def _route(self, rid: int, t: float) -> None:
        best: Server | None = None
        for s in self.servers:
            if s.state == READY and (best is None or s.in_flight < best.in_flight):
                best = s
        if best is None:
            self.pending.append(rid)
            return
        best.waiting.append(rid)
        best.in_flight += 1
        self.server_of[rid] = best.sid
        if best.free_at < t:
            best.free_at = t

    def advance_all(self, t: float) -> None:
        for s in self.servers:
            if s.state != GONE and s.free_at <= t:
                s.advance(t, self)
                if s.state == DRAINING:
                    self._maybe_gone(s, t)
        while self._events and self._events[0][0] <= t:
            ready_at, _, sid = heapq.heappop(self._events)
            self._make_ready(self.servers[sid], ready_at)

    def feed(self, until: float) -> None:
        """Route every request arriving before `until`, each at its arrival time."""
        arrival, i, n = self.arrival, self.next_arrival, len(self.arrival)
        while i < n and arrival[i] < until:
            t = arrival[i]
            self.advance_all(t)
            self._route(i, t)
            i += 1
        self.next_arrival = i

    # -- metrics -----------------------------------------------------------------------------------------------

    def observe_ttft(self, t: float, value: float) -> None:
        b = min(int(t), self._bins - 1) * (len(TTFT_BUCKETS) + 1) + bisect_left(TTFT_BUCKETS, value)
        self.ttft_counts[b] += 1
        self.ttft_sums[min(int(t), self._bins - 1)] += value

    def observe_itl(self, t: float, value: float, count: int) -> None:
        b = min(int(t), self._bins - 1) * (len(ITL_BUCKETS) + 1) + bisect_left(ITL_BUCKETS, value)
        self.itl_counts[b] += count
        self.itl_sums[min(int(t), self._bins - 1)] += value * count

    def observe_finish(self, t: float, rid: int) -> None:
        b = min(int(t), self._bins - 1)
        self.finished[b] += 1
        self.finished_prompt[b] += self.prompt[rid]
        self.finished_output[b] += self.output[rid]
        self.finished_prefill[b] += self.first_token[rid] - self.admitted_at[rid]

    def waiting_now(self) -> int:
        return sum(len(s.waiting) for s in self.servers if s.state in (READY, DRAINING)) + len(self.pending)

    def sample_gauges(self, now: float) -> None:
        """Remember the waiting gauge now, as a scrape would (the arrival-rate estimate needs its growth)."""
        self.waiting_at[now] = self.waiting_now()

    def window(self, now: float, seconds: float) -> WindowMetrics:
        """What Prometheus shows at `now` over the last `seconds` (rate windows end at the last full second)."""
        seconds = min(seconds, now)  # at the start there is less history than a window (as with fresh pods)
        end = min(int(now), self._bins)
        start = max(0, end - int(seconds))
        nt, ni = len(TTFT_BUCKETS) + 1, len(ITL_BUCKETS) + 1
        ttft = np.asarray(self.ttft_counts[start * nt : end * nt]).reshape(-1, nt).sum(axis=0)
        itl = np.asarray(self.itl_counts[start * ni : end * ni]).reshape(-1, ni).sum(axis=0)
        lo, hi = np.searchsorted(self.arrivals, [now - seconds, now], side="right")
        live = [s for s in self.servers if s.state in (READY, DRAINING)]
        waiting = sum(len(s.waiting) for s in live) + len(self.pending)
        before = self.waiting_at.get(now - seconds, 0) if seconds > 0 else waiting
        finished = sum(self.finished[start:end])
        ttft_count, itl_count = int(ttft.sum()), int(itl.sum())
        return WindowMetrics(
            arrivals=int(hi - lo),
            seconds=seconds,
            admitted=int(ttft.sum()),
            queue_growth=waiting - before,
            mean_prompt_tokens=sum(self.finished_prompt[start:end]) / finished if finished else None,
            mean_output_tokens=sum(self.finished_output[start:end]) / finished if finished else None,
            ttft_p95_s=histogram_quantile(0.95, ttft.tolist(), TTFT_BUCKETS),
            itl_p95_s=histogram_quantile(0.95, itl.tolist(), ITL_BUCKETS),
            waiting=waiting,
            running=sum(s.running for s in live),
            in_flight=sum(s.in_flight for s in live) + len(self.pending),
            kv_usage=(sum(1 - s.kv_free / self.engine.kv_tokens for s in live) / len(live) if live else None),
            pods=len(live),
            finished=finished,
            ttft_mean_s=sum(self.ttft_sums[start:end]) / ttft_count if ttft_count else None,
            itl_mean_s=sum(self.itl_sums[start:end]) / itl_count if itl_count else None,
            prefill_mean_s=sum(self.finished_prefill[start:end]) / finished if finished else None,
        )

    # -- snapshots (the oracle's trials) -------------------------------------------------------------------------

    def snapshot(self) -> tuple[object, ...]:
        unserved = [*self.pending]  # routed or held, no first token yet: a trial may give them one
        for s in self.servers:
            unserved.extend(s.waiting)
            unserved.extend(rid for rid, _ in s.prefilling)
        return (
            len(self.servers),
            [s.snapshot() for s in self.servers],
            tuple(self.pending),
            self.next_arrival,
            list(self._events),
            unserved,
        )

    def restore(self, snap: tuple[object, ...]) -> None:
        """Back to a snapshot, forgetting what requests got since (a trial's first tokens must not linger)."""
        count, servers, pending, next_arrival, events, unserved = snap
        for rid in range(next_arrival, self.next_arrival):  # type: ignore[call-overload]
            self.first_token[rid], self.first_step[rid], self.server_of[rid] = math.nan, -1, -1
        for rid in unserved:  # type: ignore[attr-defined]
            self.first_token[rid], self.first_step[rid] = math.nan, -1  # still queued where it was routed
        del self.servers[count:]  # type: ignore[misc]
        for s, state in zip(self.servers, servers, strict=True):  # type: ignore[call-overload]
            s.restore(state)
        self.pending = deque(pending)  # type: ignore[call-overload]
        self.next_arrival = next_arrival  # type: ignore[assignment]
        self._events = list(events)  # type: ignore[call-overload]

    # -- results -------------------------------------------------------------------------------------------------

    def gpu_hours(self, start: float = 0.0) -> float:
        """GPU time from each pod's creation to its removal, within [start, the last arrival]."""
        total = 0.0
        for s in self.servers:
            end = self.horizon if s.removed_at is None else min(s.removed_at, self.horizon)
            total += max(0.0, end - max(start, s.created))
        return total * self.engine.gpus / 3600.0

    def ttft(self) -> np.ndarray:
        return np.asarray(self.first_token) - self.arrivals + self.engine.request_overhead_s

    def itl_met(self, target_s: float, start: float = 0.0) -> np.ndarray:
        """Per request (with at least two tokens): its inter-token latency p95 (nearest rank) within target, i.e.
        at most floor(5 %) of its gaps slower. A request that never got its first token fails."""
        output = np.asarray(self.output)
        first = np.asarray(self.first_step)
        server = np.asarray(self.server_of)
        met = np.zeros(len(output), dtype=bool)
        for s in self.servers:
            mine = np.flatnonzero((server == s.sid) & (first >= 0))
            if not len(mine):
                continue
            slow = np.concatenate(([0], np.cumsum(np.asarray(s.durations) > target_s)))
            k, o = first[mine], output[mine]
            last = np.minimum(k + o, len(slow) - 1)  # gaps are steps k+1 .. k+o-1
            count = slow[last] - slow[np.minimum(k + 1, len(slow) - 1)]
            met[mine] = count <= np.floor(0.05 * (o - 1))
        return met[(output > 1) & (self.arrivals >= start)]


@dataclass(frozen=True)
class WindowMetrics:
    """One window as the operator's metrics source reports it (rightsizer.scaling.window), plus the truth."""

    arrivals: int  # the truth: requests that arrived in the window (no vLLM metric counts them)
    seconds: float
    admitted: int  # requests that got their first token (the TTFT histogram's count increase)
    queue_growth: int  # the waiting gauge's change over the window
    mean_prompt_tokens: float | None  # of the requests that finished in the window
    mean_output_tokens: float | None
    ttft_p95_s: float | None
    itl_p95_s: float | None
    waiting: int
    running: int
    in_flight: int
    kv_usage: float | None
    pods: int = 0  # replicas reporting (ready or draining)
    finished: int = 0  # requests that finished in the window
    ttft_mean_s: float | None = None  # the histograms' sum over count
    itl_mean_s: float | None = None
    prefill_mean_s: float | None = None  # of the requests that finished: admission to first token

    @property
    def request_rate(self) -> float:
        """What the operator can measure: first tokens plus the queue's growth, per second."""
        return max(0.0, (self.admitted + self.queue_growth) / self.seconds) if self.seconds > 0 else 0.0

    @property
    def arrival_rate(self) -> float:
        return self.arrivals / self.seconds
