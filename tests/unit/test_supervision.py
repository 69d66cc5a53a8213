"""Supervised background loops (controller.supervision) and the scrape source's bounds (adapters.metrics_source):
a pass that raises never ends its loop, the probe's verdict names a stale or dead loop, a pod that trickles its
/metrics is cut off at the scrape deadline, and parallel scrapes stay within the bound."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from rightsizer.adapters.metrics_source import ScrapeSource
from rightsizer.controller.supervision import Backoff, LoopHealth, stale, supervise
from tests.unit.test_autoscaler import REAL, pod

# --- the backoff schedule --------------------------------------------------------------------------------------------


def test_backoff_doubles_from_the_first_failure_up_to_the_cap() -> None:
    backoff = Backoff(initial=1.0, factor=2.0, cap=60.0)
    assert [backoff.delay(n, interval=3600) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_backoff_never_waits_longer_than_the_loops_interval() -> None:
    assert Backoff(cap=60.0).delay(10, interval=15.0) == 15.0


def test_backoff_jitter_shortens_by_at_most_half() -> None:
    backoff = Backoff(initial=8.0)
    assert backoff.delay(1, interval=100, jitter=0.0) == 8.0
    assert backoff.delay(1, interval=100, jitter=0.999) == pytest.approx(4.0, abs=0.01)


def test_backoff_after_a_million_failures_is_still_the_cap() -> None:
    assert Backoff(cap=60.0).delay(1_000_000, interval=3600) == 60.0  # no float overflow


def test_backoff_starts_at_the_first_failure() -> None:
    with pytest.raises(ValueError, match="first failure"):
        Backoff().delay(0, interval=10)


# --- the staleness verdict -------------------------------------------------------------------------------------------


def test_a_loop_is_healthy_until_its_interval_plus_grace_has_passed_without_a_pass() -> None:
    health = LoopHealth()
    health.register("resync", interval=60, grace=120, now=1000.0)
    assert stale(health, 1000.0 + 180) == []
    assert stale(health, 1000.0 + 181) == ["resync: no completed pass for 181 s (deadline 180 s)"]


def test_a_completed_pass_resets_the_deadline_and_the_failures() -> None:
    health = LoopHealth()
    health.register("resync", interval=60, grace=120, now=0.0)
    health.failed("resync", "ConnectionRefusedError: [Errno 111]")
    health.passed("resync", now=170.0)
    assert stale(health, 340.0) == []
    assert health.loops["resync"].failures == 0


def test_a_failing_loop_is_stale_with_its_last_error() -> None:
    health = LoopHealth()
    health.register("autoscale", interval=15, grace=120, now=0.0)
    health.register("resync", interval=60, grace=120, now=0.0)
    for _ in range(3):
        health.failed("autoscale", "MaxRetryError: connection refused")
    assert stale(health, 136.0) == [
        "autoscale: no completed pass for 136 s (deadline 135 s) "
        "(3 failed passes in a row, the last: MaxRetryError: connection refused)"
    ]


def test_an_ended_loop_is_reported_at_once() -> None:
    health = LoopHealth()
    health.register("webhook_tls", interval=3600, grace=120, now=0.0)
    health.ended("webhook_tls")
    assert stale(health, 1.0) == ["webhook_tls: the loop has ended"]


# --- supervise ----------------------------------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def run_passes(outcomes: list[BaseException | None], interval: float = 30.0) -> tuple[LoopHealth, FakeTime, int]:
    """Supervise a pass that raises or succeeds as `outcomes` says, then is cancelled."""
    health, fake, calls = LoopHealth(), FakeTime(), 0
    health.register("loop", interval=interval, grace=10, now=0.0)

    async def one_pass() -> None:
        nonlocal calls
        calls += 1
        outcome = outcomes[calls - 1] if calls <= len(outcomes) else asyncio.CancelledError()
        if outcome is not None:
            raise outcome

    async def main() -> None:
        with pytest.raises(asyncio.CancelledError):
            await supervise("loop", one_pass, health, clock=fake.clock, sleep=fake.sleep, jitter=lambda: 0.0)

    asyncio.run(main())
    return health, fake, calls


def test_errors_do_not_end_the_loop_and_retries_back_off() -> None:
    refused = ConnectionRefusedError(111, "Connection refused")
    health, fake, calls = run_passes([refused, refused, OSError("reset"), None, None])
    assert calls == 6  # every pass ran; only the cancellation (the sixth) ended the loop
    assert fake.sleeps == [30.0, 1.0, 2.0, 4.0, 30.0, 30.0]  # the interval, backoff while failing, the interval
    assert health.loops["loop"].failures == 0
    assert health.loops["loop"].since == 67.0  # the fifth pass, the last one completed
    assert health.loops["loop"].running is False  # ended by the cancellation: the probe would say so


def test_a_loop_that_keeps_failing_goes_stale() -> None:
    health, fake, _ = run_passes([RuntimeError("boom")] * 5, interval=5.0)
    assert health.loops["loop"].failures == 5
    health.loops["loop"].running = True  # as if still running (the test cancelled it)
    assert stale(health, fake.now) == [
        f"loop: no completed pass for {fake.now:.0f} s (deadline 15 s) (5 failed passes in a row, the last: "
        "RuntimeError: boom)"
    ]


# --- the scrape source's bounds -------------------------------------------------------------------------------


async def _trickling_server(period: float) -> tuple[asyncio.Server, int]:
    """An HTTP server that answers /metrics one byte every `period` seconds, forever (never idle long enough for a
    per-read timeout)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000000\r\n\r\n")
        try:
            while True:
                writer.write(b"#")
                await writer.drain()
                await asyncio.sleep(period)
        except (ConnectionError, asyncio.CancelledError):
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_a_pod_that_trickles_its_metrics_is_cut_off_at_the_deadline(tmp_path: Any) -> None:
    async def main() -> float:
        server, port = await _trickling_server(period=0.05)
        # httpx's own timeout (per read) is 2 s and never fires: a byte arrives every 50 ms.
        source = ScrapeSource(60, port, 0.5, client=httpx.AsyncClient(timeout=2.0))
        pods = [pod("a", ip="127.0.0.1")]
        start = time.monotonic()
        stats = await asyncio.wait_for(source.window("ns", "d", pods, list(REAL.values()), "0.19.0"), 10)
        elapsed = time.monotonic() - start
        assert stats.pods == 0  # nothing usable from that pod this pass
        await source.aclose()
        server.close()
        return elapsed

    assert 0.4 < asyncio.run(main()) < 2.0


def test_parallel_scrapes_stay_within_the_bound() -> None:
    in_flight, peak = 0, 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        return httpx.Response(200, text="")

    async def main() -> None:
        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        source = ScrapeSource(60, 8000, 5.0, concurrency=3, client=client)
        pods = [pod(f"p{i}", ip=f"10.0.0.{i}") for i in range(12)]
        await source.window("ns", "d", pods, list(REAL.values()), "0.19.0")
        await source.aclose()

    asyncio.run(main())
    assert peak == 3


# --- the probe ---------------------------------------------------------------------------------------------------


def test_the_probe_fails_while_a_loop_is_stale_and_reports_every_loop_otherwise() -> None:
    import kopf

    from rightsizer.controller import handlers

    probe: Any = handlers.loops_probe  # kopf's decorator types it as an activity handler, called with kopf's kwargs

    health = LoopHealth()
    now = time.monotonic()
    health.register("resync", interval=60, grace=120, now=now)
    health.register("autoscale", interval=15, grace=120, now=now - 200)  # no pass for 200 s
    memo = kopf.Memo()
    memo[handlers.HEALTH_KEY] = health
    with pytest.raises(kopf.PermanentError, match=r"autoscale: no completed pass for 200 s \(deadline 135 s\)"):
        probe(memo=memo)
    health.passed("autoscale", now)
    assert set(probe(memo=memo)) == {"autoscale", "resync"}


def test_kopf_keeps_retrying_its_api_requests_through_a_minute_long_outage_with_room_to_spare() -> None:
    """When kopf's resource observer runs out of retries the whole operator exits. Its default schedule (54 s) is
    shorter than the one-minute outage tests/integration/test_supervision.py survives, and lost that race when a
    scan began just before the outage; the operator's schedule must outlast twice that outage."""
    from rightsizer.controller import handlers

    assert sum(handlers.API_ERROR_BACKOFFS) >= 2 * 60.0
    assert max(handlers.API_ERROR_BACKOFFS) <= 30.0  # a recovered API server is found again within half a minute
