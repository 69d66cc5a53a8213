"""Background loops that outlive their errors, and the verdict the health probe gives on them.

The operator runs three loops beside kopf's handlers: the resync, the autoscaler and the webhook certificate renewal
(controller.handlers starts them). Each is one `pass` repeated every `interval` seconds. `supervise` runs the passes:
a pass that raises is logged and retried after an exponential backoff (never longer than the interval), so no error
ends a loop; an API server that is away for a minute costs a few retries, not the loop. Every pass that completes is
recorded in `LoopHealth`, and `stale` says which loops have gone longer than their deadline without one: the
`@kopf.on.probe` handler turns that into a failing /healthz (liveness and readiness), so a loop that is dead, stuck
in a pass, or failing every pass is reported instead of hidden behind a green probe.

The schedule (`Backoff.delay`) and the verdict (`stale`) are pure functions of their arguments; only `supervise`
sleeps and logs.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Delay before retrying a failed pass: `initial`, doubling per consecutive failure, at most `cap`."""

    initial: float = 1.0
    factor: float = 2.0
    cap: float = 60.0

    def delay(self, failures: int, interval: float, jitter: float = 0.0) -> float:
        """Seconds to wait after `failures` consecutive failures (>= 1). Never longer than the loop's own interval:
        a failing loop retries at least as often as a healthy one runs. `jitter` in [0, 1) shortens the delay by up
        to half, so replicas of an HA pair that failed together do not retry in lockstep."""
        if failures < 1:
            raise ValueError("a backoff starts after the first failure")
        base = min(self.cap, interval, self.initial * self.factor ** min(failures - 1, 64))
        return base * (1.0 - 0.5 * jitter)


@dataclass
class LoopRecord:
    """What the probe knows of one loop. Times are monotonic seconds."""

    interval: float
    deadline: float  # seconds after which a loop without a completed pass is stale
    since: float  # when the loop started, or its last completed pass
    failures: int = 0  # consecutive failed passes
    last_error: str = ""
    running: bool = True  # False once the loop's task ended (it never should while the operator runs)


@dataclass
class LoopHealth:
    """The loops of one operator process (kept in kopf's memo)."""

    loops: dict[str, LoopRecord] = field(default_factory=dict)

    def register(self, name: str, interval: float, grace: float, now: float) -> None:
        """A loop's deadline is its interval plus `grace`: time for one pass, and for a few backoff retries."""
        self.loops[name] = LoopRecord(interval=interval, deadline=interval + grace, since=now)

    def passed(self, name: str, now: float) -> None:
        record = self.loops[name]
        record.since, record.failures, record.last_error = now, 0, ""

    def failed(self, name: str, error: str) -> None:
        record = self.loops[name]
        record.failures += 1
        record.last_error = error

    def ended(self, name: str) -> None:
        self.loops[name].running = False


def stale(health: LoopHealth, now: float) -> list[str]:
    """One line per loop that is not healthy: ended, or no completed pass within its deadline (why, if known)."""
    problems = []
    for name, record in sorted(health.loops.items()):
        if not record.running:
            problems.append(f"{name}: the loop has ended")
            continue
        age = now - record.since
        if age <= record.deadline:
            continue
        why = f" ({record.failures} failed passes in a row, the last: {record.last_error})" if record.failures else ""
        problems.append(f"{name}: no completed pass for {age:.0f} s (deadline {record.deadline:.0f} s){why}")
    return problems


async def supervise(
    name: str,
    one_pass: Callable[[], Awaitable[object]],
    health: LoopHealth,
    *,
    backoff: Backoff = Backoff(),
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    jitter: Callable[[], float] = random.random,
) -> None:
    """Run `one_pass` every interval (registered in `health`) forever; a pass that raises is retried after the
    backoff. Only cancellation ends it."""
    record = health.loops[name]
    try:
        while True:
            failures = record.failures
            await sleep(record.interval if failures == 0 else backoff.delay(failures, record.interval, jitter()))
            try:
                await one_pass()
            except Exception as err:  # any error: the loop must outlive it (cancellation is not an Exception)
                health.failed(name, f"{type(err).__name__}: {err}")
                retry = backoff.delay(record.failures, record.interval)
                if record.failures == 1:
                    log.exception("%s pass failed; retried in at most %.0f s", name, retry)
                else:
                    log.warning("%s pass failed again (%d in a row): %s", name, record.failures, err)
                continue
            if record.failures:
                log.info("%s recovered", name)
            health.passed(name, clock())
    finally:
        health.ended(name)
