"""vLLM release numbers: the one parser every module reads them with, and the one error it refuses them with."""

from __future__ import annotations

from rightsizer.errors import UnsupportedEngineVersionError

Release = tuple[int, int, int]

FIELD = "spec.serving.engine.version"


def parse_release(version: str) -> Release:
    """(major, minor, patch) of a vLLM version: "0.19.0" and "v0.19" give (0, 19, 0), "0.8.5.post1" gives (0, 8, 5).

    Reads up to three leading dot-separated runs of ASCII digits; fewer than two is not a release number and raises
    UnsupportedEngineVersionError naming spec.serving.engine.version.
    """
    numbers = []
    for part in version.strip().lstrip("v").split(".")[:3]:
        if not (part.isascii() and part.isdigit()):
            break
        numbers.append(int(part))
    if len(numbers) < 2:
        raise UnsupportedEngineVersionError(FIELD, f"{version!r} is not a vLLM release number", "write it like 0.19.0")
    return (numbers[0], numbers[1], numbers[2] if len(numbers) > 2 else 0)
