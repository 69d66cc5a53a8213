"""The option table the operator ships (rightsizer/facts/vllm_options.py) against the wheels' own parsers, and the
extraArgs reader (sizing/extra_args.py) against argparse over that parser: they cannot drift."""

from __future__ import annotations

import pytest

from rightsizer.api.v1alpha1.llmdeployment import DEFAULT_ENGINE_VERSION
from rightsizer.errors import SizingError
from rightsizer.facts.vllm_options import RELEASES
from rightsizer.sizing.extra_args import FULL_SPELLING_ONLY, REFUSED, read_extra_args
from tests.contract.conftest import cached_releases, load_or_skip
from tests.contract.vllm_option_export import release_options
from tests.contract.vllm_release import ReleaseContract


def test_the_pinned_release_has_a_table() -> None:
    assert DEFAULT_ENGINE_VERSION in RELEASES


@pytest.mark.parametrize("version", sorted({DEFAULT_ENGINE_VERSION, *(v for v in cached_releases() if v in RELEASES)}))
def test_the_table_equals_the_wheels_parser(version: str) -> None:
    """Regenerate with hack/vllm_options.py when this fails."""
    contract = load_or_skip(version, download=version == DEFAULT_ENGINE_VERSION)
    assert RELEASES[version] == release_options(version, contract.parser_model)


# What vLLM checks of a value after binding it (bounds, types, choices): the reader leaves those to vLLM.
VALUE_PROBLEMS = ("violates", "invalid", "not one of")


def _samples(pinned: ReleaseContract) -> list[list[str]]:
    """Every option string, its `_` spelling and its abbreviations, with a value when it takes one."""
    parser = pinned.parser()
    samples = []
    for option in (o for o in pinned.parser_model.options if o.flags and o.dest != "help"):
        valid = (option.choices or option.declared_values or ("1",))[0]  # the reader checks names, not values
        value = [valid] if option.takes_value else []
        for flag in option.spellings():
            samples.append([flag, *value])
            if flag.startswith("--"):
                samples.append(["--" + flag[2:].replace("-", "_"), *value])
                samples += [[flag[:n], *value] for n in range(3, len(flag), 3)]
            elif option.takes_value:
                samples.append([f"{flag}1"])  # joined: `-tp1` is not `-tp 1` (only one-letter options join)
        if option.takes_value:
            samples.append([option.flags[0]])  # a missing value
    return [s for s in samples if parser.resolve(s[0]) is not None or not s[0].startswith("--")]


def test_the_reader_binds_what_argparse_binds(pinned: ReleaseContract) -> None:
    """For every spelling, the reader and a real argparse parser built from the wheel's options agree on which
    option it sets, and on whether vLLM refuses it; an option the reader accepts is never one rightsizer refuses."""
    parser = pinned.parser()
    disagreements = []
    for argv in _samples(pinned):
        problems = parser.problems(["--model", "m", *argv])
        vllm_refuses = any(not any(v in p for v in VALUE_PROBLEMS) for p in problems)
        joined = not argv[0].startswith("--") and parser.resolve(argv[0]) is None
        option = parser.resolve(argv[0][:2] if joined else argv[0])
        refused_by_us = option is not None and (
            option.dest in REFUSED
            or FULL_SPELLING_ONLY.get(option.dest, argv[0].partition("=")[0]) != argv[0].partition("=")[0]
        )
        try:
            read = read_extra_args(pinned.version, argv)
        except SizingError:
            if not (vllm_refuses or refused_by_us):
                disagreements.append((argv, "refused, vLLM accepts"))
            continue
        if vllm_refuses:
            disagreements.append((argv, "accepted, vLLM refuses"))
        elif option is not None and [b.option.dest for b in read.bound] != [option.dest]:
            disagreements.append((argv, f"bound {[b.option.dest for b in read.bound]}, argparse {option.dest}"))
    assert disagreements == []
