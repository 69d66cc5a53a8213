"""A burst of requests drained by vLLM V1's scheduler, step by step: what a `vllm bench serve --request-rate inf`
run measures. Pure; bounded by the number of scheduling events (a few thousand for a thousand requests).

Every request is in the engine's queue from the start. Each engine step then does what vLLM V1's scheduler does
(vllm/v1/core/sched/scheduler.py, Scheduler.schedule):

* the running requests first, in admission order: a decoding request takes one token of the step's budget
  (max_num_batched_tokens), a request still prefilling the next chunk of its prompt (as much as the budget left
  allows);
* a running request whose KV blocks cannot grow preempts the newest running request (recompute: it goes back to the
  head of the queue with every token it holds to prefill again); a step that preempted admits nobody;
* then waiting requests, first come first served, while budget is left, fewer than max_num_seqs run and the KV cache
  has blocks for their first chunk;
* a prompt's first token is sampled at the end of the step that prefills its last chunk; every running decoder gets
  one token per step.

The step's time is Replica.step_seconds for what it carries (decoders at their mean context, the prefill chunks at
their starts). Between events (a request admitted, finished or preempted) the steps are alike: they are priced once
at the run's middle context and repeated, so the cost is per event, not per step.
"""

from __future__ import annotations

import heapq
import math
import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from rightsizer.model.memory import blocks_per_request
from rightsizer.perf.step import Replica

MAX_EVENTS = 20_000  # a guard: a drain this long is priced in longer runs rather than step by step


@dataclass(frozen=True)
class Drain:
    """What a benchmark client sees of a burst: seconds, from the moment every request was sent."""

    ttft_p50: float  # median over requests
    ttft_mean: float
    itl_p50: float  # median over every inter-token gap of every request (vllm bench serve's "Median ITL")
    itl_mean: float
    duration: float  # until the last token
    steps: int
    preemptions: int
    first_tokens: tuple[
        float, ...
    ] = ()  # each request's first token, in the order sent (engine time, no first_token_s)


def _weighted_median(values: Sequence[float], weights: Sequence[float]) -> float:
    pairs = sorted(zip(values, weights, strict=True))
    total = sum(w for _, w in pairs)
    if total <= 0:
        return math.nan
    running = 0.0
    for value, weight in pairs:
        running += weight
        if running >= total / 2:
            return value
    return pairs[-1][0]


def _block_line(r: Replica, short: int, long: int) -> tuple[float, float]:
    """KV blocks a request of L tokens holds, as a + b·L between two lengths (vLLM allocates as it grows)."""
    if r.kv_layout is None:
        return 0.0, 0.0
    low, high = max(1, short), max(short + 1, long)
    at_low = blocks_per_request(r.kv_layout, r.settings, low)
    at_high = blocks_per_request(r.kv_layout, r.settings, high)
    slope = (at_high - at_low) / (high - low)
    return at_low - slope * low, slope


class _Burst:
    """The scheduler's state while a burst drains (see the module docstring)."""

    def __init__(self, r: Replica, prompts: Sequence[int], outputs: Sequence[int]) -> None:
        n = len(prompts)
        self.r = r
        self.prompts, self.outputs = prompts, outputs
        mean_p, mean_o = sum(prompts) / n, sum(outputs) / n
        self.a_blk, self.b_blk = _block_line(r, round(mean_p), round(mean_p + mean_o))
        self.capacity = float(r.kv_blocks) if r.kv_blocks is not None else math.inf
        self.need = [max(1, p) for p in prompts]  # tokens to prefill before the next token is sampled
        self.computed = [0] * n
        self.generated = [0] * n
        self.first = [math.nan] * n
        self.last_token = [0.0] * n
        self.base = [0] * n  # a decoder's context at step s is base + s
        self.decode_from = [0] * n  # step index of a decoder's first decode step
        self.epoch = [0] * n  # bumps on preemption: stale finish entries are skipped
        self.state = [_WAITING] * n
        self.waiting: deque[int] = deque(range(n))
        self.prefilling: list[int] = []
        self.order: list[int] = []  # running requests in admission order (lazy: finished or preempted are skipped)
        self.finish: list[tuple[int, int, int]] = []  # (step index of the last token, request, epoch)
        self.decoders = 0
        self.ctx_offset = 0  # Σ base over decoders: their total context at step s is ctx_offset + decoders·s
        self.prefill_blocks = 0.0
        self.gaps: list[float] = []
        self.weights: list[float] = []
        self.t = 0.0
        self.step = 0
        self.events = 0
        self.preemptions = 0
        self.done = 0

    def used_blocks(self, at_step: int) -> float:
        decoders = self.decoders
        return decoders * self.a_blk + self.b_blk * (self.ctx_offset + decoders * at_step) + self.prefill_blocks

    def preempt_newest(self) -> bool:
        """Preempt the newest running request; never the last one (it runs even where the accounting says it does
        not fit: vLLM refuses such a max_model_len at start-up)."""
        while self.order and self.decoders + len(self.prefilling) > 1:
            i = self.order.pop()
            if self.state[i] == _DECODING:
                self.generated[i] += self.step - self.decode_from[i]
                self.decoders -= 1
                self.ctx_offset -= self.base[i]
                self.last_token[i] = self.t
            elif self.state[i] == _PREFILLING:
                self.prefill_blocks -= self.a_blk + self.b_blk * self.computed[i]
                self.prefilling.remove(i)
            else:
                continue
            self.epoch[i] += 1
            self.need[i] = self.prompts[i] + self.generated[i]  # recompute: prompt and output so far
            self.computed[i] = 0
            self.state[i] = _WAITING
            self.waiting.appendleft(i)
            self.preemptions += 1
            return True
        return False

    def schedule(self) -> list[tuple[int, int]]:
        """One step's prefill chunks (request, tokens), after the decoders' tokens, preempting where KV is short."""
        preempted = False
        while self.decoders and self.used_blocks(self.step + 1) > self.capacity:
            if not self.preempt_newest():
                break
            preempted = True
        budget = self.r.max_num_batched_tokens - self.decoders
        chunks: list[tuple[int, int]] = []
        for i in list(self.prefilling):
            if budget <= 0 or self.state[i] != _PREFILLING:
                continue
            chunk = min(self.need[i] - self.computed[i], budget)
            while self.used_blocks(self.step + 1) + self.b_blk * chunk > self.capacity and self.state[i] == _PREFILLING:
                if not self.preempt_newest():
                    break
                preempted = True
            if self.state[i] == _PREFILLING:
                chunks.append((i, chunk))
                budget -= chunk
        if not preempted:  # a step that preempted admits nobody
            self.admit(chunks, budget)
        return chunks

    def admit(self, chunks: list[tuple[int, int]], budget: int) -> None:
        """Waiting requests, first come first served, while budget, sequence slots and KV blocks last."""
        running = self.decoders + len(self.prefilling)
        waiting = self.waiting
        while budget > 0 and running < self.r.max_num_seqs and waiting:
            i = waiting[0]
            chunk = min(self.need[i], budget)
            if running and self.used_blocks(self.step + 1) + self.a_blk + self.b_blk * chunk > self.capacity:
                break
            waiting.popleft()
            self.state[i] = _PREFILLING
            self.computed[i] = 0
            self.prefill_blocks += self.a_blk
            self.prefilling.append(i)
            self.order.append(i)
            chunks.append((i, chunk))
            budget -= chunk
            running += 1

    def run_length(self) -> int:
        """Decode-only steps alike until the next event: a request's last token, or the KV cache filling."""
        limits = [self.finish[0][0] - self.step + 1] if self.finish else []
        if self.events < MAX_EVENTS and self.b_blk > 0 and self.decoders:
            room = self.capacity - self.used_blocks(self.step + 1)
            limits.append(int(room / (self.b_blk * self.decoders)))
        return max(1, min(limits)) if limits else 1

    def context(self, repeat: int) -> float:
        if not self.decoders:
            return 0.0
        return (self.ctx_offset + self.decoders * (self.step + (repeat - 1) / 2)) / self.decoders

    def advance(self, chunks: list[tuple[int, int]]) -> None:
        """Run the step (or a run of alike decode-only steps) and account for its tokens."""
        r, repeat = self.r, 1
        if chunks:
            prefill = sum(c for _, c in chunks)
            start = sum(c * (self.computed[i] + c / 2) for i, c in chunks) / prefill - prefill / len(chunks) / 2
            seconds = r.step_seconds(self.decoders, self.context(1), prefill, max(0.0, start), len(chunks))
        else:
            repeat = self.run_length()
            seconds = r.step_seconds(self.decoders, self.context(repeat))
        self.t += seconds * repeat
        if self.decoders:
            self.gaps.append(seconds)
            self.weights.append(float(self.decoders * repeat))
        self.step += repeat
        for i, c in chunks:
            self.prefilled(i, c)
        while self.finish and self.finish[0][0] < self.step:
            _, i, e = heapq.heappop(self.finish)
            if e == self.epoch[i] and self.state[i] == _DECODING:
                self.state[i] = _DONE
                self.decoders -= 1
                self.ctx_offset -= self.base[i]
                self.done += 1

    def prefilled(self, i: int, chunk: int) -> None:
        """A chunk of request i ran; at the prompt's end its token is sampled and it decodes from the next step."""
        self.computed[i] += chunk
        self.prefill_blocks += self.b_blk * chunk
        if self.computed[i] < self.need[i]:
            return
        self.prefill_blocks -= self.a_blk + self.b_blk * self.computed[i]
        self.prefilling.remove(i)
        self.generated[i] += 1
        if math.isnan(self.first[i]):
            self.first[i] = self.t
        else:  # a preempted request's next token, after its recompute
            self.gaps.append(self.t - self.last_token[i])
            self.weights.append(1.0)
        if self.generated[i] >= self.outputs[i]:
            self.state[i] = _DONE
            self.done += 1
            return
        self.state[i] = _DECODING
        self.decoders += 1
        self.base[i] = self.computed[i] + 1 - self.step
        self.ctx_offset += self.base[i]
        self.decode_from[i] = self.step
        heapq.heappush(self.finish, (self.step + self.outputs[i] - self.generated[i] - 1, i, self.epoch[i]))

    def run(self) -> None:
        n = len(self.prompts)
        while self.done < n:
            self.events += 1
            chunks = self.schedule()
            if not self.decoders and not chunks:
                break  # nothing runs and nothing can be admitted: cannot happen with a budget and a sequence slot
            self.advance(chunks)


_WAITING, _PREFILLING, _DECODING, _DONE = range(4)


def drain(
    r: Replica,
    prompts: Sequence[int],
    outputs: Sequence[int],
    *,
    first_token_s: float = 0.0,
) -> Drain:
    """Requests i = 0..n−1 (prompt and output lengths) sent at once; `first_token_s` is added to every TTFT (the
    per-request path outside the engine: HTTP, tokenising, the first detokenise, streaming)."""
    if not prompts or len(prompts) != len(outputs):
        raise ValueError("prompts and outputs must be non-empty and of equal length")
    b = _Burst(r, prompts, outputs)
    b.run()
    ttfts = sorted(f + first_token_s for f in b.first if not math.isnan(f))
    total = sum(b.weights)
    return Drain(
        ttft_p50=statistics.median(ttfts),
        ttft_mean=statistics.fmean(ttfts),
        itl_p50=_weighted_median(b.gaps, b.weights) if total else math.nan,
        itl_mean=sum(g * w for g, w in zip(b.gaps, b.weights, strict=True)) / total if total else math.nan,
        duration=b.t,
        steps=b.step,
        preemptions=b.preemptions,
        first_tokens=tuple(b.first),
    )
