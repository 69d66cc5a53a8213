"""Request traces for bench/autoscale.py: the Azure LLM inference trace format, time compression and rate scaling.

Format (Patel et al., "Splitwise: Efficient generative LLM inference using phase splitting", ISCA 2024; the public
release in Azure/AzurePublicDataset): a CSV with the header `TIMESTAMP,ContextTokens,GeneratedTokens`, one row per
request, TIMESTAMP an ISO date-time with up to 7 fractional digits. Any CSV with that header is accepted.

Two transformations, applied in this order:

* time compression c: every arrival time is divided by c, so the trace plays c times faster (its load changes
  too, relative to the pod start-up delay) at c times the request rate;
* rate scaling s, two ways:
  - `superpose` (default): s copies of the trace played together (the fractional part as a random share of one
    more copy), each shifted by its own uniform random offset in [−J, J] (J = --jitter, 300 s) and wrapped around
    the trace's ends: s times as many clients who behave like the trace's, each group on its own clock. The
    load's shape over minutes and the hour is kept; bursts of a few seconds from different copies overlap at
    random, as independent clients' bursts do (a larger service is smoother: statistical multiplexing);
  - `replicate`: each request stands for s requests at the same point of the load curve: floor(s) copies, plus
    one more with probability s − floor(s), each placed uniformly at random in the gap up to the next arrival.
    Every burst keeps its shape and grows s-fold (s clients acting in lockstep): the harshest reading.
  Lengths are copied with each request.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

HEADER = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


@dataclass(frozen=True)
class Trace:
    arrival: np.ndarray  # seconds from the first request, ascending
    prompt: np.ndarray  # prompt tokens, int64
    output: np.ndarray  # generated tokens (at least 1), int64

    def __len__(self) -> int:
        return len(self.arrival)

    @property
    def duration(self) -> float:
        return float(self.arrival[-1]) if len(self) else 0.0

    def window(self, start: float, end: float) -> Trace:
        """The requests arriving in [start, end), re-timed from `start`."""
        lo, hi = np.searchsorted(self.arrival, [start, end])
        return Trace(self.arrival[lo:hi] - start, self.prompt[lo:hi], self.output[lo:hi])


def _seconds(stamp: str) -> float:
    # Python's parser takes at most 6 fractional digits; the trace has 7 (100 ns): drop the last.
    date, _, fraction = stamp.strip().partition(".")
    return datetime.fromisoformat(f"{date}.{fraction[:6].ljust(6, '0')}" if fraction else date).timestamp()


def load(path: Path) -> Trace:
    with path.open(newline="") as f:
        rows = csv.reader(f)
        header = tuple(next(rows, ()))
        if header[:3] != HEADER:
            raise ValueError(f"{path}: header {header!r} is not {','.join(HEADER)} (the Azure trace format)")
        stamps, prompts, outputs = [], [], []
        for row in rows:
            if not row:
                continue
            stamps.append(_seconds(row[0]))
            prompts.append(int(row[1]))
            outputs.append(int(row[2]))
    arrival = np.asarray(stamps, dtype=float)
    order = np.argsort(arrival, kind="stable")
    arrival = arrival[order] - (arrival[order][0] if len(arrival) else 0.0)
    prompt = np.maximum(np.asarray(prompts, dtype=np.int64)[order], 1)
    output = np.maximum(np.asarray(outputs, dtype=np.int64)[order], 1)
    return Trace(arrival, prompt, output)


def compress(trace: Trace, factor: float) -> Trace:
    if factor <= 0:
        raise ValueError("the time-compression factor must be positive")
    return Trace(trace.arrival / factor, trace.prompt, trace.output)


def scale_rate(
    trace: Trace, factor: float, rng: np.random.Generator, *, mode: str = "superpose", jitter: float = 300.0
) -> Trace:
    if factor <= 0:
        raise ValueError("the rate-scaling factor must be positive")
    if factor == 1 or not len(trace):
        return trace
    if mode == "superpose":
        return _superpose(trace, factor, rng, jitter)
    if mode != "replicate":
        raise ValueError(f"unknown rate-scaling mode {mode!r}: superpose or replicate")
    whole, fraction = math.floor(factor), factor - math.floor(factor)
    copies = whole + (rng.random(len(trace)) < fraction)
    gaps = np.diff(trace.arrival, append=trace.arrival[-1])  # the last request has no gap: its copies coincide
    index = np.repeat(np.arange(len(trace)), copies)
    # With s < 1 a kept request stays where it was; with s ≥ 1 every copy lands somewhere in its gap.
    offset = rng.random(len(index)) * gaps[index] if factor > 1 else np.zeros(len(index))
    return _sorted(trace.arrival[index] + offset, trace.prompt[index], trace.output[index])


def _superpose(trace: Trace, factor: float, rng: np.random.Generator, jitter: float) -> Trace:
    span = trace.duration
    arrivals, prompts, outputs = [], [], []
    for copy in range(math.ceil(factor)):
        keep = np.ones(len(trace), dtype=bool)
        if copy + 1 > factor:  # the fractional copy: a random share of the requests
            keep = rng.random(len(trace)) < factor - copy
        shift = rng.uniform(-jitter, jitter) if copy else 0.0  # the first copy is the trace itself
        arrival = trace.arrival[keep] + shift
        arrivals.append(np.mod(arrival, span) if span > 0 else arrival)
        prompts.append(trace.prompt[keep])
        outputs.append(trace.output[keep])
    return _sorted(np.concatenate(arrivals), np.concatenate(prompts), np.concatenate(outputs))


def _sorted(arrival: np.ndarray, prompt: np.ndarray, output: np.ndarray) -> Trace:
    order = np.argsort(arrival, kind="stable")
    return Trace(arrival[order], prompt[order], output[order])


def clip_lengths(trace: Trace, max_model_len: int) -> Trace:
    """Requests longer than the context window: vLLM rejects them; here the prompt is cut to fit (the trace's
    longest request is 14,089 tokens, so a 16k window changes nothing)."""
    output = np.minimum(trace.output, max_model_len - 1)
    prompt = np.minimum(trace.prompt, max_model_len - output)
    return Trace(trace.arrival, prompt, output)
