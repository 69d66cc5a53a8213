"""vLLM's continuous batching in steady state, on top of the step model (a fluid model for fixed-length requests).

* A decode step serves every running sequence; running = min(load, max_num_seqs, KV capacity at the workload's
  mean length P + O/2). Load beyond that waits for a slot: `concurrency − capacity` requests in a closed loop,
  an Erlang-C queue (halved for fixed-length requests) for Poisson arrivals.
* Chunked prefill (always on in V1): a prompt of P tokens is processed in chunks of at most
  max_num_batched_tokens − running tokens, each inside a decode step, so those steps take longer. With ρ the
  share of time spent on other requests' prefills, the mean inter-token latency is decode_step / (1 − ρ);
  per-token ITL is two-valued (plain decode steps and steps that carry a chunk), so ITL p95 jumps to the
  chunk step once more than 5 % of steps carry one.
* TTFT = request overhead + the step in progress (uniform residual) + waiting behind other prompts (M/D/1 on
  the prefill work) + the prompt's own chunk steps (+ the admission queue).

Also the searches sizing needs: the saturation rate, the request rate and concurrency one replica serves within an
SLO, and the largest batch that keeps ITL p95 within a target.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache

from rightsizer.perf.step import Replica
from rightsizer.perf.uncertainty import interval, measured_interval

# Keep a replica below this share of the request rate at which its queue would grow without bound: the fluid
# model's latencies are means, and real arrivals are burstier than Poisson near saturation.
UTILIZATION_CEILING = 0.9
_RHO_MAX = 0.999  # prefill share of time beyond which the replica is saturated
_BISECTIONS = 40
_TOLERANCE = 1e-3  # relative: searches stop here (the model itself is good to ~10%)


@dataclass(frozen=True)
class Traffic:
    """Requests of fixed length, either from `concurrency` clients that each send the next request when the
    last one finishes (a closed loop, as benchmark tools run) or arriving at `request_rate` per second (Poisson)."""

    input_tokens: int
    output_tokens: int
    concurrency: float | None = None
    request_rate: float | None = None


@dataclass(frozen=True)
class Quantiles:
    mean: float
    p50: float
    p95: float


@dataclass(frozen=True)
class Slo:
    ttft_p95_s: float | None = None
    itl_p95_s: float | None = None

    @property
    def empty(self) -> bool:
        return self.ttft_p95_s is None and self.itl_p95_s is None

    def met_by(self, p: Prediction) -> bool:
        """Whether the prediction's pessimistic edge (perf.uncertainty) meets the targets: a plan promises only
        what the slow end of the model's held-out record meets."""
        if p.saturated:
            return False
        ttft_ok = self.ttft_p95_s is None or p.ttft_p95_high <= self.ttft_p95_s
        return ttft_ok and (self.itl_p95_s is None or p.itl_p95_high <= self.itl_p95_s)


@dataclass(frozen=True)
class Prediction:
    traffic: Traffic
    running: float  # sequences in the running batch
    capacity: int  # running slots: max_num_seqs or the KV cache at the workload's mean length
    ttft: Quantiles
    itl: Quantiles
    request_rate: float  # requests completed per second
    output_tokens_per_second: float
    decode_step_s: float  # a step without prefill at this batch
    chunk_step_s: float  # a step that carries a prefill chunk
    prefill_share: float  # ρ: share of time spent on other requests' prefill chunks
    saturated: bool  # arrivals exceed what the replica serves: the waiting queue grows without bound
    # The pessimistic edges of the p95s (perf.uncertainty): what SLO checks compare with the targets.
    ttft_p95_high: float = math.nan
    itl_p95_high: float = math.nan
    ttft_basis: str = ""
    itl_basis: str = ""

    @property
    def arrival_step_s(self) -> float:
        """The mean duration of the step a request arrives during. Arrivals land in a step with a chance in
        proportion to its length, so the chunk-carrying steps count for their share of time, not of steps."""
        decode, chunk, mean = self.decode_step_s, self.chunk_step_s, self.itl.mean
        if chunk <= decode or mean <= decode:
            return mean
        carrying = min(1.0, (mean - decode) / (chunk - decode))  # share of steps that carry a chunk
        in_chunks = carrying * chunk / mean  # share of time
        return in_chunks * chunk + (1.0 - in_chunks) * decode


@dataclass(frozen=True)
class _Cycle:
    """The steady state at a running batch and a rate of other requests' prompts."""

    decode_step: float
    chunk_step: float
    own_prefill: float  # this request's chunk steps
    prefill_share: float
    itl: Quantiles
    residual: Quantiles  # the step (or multi-step burst) in progress at arrival
    prefill_wait: Quantiles  # behind other prompts
    saturated: bool

    def ttft(self, overhead: float, admission: Quantiles) -> Quantiles:
        fixed = overhead + self.own_prefill
        parts = (self.residual, self.prefill_wait, admission)
        mean = fixed + sum(q.mean for q in parts)
        # A quantile of a sum: the largest of (one part at its quantile, the others at their means).
        p50 = fixed + max(sum(q.mean for q in parts) - q.mean + q.p50 for q in parts)
        p95 = fixed + max(sum(q.mean for q in parts) - q.mean + q.p95 for q in parts)
        return Quantiles(mean, p50, p95)


_ZERO = Quantiles(0.0, 0.0, 0.0)


def _exponential_tail(probability: float, scale: float) -> Quantiles:
    """A wait that is 0 with probability 1 − `probability` and else exponential with mean `scale`."""

    def quantile(q: float) -> float:
        return scale * math.log(probability / (1 - q)) if probability > 1 - q else 0.0

    return Quantiles(probability * scale, quantile(0.5), quantile(0.95))


def _uniform_residual(busy: float, length: float) -> Quantiles:
    """Time left of the step in progress: 0 when idle (probability 1 − busy), else uniform on [0, length]."""

    def quantile(q: float) -> float:
        return length * (1 - (1 - q) / busy) if busy > 1 - q else 0.0

    return Quantiles(busy * length / 2, quantile(0.5), quantile(0.95))


def _cycle(r: Replica, p_in: int, p_out: int, *, running: float, others_rate: float, busy: float) -> _Cycle:
    context = p_in + p_out / 2
    budget = max(1.0, r.max_num_batched_tokens - running)
    chunk = min(float(p_in), budget)
    chunks = math.ceil(p_in / chunk)
    decode = r.step_times(running, context)[1]
    last = p_in - (chunks - 1) * chunk
    own, paced = r.step_times(running, context, last, (chunks - 1) * chunk)
    if chunks > 1:  # the full chunks at their mean start: attention work is linear in the start
        full_own, full_paced = r.step_times(running, context, chunk, chunk * (chunks - 2) / 2)
        own, paced = own + (chunks - 1) * full_own, paced + (chunks - 1) * full_paced
    # What a prompt costs the running sequences: the time its chunks add to the pipeline's pace.
    extra = max(0.0, paced - chunks * decode)
    share = others_rate * extra
    saturated = share >= _RHO_MAX
    share = min(share, _RHO_MAX)
    itl_mean = decode / (1 - share)
    carrying = others_rate * chunks * itl_mean  # share of steps that carry another prompt's chunk
    chunk_step = paced / chunks

    def itl_quantile(q: float) -> float:
        if carrying >= 1:
            return itl_mean
        return chunk_step if carrying > 1 - q else decode

    itl = Quantiles(itl_mean, itl_quantile(0.5), itl_quantile(0.95))
    residual = _uniform_residual(busy, r.scheduler_steps * itl_mean)
    # M/D/1 on prefill work: wait behind others' chunks, P(wait) = ρ, conditional mean S / (2(1 − ρ)).
    wait = _exponential_tail(share, extra / (2 * (1 - share))) if share > 0 else _ZERO
    return _Cycle(decode, chunk_step, own, share, itl, residual, wait, saturated)


def _erlang_c(servers: int, load: float) -> float:
    """Probability that an arrival waits in an M/M/c queue with offered load `load` (< servers)."""
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = load * blocking / (k + load * blocking)
    return servers * blocking / (servers - load * (1 - blocking))


def _crossing(f: Callable[[float], float], low: float, high: float) -> float:
    """A root of f with f(low) ≤ 0 ≤ f(high) (one crossing in between), by false position (Illinois variant),
    to a residual of _TOLERANCE relative to the root."""
    f_low, f_high = f(low), f(high)
    if f_low >= 0:
        return low
    if f_high <= 0:
        return high
    side = 0
    x = low
    for _ in range(_BISECTIONS):
        x = (low * f_high - high * f_low) / (f_high - f_low)
        fx = f(x)
        if abs(fx) <= _TOLERANCE * abs(x) or high - low <= _TOLERANCE * abs(high):
            break
        if fx < 0:
            low, f_low = x, fx
            if side == -1:
                f_high /= 2
            side = -1
        else:
            high, f_high = x, fx
            if side == 1:
                f_low /= 2
            side = 1
    return x


def _closed_loop(r: Replica, t: Traffic, concurrency: float) -> Prediction:
    cap = r.running_capacity(t.input_tokens, t.output_tokens)
    running = min(concurrency, float(cap))
    busy = min(1.0, max(0.0, concurrency - 1))
    others = (running - 1) / running if running > 1 else 0.0
    out = t.output_tokens

    def state(rate: float) -> tuple[_Cycle, float]:
        c = _cycle(r, t.input_tokens, out, running=running, others_rate=rate * others, busy=busy)
        if concurrency <= cap:
            e2e = c.ttft(r.efficiency.request_overhead_s, _ZERO).mean + (out - 1) * c.itl.mean
            return c, concurrency / e2e
        # Every slot is busy: a freed slot admits the next queued request at the following step.
        slot = c.residual.mean + c.prefill_wait.mean + c.own_prefill + (out - 1) * c.itl.mean
        return c, running / slot

    # The rate the cycle sustains falls as the rate rises (more prefill interference): one crossing.
    rate = _crossing(lambda x: x - state(x)[1], 0.0, state(0.0)[1])
    c, _ = state(rate)
    queued = max(0.0, concurrency - cap)
    wait = queued / rate if rate > 0 else 0.0  # Little's law on the queue; the same for every request
    admission = Quantiles(wait, wait, wait)
    return Prediction(
        traffic=t,
        running=running,
        capacity=cap,
        ttft=c.ttft(r.efficiency.request_overhead_s, admission),
        itl=c.itl,
        request_rate=rate,
        output_tokens_per_second=rate * out,
        decode_step_s=c.decode_step,
        chunk_step_s=c.chunk_step,
        prefill_share=c.prefill_share,
        saturated=c.saturated,
    )


def _slot(c: _Cycle, output_tokens: int) -> float:
    """Mean time a request holds a running slot: its prefill (and the wait behind others') and its decode."""
    return c.own_prefill + c.prefill_wait.mean + (output_tokens - 1) * c.itl.mean


def _open_cycle(r: Replica, t: Traffic, rate: float, running: float) -> _Cycle:
    return _cycle(r, t.input_tokens, t.output_tokens, running=running, others_rate=rate, busy=1 - math.exp(-running))


def _open_loop(r: Replica, t: Traffic, rate: float) -> Prediction:
    cap = r.running_capacity(t.input_tokens, t.output_tokens)
    out = t.output_tokens
    c = _open_cycle(r, t, rate, float(cap))
    # Little's law: running = rate × slot(running). Stable only if a full replica keeps up (else the queue grows).
    saturated = c.saturated or rate * _slot(c, out) >= cap
    running = float(cap)
    if not saturated:
        running = _crossing(lambda b: b - rate * _slot(_open_cycle(r, t, rate, b), out), 0.0, float(cap))
        c = _open_cycle(r, t, rate, running)
    admission = _ZERO
    if not saturated:
        slot = _slot(c, out)
        waits = _erlang_c(cap, running)
        # Fixed-length requests: half the M/M/c wait (Allen-Cunneen with no service-time variance).
        admission = _exponential_tail(waits, 0.5 * slot / (cap - running))
    return Prediction(
        traffic=t,
        running=running,
        capacity=cap,
        ttft=c.ttft(r.efficiency.request_overhead_s, admission),
        itl=c.itl,
        request_rate=rate,
        output_tokens_per_second=rate * out,
        decode_step_s=c.decode_step,
        chunk_step_s=c.chunk_step,
        prefill_share=c.prefill_share,
        saturated=saturated,
    )


def predict(r: Replica, t: Traffic) -> Prediction:
    """Steady-state latency and throughput of one replica under `t` (closed loop or Poisson arrivals), with the
    pessimistic edges of its p95s."""
    if t.input_tokens < 1 or t.output_tokens < 1:
        raise ValueError("input_tokens and output_tokens must be at least 1")
    if t.concurrency is not None:
        return _with_edges(r, _closed_loop(r, t, max(t.concurrency, 1e-9)))
    if t.request_rate is not None:
        return _with_edges(r, _open_loop(r, t, t.request_rate))
    raise ValueError("Traffic needs a concurrency or a request_rate")


def _with_edges(r: Replica, p: Prediction) -> Prediction:
    # The band is the load the replica holds: the requests running and those waiting for a slot.
    load = p.traffic.concurrency if p.traffic.concurrency is not None else p.running
    ttft_slow, ttft_basis = _slow_edge(r, "ttft", load)
    itl_slow, itl_basis = _slow_edge(r, "itl", load)
    return replace(
        p,
        ttft_p95_high=p.ttft.p95 * ttft_slow,
        itl_p95_high=p.itl.p95 * itl_slow,
        ttft_basis=ttft_basis,
        itl_basis=itl_basis,
    )


def _slow_edge(r: Replica, metric: str, load: float) -> tuple[float, str]:
    """The slow factor on a prediction and what it rests on. At a measured speed (Replica.measured) the level the
    cross-source interval guards against is known, and only the within-deployment spread and the measurement's own
    uncertainty are left: applying the cross-source edge on top made calibrated fleets 1.5-1.9× the GPU-hours an
    oracle needs (bench/autoscale_matrix.py). Never wider than the model's own edge: evidence does not add doubt."""
    model = interval(metric, r.family, load, calibrated=r.calibrated)
    if r.speed_slack is None:
        return model.slow, model.basis
    own = measured_interval(metric, r.family, load)
    slow = own.slow * r.speed_slack
    if slow >= model.slow:
        return model.slow, model.basis
    return slow, f"{own.basis}, × {r.speed_slack:.2f} for the measured speed's uncertainty"


# --- capacity within an SLO ---------------------------------------------------------------------------------------


def _largest(meets: Callable[[float], bool], low: float, high: float, integer: bool) -> float:
    """The largest x in [low, high] with meets(x), for a predicate that holds up to some point; low if none."""
    if meets(high):
        return high
    for _ in range(_BISECTIONS):
        if (integer and high - low <= 1) or (not integer and high - low <= _TOLERANCE * high):
            break
        mid = (low + high) // 2 if integer else (low + high) / 2
        low, high = (mid, high) if meets(mid) else (low, mid)
    return low


def saturation_rate(r: Replica, input_tokens: int, output_tokens: int) -> float:
    """Poisson arrival rate (req/s) at which one replica's queue starts to grow without bound: every running
    slot busy (running = capacity) and requests still arriving faster than slots free up."""
    cap = r.running_capacity(input_tokens, output_tokens)
    t = Traffic(input_tokens, output_tokens)
    solo = _cycle(r, input_tokens, output_tokens, running=1.0, others_rate=0.0, busy=0.0)
    bound = cap / _slot(solo, output_tokens)  # every slot at batch-1 speed: no replica serves faster
    return _crossing(lambda rate: rate * _slot(_open_cycle(r, t, rate, float(cap)), output_tokens) - cap, 0.0, bound)


def max_request_rate(r: Replica, input_tokens: int, output_tokens: int, slo: Slo) -> float:
    """Poisson arrivals per second one replica serves within `slo`, at most UTILIZATION_CEILING of saturation.
    0 when even a trickle of requests misses it."""
    ceiling = UTILIZATION_CEILING * saturation_rate(r, input_tokens, output_tokens)
    if slo.empty:
        return ceiling

    def meets(rate: float) -> bool:
        return slo.met_by(predict(r, Traffic(input_tokens, output_tokens, request_rate=rate)))

    floor = ceiling * 1e-3
    if not meets(floor):
        return 0.0
    return _largest(meets, floor, ceiling, integer=False)


def max_concurrency_within(r: Replica, input_tokens: int, output_tokens: int, slo: Slo) -> int:
    """Concurrent clients (closed loop) one replica serves within `slo`, at most its running capacity; 0 when
    not even one."""
    cap = r.running_capacity(input_tokens, output_tokens)

    def meets(n: float) -> bool:
        return slo.met_by(predict(r, Traffic(input_tokens, output_tokens, concurrency=n)))

    if not meets(1):
        return 0
    return int(_largest(meets, 1, cap, integer=True))


@dataclass(frozen=True)
class BatchLimit:
    """The largest max_num_seqs whose full batch keeps ITL p95 within the target, and the ITL there."""

    max_num_seqs: int
    itl_p95_s: float
    met: bool  # False: not even a batch of one meets the target (max_num_seqs is then 1)


@lru_cache(maxsize=256)
def largest_batch_within(r: Replica, input_tokens: int, output_tokens: int, itl_p95_s: float) -> BatchLimit:
    """Cap max_num_seqs so a full replica (max_num_seqs clients in a closed loop: the most prefill interference
    that batch can see) still meets the ITL p95 target at the prediction's pessimistic edge."""

    def itl_at(n: float) -> float:
        replica = r.with_limits(max_num_seqs=int(n))
        return predict(replica, Traffic(input_tokens, output_tokens, concurrency=n)).itl_p95_high

    best = int(_largest(lambda n: itl_at(n) <= itl_p95_s, 1, r.max_num_seqs, integer=True))
    itl = itl_at(best)
    return BatchLimit(best, itl, itl <= itl_p95_s)
