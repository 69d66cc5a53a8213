"""A time budget for one sizing, set by the caller: the core reads no clock, it only asks the caller's check
between candidate shapes, which raises (a SizingError naming the budget) once the time is spent.

Why: an assessment runs inside the admission webhook and the reconciler; a spec that makes the search slow (many
pools, large models) must not hold a webhook worker or the operator's CPU for long. Limits on the inputs
(model/limits.py, the config bounds) keep a real search well under a second; this is the backstop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_CHECK: ContextVar[Callable[[], None] | None] = ContextVar("sizing_budget", default=None)


@contextmanager
def time_budget(check: Callable[[], None]) -> Iterator[None]:
    """Within the block, sizing calls `check` between steps; `check` raises when the budget is spent."""
    token = _CHECK.set(check)
    try:
        yield
    finally:
        _CHECK.reset(token)


def spend() -> None:
    """One step of sizing done: the caller's check, if a budget is set."""
    check = _CHECK.get()
    if check is not None:
        check()
