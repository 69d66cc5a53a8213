"""Small phrases the plan's reasons and refusals share."""

from __future__ import annotations

from rightsizer.facts.vllm_profiles import GIB


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def gib(value: float) -> str:
    return f"{value / GIB:.2f} GiB"
