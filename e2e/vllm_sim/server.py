"""The simulator's HTTP face: vLLM's OpenAI-compatible server on aiohttp, driving one simulated engine.

Endpoints (as vLLM 0.19.0 serves them): GET /health, GET /metrics, GET /v1/models, POST /v1/completions and
POST /v1/chat/completions (both with `stream`). A request takes the performance model's per-request overhead
(HTTP, tokenisation) before it reaches the engine's waiting queue; TTFT and the end-to-end latency count from its
arrival, as vLLM's do.

Prompt lengths: a prompt given as token ids counts exactly (the load generator sends ids); text has no tokenizer
here and counts one token per whitespace-separated word (chat messages: their words plus 4 tokens of template per
message). Outputs are placeholder words, one per token; `max_tokens` tokens are generated unless the caller sets
neither max_tokens nor ignore_eos, in which case the output length is vLLM's default (16 for completions, what the
context leaves for chat) as if no end-of-sequence token came first.

Time: `time_scale` k > 1 runs the replica k× faster than the model says (a step of s seconds lasts s/k of wall
time) and reports the model's seconds in every latency histogram. Counters still advance per wall second, so a rate
that Prometheus computes is k× the model's: keep k = 1 wherever rates matter (the autoscaler's tests do).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from e2e.vllm_sim.engine import Engine, Request, TokenEvent
from e2e.vllm_sim.metrics import VllmMetrics
from rightsizer.perf import Replica

CHAT_TEMPLATE_TOKENS = 4  # per message: role markers and separators of a typical chat template
DEFAULT_COMPLETION_TOKENS = 16  # vLLM's CompletionRequest.max_tokens default


@dataclass(frozen=True)
class Served:
    """What the simulated server is: the model name clients use, the engine limits, its speed."""

    model: str
    max_model_len: int
    request_overhead_s: float
    version: str = "0.19.0"  # the vLLM release whose metric names are served
    time_scale: float = 1.0


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "BadRequestError", param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param = status, message, kind, param

    def response(self) -> web.Response:
        body = {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.status}}
        return web.json_response(body, status=self.status)


class Tracked:
    """A request in flight and the tokens the engine produced for it."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.tokens: asyncio.Queue[TokenEvent] = asyncio.Queue()


class SimulatedVllm:
    def __init__(self, replica: Replica, kv_blocks: int, served: Served) -> None:
        self.engine = Engine(replica, kv_blocks)
        self.served = served
        self.metrics = VllmMetrics(served.model, served.max_model_len, served.version)
        self.tracked: dict[Request, Tracked] = {}
        self._wake = asyncio.Event()
        self._origin = time.monotonic()
        self._loop_task: asyncio.Task[None] | None = None
        self._preemptions_seen = 0

    # -- clock -----------------------------------------------------------------------------------------------------

    def now(self) -> float:
        """Model seconds since start."""
        return (time.monotonic() - self._origin) * self.served.time_scale

    async def sleep(self, model_seconds: float) -> None:
        await asyncio.sleep(max(0.0, model_seconds / self.served.time_scale))

    # -- the engine loop -------------------------------------------------------------------------------------------

    async def start(self, _: web.Application | None = None) -> None:
        self._loop_task = asyncio.create_task(self._run())

    async def stop(self, _: web.Application | None = None) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task

    async def _run(self) -> None:
        while True:
            step = self.engine.schedule(self.now())
            self._update_gauges()
            if step is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            started = self.now()
            self.metrics.iteration_tokens.observe(step.total_tokens)
            await self.sleep(started + step.seconds - self.now())
            events = self.engine.complete(step, self.now())
            if self.engine.preemptions > self._preemptions_seen:
                self.metrics.preemptions.inc(self.engine.preemptions - self._preemptions_seen)
                self._preemptions_seen = self.engine.preemptions
            for event in events:
                self._emit(event)

    def _emit(self, event: TokenEvent) -> None:
        m, r = self.metrics, event.request
        m.generation_tokens.inc()
        if event.first:  # vLLM counts a prompt's tokens when it yields its first token (IterationStats)
            m.prompt_tokens.inc(r.prompt_tokens)
        (m.ttft if event.first else m.itl).observe(event.latency)
        tracked = self.tracked.get(r)
        if tracked is not None:
            tracked.tokens.put_nowait(event)
        if event.finished:
            self._finish(r, "length")

    def _finish(self, r: Request, reason: str) -> None:
        m, now = self.metrics, self.now()
        m.success[reason].inc()
        m.e2e.observe(now - r.arrival)
        m.request_prompt_tokens.observe(r.prompt_tokens)
        m.request_generation_tokens.observe(r.generated)
        m.max_tokens.observe(r.max_tokens)
        scheduled = r.scheduled_at if r.scheduled_at is not None else now
        m.queue_time.observe(scheduled - r.queued)
        m.inference_time.observe(now - scheduled)
        first = r.first_token_at if r.first_token_at is not None else now
        m.prefill_time.observe(first - scheduled)
        m.decode_time.observe(now - first)
        if r.generated > 1 and r.first_token_at is not None:
            m.tpot.observe((now - r.first_token_at) / (r.generated - 1))

    def _update_gauges(self) -> None:
        self.metrics.running.set(len(self.engine.running))
        self.metrics.waiting.set(len(self.engine.waiting))
        self.metrics.kv_usage.set(self.engine.kv_usage)

    # -- requests --------------------------------------------------------------------------------------------------

    async def submit(self, prompt_tokens: int, max_tokens: int) -> Tracked:
        arrival = self.now()
        await self.sleep(self.served.request_overhead_s)
        request = Request(prompt_tokens, max_tokens, arrival=arrival, queued=self.now())
        tracked = Tracked(request)
        self.tracked[request] = tracked
        self.engine.add(request)
        self._update_gauges()
        self._wake.set()
        return tracked

    async def tokens(self, tracked: Tracked) -> AsyncIterator[TokenEvent]:
        """The request's tokens as the engine produces them; aborts it if the caller stops listening."""
        finished = False
        try:
            while not finished:
                event = await tracked.tokens.get()
                finished = event.finished
                yield event
        finally:
            self.tracked.pop(tracked.request, None)
            if not finished:
                self.engine.abort(tracked.request)
                self._finish(tracked.request, "abort")
                self._update_gauges()


# --- request parsing ------------------------------------------------------------------------------------------------


def _words(text: str) -> int:
    return max(1, len(text.split()))


def prompt_length(body: dict[str, Any], chat: bool) -> int:
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "messages must be a non-empty list", param="messages")
        total = 0
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, list):  # content parts: count the text ones
                content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            total += _words(str(content or "")) + CHAT_TEMPLATE_TOKENS
        return total
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return _words(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return len(prompt)
    if isinstance(prompt, list) and len(prompt) == 1:
        return prompt_length({"prompt": prompt[0]}, chat=False)
    raise ApiError(400, "prompt must be a string, a list of token ids, or a one-element list of either", "prompt")


def output_length(body: dict[str, Any], chat: bool, prompt: int, max_model_len: int) -> int:
    asked = body.get("max_completion_tokens") if chat else None
    asked = asked if asked is not None else body.get("max_tokens")
    if prompt >= max_model_len:
        raise ApiError(
            400,
            f"This model's maximum context length is {max_model_len} tokens. However, your request has {prompt} "
            "input tokens. Please reduce the length of the input messages.",
            param="input_tokens",
        )
    if asked is None:
        return max_model_len - prompt if chat else min(DEFAULT_COMPLETION_TOKENS, max_model_len - prompt)
    if not isinstance(asked, int) or asked < 1:
        raise ApiError(400, "max_tokens must be at least 1", param="max_tokens")
    if prompt + asked > max_model_len:
        raise ApiError(
            400,
            f"This model's maximum context length is {max_model_len} tokens. However, you requested {asked} output "
            f"tokens and your prompt contains {prompt} input tokens, for a total of {prompt + asked} tokens "
            f"({prompt} + {asked} = {prompt + asked} > {max_model_len}). Please reduce the length of the input "
            "prompt or the number of requested output tokens.",
            param="max_tokens",
        )
    return asked


# --- handlers -------------------------------------------------------------------------------------------------------


def _chunk(kind: str, rid: str, model: str, *, created: int, finish: str | None) -> dict[str, Any]:
    text = " tok"
    if kind == "chat":
        choice: dict[str, Any] = {"index": 0, "delta": {"content": text}, "finish_reason": finish}
        return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [choice]}
    choice = {"index": 0, "text": text, "finish_reason": finish}
    return {"id": rid, "object": "text_completion", "created": created, "model": model, "choices": [choice]}


def _completion(kind: str, rid: str, model: str, *, created: int, prompt: int, generated: int) -> dict[str, Any]:
    text = " tok" * generated
    if kind == "chat":
        message = {"role": "assistant", "content": text}
        choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": "length"}
        kind_name = "chat.completion"
    else:
        choice = {"index": 0, "text": text, "finish_reason": "length"}
        kind_name = "text_completion"
    usage = {"prompt_tokens": prompt, "completion_tokens": generated, "total_tokens": prompt + generated}
    return {"id": rid, "object": kind_name, "created": created, "model": model, "choices": [choice], "usage": usage}


async def _parse(request: web.Request, sim: SimulatedVllm, chat: bool) -> tuple[dict[str, Any], int, int]:
    """(body, prompt tokens, output tokens), or ApiError as vLLM would refuse the request."""
    try:
        body = await request.json()
    except json.JSONDecodeError:
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    if body.get("model") not in (None, sim.served.model):
        raise ApiError(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError", "model")
    prompt = prompt_length(body, chat)
    return body, prompt, output_length(body, chat, prompt, sim.served.max_model_len)


async def generate(sim: SimulatedVllm, request: web.Request, chat: bool) -> web.StreamResponse:
    try:
        body, prompt, output = await _parse(request, sim, chat)
    except ApiError as err:
        return err.response()
    tracked = await sim.submit(prompt, output)
    kind, model = ("chat", "chatcmpl") if chat else ("text", "cmpl")
    rid, created = f"{model}-{uuid.uuid4().hex}", int(time.time())
    if body.get("stream"):
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        async for event in sim.tokens(tracked):
            chunk = _chunk(kind, rid, sim.served.model, created=created, finish="length" if event.finished else None)
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response
    generated = 0
    async for _ in sim.tokens(tracked):
        generated += 1
    result = _completion(kind, rid, sim.served.model, created=created, prompt=prompt, generated=generated)
    return web.json_response(result)


def build_app(sim: SimulatedVllm) -> web.Application:
    routes = web.RouteTableDef()

    @routes.get("/health")
    async def health(_: web.Request) -> web.Response:
        return web.Response(status=200)

    @routes.get("/metrics")
    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(sim.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @routes.get("/v1/models")
    async def models(_: web.Request) -> web.Response:
        card = {
            "id": sim.served.model,
            "object": "model",
            "owned_by": "vllm",
            "max_model_len": sim.served.max_model_len,
        }
        return web.json_response({"object": "list", "data": [card]})

    @routes.post("/v1/completions")
    async def completions(request: web.Request) -> web.StreamResponse:
        return await generate(sim, request, chat=False)

    @routes.post("/v1/chat/completions")
    async def chat_completions(request: web.Request) -> web.StreamResponse:
        return await generate(sim, request, chat=True)

    app = web.Application(client_max_size=64 * 1024**2)
    app.add_routes(routes)
    app.on_startup.append(sim.start)
    app.on_cleanup.append(sim.stop)
    return app
