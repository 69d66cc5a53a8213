"""The trace replayer: exact phase rates, compression and scaling, trace parsing, loopback only."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from e2e.loadgen import Phase, Trace, TraceRequest, arrivals, load_trace, replay, require_loopback


def uniform(n: int, gap: float = 1.0) -> Trace:
    return Trace(tuple(TraceRequest(i * gap, 100 + i, 10) for i in range(n)))


def test_a_rate_phase_sends_exactly_rate_times_seconds_and_phases_continue_the_trace() -> None:
    trace = uniform(1000)
    schedule = arrivals(trace, [Phase(20, rate=2.0), Phase(10, rate=8.0)])
    first = [t for t, _ in schedule if t < 20]
    second = [t for t, _ in schedule if t >= 20]
    assert (len(first), len(second)) == (40, 80)
    prompts = [r.prompt_tokens for _, r in schedule]
    assert prompts == sorted(prompts) and len(set(prompts)) == len(prompts)  # the trace in order, nothing twice


@pytest.mark.parametrize(("compress", "scale", "expected"), [(1.0, 1.0, 30), (2.0, 1.0, 60), (1.0, 3.0, 90)])
def test_compression_and_scaling_multiply_the_rate(compress: float, scale: float, expected: int) -> None:
    assert len(arrivals(uniform(1000), [Phase(30, compress, scale)])) == expected


def test_thinning_keeps_about_the_asked_share() -> None:
    sent = len(arrivals(uniform(5000), [Phase(4000, 1.0, 0.25)], seed=3))
    assert sent == pytest.approx(1000, rel=0.1)


def test_mixed_lengths_keep_the_arrivals_and_draw_lengths_from_the_whole_trace() -> None:
    trace = uniform(1000)
    plain = arrivals(trace, [Phase(300, 1.0)], seed=5)
    mixed = arrivals(trace, [Phase(300, 1.0)], seed=5, mixed_lengths=True)
    assert [t for t, _ in mixed] == [t for t, _ in plain]
    prompts = [r.prompt_tokens for _, r in mixed]
    assert min(prompts) < 300 < 800 < max(prompts)  # drawn from all 1000, not the first 300


def test_the_trace_wraps_around() -> None:
    assert len(arrivals(uniform(10), [Phase(25, 1.0)])) == 25


def test_azure_trace_parsing_and_length_cut(tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,9000,2000\n"
        "2023-11-16 18:15:46.1805900,10,0\n"
    )
    trace = load_trace(csv, max_model_len=4096)
    assert [r.offset for r in trace.requests] == pytest.approx([0.0, 0.5, 4.814579])
    assert [(r.prompt_tokens, r.output_tokens) for r in trace.requests] == [(10, 1), (374, 44), (2096, 2000)]


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:1/", "http://[::1]:9"])
def test_loopback_is_allowed(url: str) -> None:
    assert require_loopback(url) == url.rstrip("/")


@pytest.mark.parametrize("url", ["http://10.244.0.5:8000", "http://example.com"])
def test_anything_else_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        require_loopback(url)


def test_replay_without_endpoints_counts_failures() -> None:
    schedule = arrivals(uniform(100, gap=0.01), [Phase(0.2, 1.0)])
    report = asyncio.run(replay(schedule, list, "m", duration=1.0, drain=1.0))
    assert report.summary()["sent"] == 20 and report.summary()["failed"] == 20
