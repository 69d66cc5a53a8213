"""One simulated vLLM engine: V1's continuous-batching scheduler, with step times from rightsizer's performance model.

Synchronous and clock-free: the server (e2e/vllm_sim/server.py) asks for a step, sleeps for its duration and hands
it back with the time it ended. The scheduling follows vllm/v1/core/sched/scheduler.py `Scheduler.schedule` of
vLLM 0.19.0 with the default FCFS policy and chunked prefill:

* the token budget of a step is max_num_batched_tokens;
* running requests first, in order: each gets what it still needs (one token when decoding, the rest of its prompt
  when prefilling), capped by the budget left; if the KV cache cannot hold the new tokens, the most recently
  admitted running request is preempted (its blocks freed, its progress dropped, back to the front of the waiting
  queue to be recomputed) until it can, and no waiting request is admitted in that step;
* then waiting requests in order, while fewer than max_num_seqs run and budget is left; a request is admitted only
  if its whole prompt fits in the free KV blocks (`scheduler_reserve_full_isl`, on by default in 0.19.0), and gets
  a chunk of up to the budget left;
* a request's first token is sampled at the end of the step that computes its last prompt token, then one token per
  step; it finishes after max_tokens tokens (the load generator sends ignore_eos, so lengths are exact).

KV blocks are counted with rightsizer.model.memory.blocks_per_request over the plan's KV layout, so hybrid and
sliding-window models hold what vLLM's block pool would give them.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

from rightsizer.model.memory import blocks_per_request
from rightsizer.perf import Replica


@dataclass(eq=False)
class Request:
    prompt_tokens: int
    max_tokens: int
    arrival: float  # when the HTTP request arrived (TTFT and end-to-end latency count from here)
    queued: float  # when it entered the engine's waiting queue
    id: int = field(default_factory=itertools.count().__next__)
    computed: int = 0  # tokens in the KV cache
    generated: int = 0
    scheduled_at: float | None = None  # first admission (queue time ends here)
    first_token_at: float | None = None
    last_token_at: float | None = None
    preemptions: int = 0

    @property
    def tokens(self) -> int:
        """Prompt and generated tokens: what a recompute after preemption must prefill again."""
        return self.prompt_tokens + self.generated

    @property
    def prefilling(self) -> bool:
        """Tokens of its prompt (or of a recompute after preemption) are still to be computed."""
        return self.computed < self.tokens

    @property
    def decoding(self) -> bool:
        """Its next step computes the one token it sampled last."""
        return self.generated > 0 and self.computed == self.tokens - 1

    @property
    def finished(self) -> bool:
        return self.generated >= self.max_tokens


@dataclass(frozen=True)
class Step:
    """What one engine step computes: tokens per request (decode tokens are 1)."""

    tokens: tuple[tuple[Request, int], ...]
    seconds: float  # the performance model's duration

    @property
    def total_tokens(self) -> int:
        return sum(n for _, n in self.tokens)


@dataclass(frozen=True)
class TokenEvent:
    """A token the step produced for a request: its first (ttft) or a later one (itl), and whether it was the last."""

    request: Request
    first: bool
    latency: float  # TTFT from arrival, or the gap since the previous token
    finished: bool


class Engine:
    def __init__(self, replica: Replica, kv_blocks: int) -> None:
        if replica.kv_layout is None:
            raise ValueError("the replica needs its KV layout (build it with the plan's memory)")
        self.replica = replica
        self.layout = replica.kv_layout
        self.kv_blocks = kv_blocks
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self.preemptions = 0

    # -- state the metrics report ----------------------------------------------------------------------------------

    def blocks(self, tokens: int) -> int:
        return blocks_per_request(self.layout, self.replica.settings, tokens) if tokens > 0 else 0

    @property
    def used_blocks(self) -> int:
        return sum(self.blocks(r.computed) for r in self.running)

    @property
    def kv_usage(self) -> float:
        return self.used_blocks / self.kv_blocks if self.kv_blocks else 0.0

    @property
    def idle(self) -> bool:
        return not self.waiting and not self.running

    def add(self, request: Request) -> None:
        self.waiting.append(request)

    def abort(self, request: Request) -> None:
        """The client went away: drop the request wherever it is."""
        if request in self.running:
            self.running.remove(request)
        elif request in self.waiting:
            self.waiting.remove(request)

    # -- scheduling ------------------------------------------------------------------------------------------------

    def _preempt_last(self) -> Request:
        victim = self.running.pop()
        victim.computed = 0
        victim.preemptions += 1
        self.preemptions += 1
        self.waiting.appendleft(victim)
        return victim

    def schedule(self, now: float) -> Step | None:
        """The next step, or None when there is nothing to compute."""
        settings = self.replica.settings
        budget = settings.max_num_batched_tokens
        reserved = {r: self.blocks(r.computed) for r in self.running}  # blocks each holds after this step
        in_use = sum(reserved.values())
        planned: dict[Request, int] = {}
        preempted = False
        index = 0
        while index < len(self.running) and budget > 0:
            request = self.running[index]
            want = min(request.tokens - request.computed, budget, settings.max_model_len - 1 - request.computed)
            if want <= 0:
                index += 1
                continue
            need = self.blocks(request.computed + want) - reserved[request]
            while need > self.kv_blocks - in_use and request in self.running:
                victim = self._preempt_last()
                preempted = True
                in_use -= reserved.pop(victim)
                budget += planned.pop(victim, 0)
            if request not in self.running:
                break  # it was the last one left to preempt: it waits
            planned[request] = want
            reserved[request] += need
            in_use += need
            budget -= want
            index += 1
        while not preempted and self.waiting and budget > 0 and len(self.running) < settings.max_num_seqs:
            request = self.waiting[0]
            if self.blocks(request.tokens) > self.kv_blocks - in_use:
                break  # the whole prompt must fit (scheduler_reserve_full_isl)
            self.waiting.popleft()
            want = min(request.tokens, budget)
            if request.scheduled_at is None:
                request.scheduled_at = now
            self.running.append(request)
            planned[request] = want
            reserved[request] = self.blocks(want)
            in_use += reserved[request]
            budget -= want
        if not planned:
            return None
        return Step(tuple(planned.items()), self._seconds(planned))

    def _seconds(self, planned: dict[Request, int]) -> float:
        decoding = [r for r, n in planned.items() if r.decoding]
        chunks = [(r, n) for r, n in planned.items() if not r.decoding]
        context = sum(r.computed for r in decoding) / len(decoding) if decoding else 0.0
        prefill = sum(n for _, n in chunks)
        start = sum(r.computed for r, _ in chunks) / len(chunks) if chunks else 0.0
        return self.replica.step_seconds(
            len(decoding), context, float(prefill), start, float(len(chunks)) if chunks else None
        )

    def complete(self, step: Step, now: float) -> list[TokenEvent]:
        """Apply a step that ended at `now`: advance every scheduled request, sample tokens, retire finished ones.
        Requests preempted or aborted since the step was planned are skipped."""
        events = []
        for request, n in step.tokens:
            if request not in self.running:
                continue
            request.computed += n
            if request.prefilling:
                continue  # a prompt chunk: no token yet
            request.generated += 1
            first = request.first_token_at is None
            if first:
                request.first_token_at = now
                latency = now - request.arrival
            else:
                latency = now - (request.last_token_at or now)
            request.last_token_at = now
            events.append(TokenEvent(request, first, latency, request.finished))
            if request.finished:
                self.running.remove(request)
        return events
