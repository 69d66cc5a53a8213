"""Errors a person can act on: each names the field at fault and the fix."""

from __future__ import annotations

from pydantic import ValidationError


class RightsizerError(Exception):
    """Base class: `field` is the spec path at fault (camelCase, as in the manifest), `fix` what to do about it."""

    def __init__(self, field: str, problem: str, fix: str = "") -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        text = f"{self.field}: {self.problem}"
        return f"{text}; {self.fix}" if self.fix else text


class ModelConfigError(RightsizerError):
    """The model's config.json is missing, unreadable, or describes something we cannot size."""


class SizingError(RightsizerError):
    """No plan satisfies the spec on the GPUs available."""


class SloUnreachableError(SizingError):
    """A latency target no allowed GPU meets even for one request alone: more replicas would not help."""


class UnsupportedEngineVersionError(RightsizerError):
    """The vLLM release has no accounting profile."""


def validation_messages(err: ValidationError) -> list[str]:
    """Every problem of a pydantic validation error, each as `dotted.field.path: message`."""
    return [f"{'.'.join(str(p) for p in problem['loc'])}: {problem['msg']}" for problem in err.errors()]


def validation_message(err: ValidationError) -> str:
    """A pydantic validation error as one line: its first problem (the one a person fixes first)."""
    return validation_messages(err)[0]
