"""Replay a request trace against OpenAI-compatible endpoints (simulated or real vLLM), on loopback only.

    python -m e2e.loadgen --trace ../shared/data/traces/azure-llm-2023-conv.csv --target http://127.0.0.1:18000 \\
        --model meta-llama/Llama-3.1-70B-Instruct --compress 2 --scale 0.5 --duration 60

The trace is a CSV in the Azure format (header `TIMESTAMP,ContextTokens,GeneratedTokens`). Each request is sent at
its trace time, as a /v1/completions call whose prompt is `ContextTokens` token ids and which generates exactly
`GeneratedTokens` tokens (`max_tokens` with vLLM's `ignore_eos`), so a replica sees the trace's lengths.

* time compression C: the trace plays C× faster (gaps divided by C);
* rate scaling S: each request is sent ⌊S⌋ times, plus once more with probability S − ⌊S⌋ (S < 1 thins the trace),
  the copies spread uniformly over the gap to the next request, so burstiness is kept and the rate is S× the trace's;
* phases: a schedule of (seconds, compression, scale) pieces played back to back from the same trace cursor, which
  is how the tests make a load step; a phase given a `rate` instead sends exactly that many requests per second on
  average, compressing the next stretch of the trace to fit (its burstiness is kept);
* bounded: at most `max_requests` requests and `duration` seconds of sending; requests still open `drain` seconds
  after that are cancelled (and counted).

Requests go round-robin over the endpoints a callable returns at send time (a Kubernetes Service in IPVS `rr`
mode), so endpoints that come and go during the run are followed. Every endpoint must be a loopback address.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import ipaddress
import itertools
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlparse

import aiohttp

TOKEN_ID = 1000  # any id inside every vocabulary


@dataclass(frozen=True)
class TraceRequest:
    offset: float  # seconds after the trace's first request
    prompt_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Trace:
    requests: tuple[TraceRequest, ...]

    @property
    def duration(self) -> float:
        return self.requests[-1].offset if self.requests else 0.0

    @property
    def mean_rate(self) -> float:
        return (len(self.requests) - 1) / self.duration if self.duration > 0 else 0.0


def _timestamp(text: str) -> float:
    # "2023-11-16 18:17:03.9799600": seven fractional digits, one more than datetime parses.
    whole, _, fraction = text.strip().partition(".")
    return datetime.fromisoformat(whole).timestamp() + (float("0." + fraction) if fraction else 0.0)


def load_trace(path: Path, max_model_len: int | None = None) -> Trace:
    """The trace, sorted by time; with max_model_len, each request's prompt is cut so prompt + output fits (as a
    client would truncate), keeping at least one output token."""
    rows = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            prompt, output = max(1, int(row["ContextTokens"])), max(1, int(row["GeneratedTokens"]))
            if max_model_len is not None:
                output = min(output, max_model_len - 1)
                prompt = min(prompt, max_model_len - output)
            rows.append((_timestamp(row["TIMESTAMP"]), prompt, output))
    if not rows:
        raise ValueError(f"{path}: no requests")
    rows.sort()
    start = rows[0][0]
    return Trace(tuple(TraceRequest(t - start, p, o) for t, p, o in rows))


@dataclass(frozen=True)
class Phase:
    """`seconds` of the trace played `compress`× faster with `scale`× its requests; or, with `rate`, the compression
    that sends exactly `rate × seconds` requests (scale 1) from where the trace cursor is, so a step from one rate to
    another is exact whatever the trace's local rate."""

    seconds: float
    compress: float = 1.0
    scale: float = 1.0
    rate: float | None = None


class _Cursor:
    """The trace from `start_offset` on, forever: laps follow each other with the trace's mean gap between them."""

    def __init__(self, trace: Trace, start_offset: float) -> None:
        self.trace = trace
        self.first = next((i for i, r in enumerate(trace.requests) if r.offset >= start_offset), 0)
        self.lap = trace.duration + trace.duration / max(1, len(trace.requests) - 1)

    def __getitem__(self, k: int) -> tuple[float, TraceRequest]:
        n = len(self.trace.requests)
        lap, index = divmod(self.first + k, n)
        request = self.trace.requests[index]
        return lap * self.lap + request.offset, request


def arrivals(
    trace: Trace,
    phases: Sequence[Phase],
    *,
    seed: int = 0,
    start_offset: float = 0.0,
    mixed_lengths: bool = False,
) -> list[tuple[float, TraceRequest]]:
    """(seconds after the start, request) for the whole schedule, sorted. Phases continue from the same trace
    cursor: the trace time reached at a phase's end is where the next phase's clock starts.

    `mixed_lengths`: arrival times follow the trace, lengths are drawn (seeded) from the whole trace, so every phase
    carries the trace's overall length mix. The trace's own mix drifts a lot (one minute of the conversation trace
    averages 50 output tokens, another 290), which would make "4× the requests" anything from 1× to 20× the work."""
    rng = random.Random(seed)
    pool = trace.requests
    cursor = _Cursor(trace, start_offset)
    k = 0
    origin = cursor[0][0]  # trace time at the current phase's start
    out: list[tuple[float, TraceRequest]] = []
    phase_start = 0.0
    for phase in phases:
        compress, scale = phase.compress, phase.scale
        if phase.rate is not None:
            count = max(1, round(phase.rate * phase.seconds))
            compress, scale = max(cursor[k + count][0] - origin, 1e-9) / phase.seconds, 1.0
        phase_end = phase_start + phase.seconds
        while (at := phase_start + (cursor[k][0] - origin) / compress) < phase_end:
            gap = (cursor[k + 1][0] - cursor[k][0]) / compress
            whole = math.floor(scale)
            copies = whole + (1 if rng.random() < scale - whole else 0)
            for i in range(copies):
                request = rng.choice(pool) if mixed_lengths else cursor[k][1]
                out.append((at + (gap * rng.random() if i else 0.0), request))
            k += 1
        origin += phase.seconds * compress
        phase_start = phase_end
    return sorted((item for item in out if item[0] < phase_start), key=lambda item: item[0])


@dataclass
class Result:
    sent_at: float
    endpoint: str
    status: int  # HTTP status; 0: connection failed; -1: cancelled at the end
    latency: float
    prompt_tokens: int
    output_tokens: int


@dataclass
class Report:
    results: list[Result] = field(default_factory=list)

    @property
    def ok(self) -> list[Result]:
        return [r for r in self.results if r.status == 200]

    def summary(self) -> dict[str, float]:
        ok = sorted(r.latency for r in self.ok)
        q = statistics.quantiles(ok, n=20) if len(ok) >= 2 else [math.nan] * 19
        return {
            "sent": len(self.results),
            "ok": len(ok),
            "failed": sum(1 for r in self.results if r.status not in (200, -1)),
            "cancelled": sum(1 for r in self.results if r.status == -1),
            "latency_p50_s": q[9],
            "latency_p95_s": q[18],
        }


def require_loopback(url: str) -> str:
    host = urlparse(url).hostname or ""
    try:
        loop = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loop = host == "localhost"
    if not loop:
        raise ValueError(f"{url}: the load generator only sends to loopback addresses")
    return url.rstrip("/")


async def replay(
    schedule: Sequence[tuple[float, TraceRequest]],
    endpoints: Callable[[], Sequence[str]],
    model: str,
    *,
    max_requests: int = 10_000,
    duration: float = 600.0,
    drain: float = 30.0,
    request_timeout: float = 300.0,
) -> Report:
    """Send `schedule` (bounded by `max_requests` and `duration`), then wait up to `drain` seconds for answers."""
    report = Report()
    rr = itertools.count()
    timeout = aiohttp.ClientTimeout(total=request_timeout)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one(item: TraceRequest, sent_at: float) -> None:
            live = [require_loopback(e) for e in endpoints()]
            target = live[next(rr) % len(live)] if live else ""
            result = Result(sent_at, target, 0, 0.0, item.prompt_tokens, item.output_tokens)
            report.results.append(result)
            if not target:
                return
            body = {
                "model": model,
                "prompt": [TOKEN_ID] * item.prompt_tokens,
                "max_tokens": item.output_tokens,
                "ignore_eos": True,
            }
            began = time.monotonic()
            try:
                async with session.post(target + "/v1/completions", json=body) as response:
                    await response.read()
                    result.status = response.status
            except (TimeoutError, aiohttp.ClientError):
                result.status = 0
            except asyncio.CancelledError:
                result.status = -1
                raise
            finally:
                result.latency = time.monotonic() - began

        start = time.monotonic()
        tasks = []
        for at, item in schedule[:max_requests]:
            if at > duration:
                break
            await asyncio.sleep(max(0.0, start + at - time.monotonic()))
            tasks.append(asyncio.create_task(one(item, at)))
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=drain)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
    return report


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m e2e.loadgen", description=__doc__.split("\n\n")[0])
    p.add_argument("--trace", required=True, type=Path)
    p.add_argument("--target", action="append", default=[], help="base URL of an endpoint (repeat for several)")
    p.add_argument("--model", required=True, help="model name the endpoints serve")
    p.add_argument("--compress", type=float, default=1.0, help="play the trace this many times faster")
    p.add_argument("--scale", type=float, default=1.0, help="send this many times the trace's requests")
    p.add_argument("--start-offset", type=float, default=0.0, help="start this many trace seconds in")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of sending")
    p.add_argument("--max-requests", type=int, default=10_000)
    p.add_argument("--max-model-len", type=int, help="cut prompts so prompt + output fits")
    p.add_argument("--mixed-lengths", action="store_true", help="draw lengths from the whole trace (see arrivals)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    targets = [require_loopback(t) for t in args.target]
    if not targets:
        raise SystemExit("give at least one --target")
    trace = load_trace(args.trace, args.max_model_len)
    schedule = arrivals(
        trace,
        [Phase(args.duration, args.compress, args.scale)],
        seed=args.seed,
        start_offset=args.start_offset,
        mixed_lengths=args.mixed_lengths,
    )
    report = asyncio.run(
        replay(schedule, lambda: targets, args.model, max_requests=args.max_requests, duration=args.duration)
    )
    print(json.dumps(report.summary(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
