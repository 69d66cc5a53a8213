"""The shape of a vLLM release's `vllm serve` option table (the data is in facts/vllm_options.py, generated from the
release's wheel by hack/vllm_options.py and checked against the wheel's parser by tests/contract)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Arity(StrEnum):
    """How many values an option consumes after its name (argparse's action and nargs, reduced)."""

    NONE = "none"  # a switch: store_true/store_false/count/BooleanOptionalAction
    ONE = "one"  # nargs=None: exactly one value
    OPTIONAL = "optional"  # nargs="?": zero or one
    SOME = "some"  # nargs="+": one or more
    ANY = "any"  # nargs="*": zero or more


@dataclass(frozen=True)
class VllmOption:
    dest: str  # the attribute argparse stores it in, vLLM's EngineArgs/FrontendArgs field name
    flags: tuple[str, ...]  # option strings as registered: long form, short aliases ("--quantization", "-q")
    arity: Arity
    negatable: bool = False  # BooleanOptionalAction: every long flag also has a `--no-` form

    def spellings(self) -> tuple[str, ...]:
        """Every exact option string argparse registers for it."""
        if not self.negatable:
            return self.flags
        return self.flags + tuple(f"--no-{f[2:]}" for f in self.flags if f.startswith("--"))


@dataclass(frozen=True)
class ReleaseOptions:
    version: str
    options: tuple[VllmOption, ...]  # keyword options only (the positional model tag is not listed)
    allow_abbrev: bool  # argparse accepts unambiguous prefixes of long options

    def by_spelling(self) -> dict[str, VllmOption]:
        return {s: o for o in self.options for s in o.spellings()}
