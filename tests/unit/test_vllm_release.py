"""One vLLM version parser: every module reads a release number alike and refuses a bad one with the same error."""

from __future__ import annotations

import pytest

from rightsizer.errors import UnsupportedEngineVersionError
from rightsizer.facts.vllm_metrics import Signal, names_for
from rightsizer.facts.vllm_profiles import profile_for
from rightsizer.facts.vllm_release import parse_release


@pytest.mark.parametrize(
    ("version", "release"),
    [
        ("0.19.0", (0, 19, 0)),
        ("v0.19", (0, 19, 0)),
        (" 0.11.2 ", (0, 11, 2)),
        ("0.8.5.post1", (0, 8, 5)),
        ("0.10.1rc1", (0, 10, 0)),  # the patch part is not all digits: read up to the minor release
        ("1.2.3.4", (1, 2, 3)),
    ],
)
def test_release_numbers(version: str, release: tuple[int, int, int]) -> None:
    assert parse_release(version) == release


@pytest.mark.parametrize("version", ["", "0", "latest", "0.x", "0.19rc1", "0.١٩"])  # the last: Arabic-Indic digits
def test_not_a_release_number_names_the_field_and_the_fix(version: str) -> None:
    with pytest.raises(UnsupportedEngineVersionError) as err:
        parse_release(version)
    assert err.value.one_line() == (
        f"spec.serving.engine.version: {version!r} is not a vLLM release number; write it like 0.19.0"
    )


@pytest.mark.parametrize("read", [profile_for, lambda v: names_for(Signal.TTFT, v)])
def test_profiles_and_metric_names_refuse_alike(read: object) -> None:
    assert callable(read)
    with pytest.raises(UnsupportedEngineVersionError, match="is not a vLLM release number"):
        read("nightly")


def test_profiles_compare_on_the_minor_release() -> None:
    assert profile_for("0.19.1").name == profile_for("0.19.0").name
    assert profile_for("v0.33.0").name == "0.33"
