"""The vLLM wheel of one release, from PyPI, kept in a cache outside the repository and read as a zip: never
installed, never imported (its imports need torch and a GPU).

Cache: `${RIGHTSIZER_CACHE:-$HOME/.cache/rightsizer}/wheels/vllm-<version>-*.whl`. The wheel is the CUDA build for
Linux x86_64 and CPython 3.12 (what the vllm/vllm-openai image runs); only its Python sources are read, and they are
the same in every platform's wheel. Releases are tagged for different glibc baselines (0.12-0.19 manylinux_2_31,
0.20 manylinux_2_35, 0.22+ manylinux_2_28, older ones manylinux1) and pip matches `--platform` tags exactly, so all
of them are offered; each release has one x86_64 wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

MANYLINUX_TAGS = ("manylinux_2_31", "manylinux_2_35", "manylinux_2_28", "manylinux_2_17", "manylinux2014", "manylinux1")
PIP_PLATFORM = ("--python-version", "3.12", *(a for t in MANYLINUX_TAGS for a in ("--platform", f"{t}_x86_64")))
DOWNLOAD_TIMEOUT_S = 900


class WheelUnavailableError(Exception):
    """No wheel in the cache and none could be downloaded: the reason, for a test skip."""


def cache_dir() -> Path:
    root = os.environ.get("RIGHTSIZER_CACHE") or str(Path.home() / ".cache" / "rightsizer")
    return Path(root) / "wheels"


def cached_wheel(version: str) -> Path | None:
    found = sorted(cache_dir().glob(f"vllm-{version}-*.whl"))
    return found[0] if found else None


def download_wheel(version: str) -> Path:
    """`pip download` the wheel alone (no dependencies), into a scratch folder first so that an interrupted
    download never leaves a truncated wheel in the cache."""
    target = cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target, prefix=f".download-{version}-") as scratch:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            *PIP_PLATFORM,
            "--disable-pip-version-check",
            "--quiet",
            "--dest",
            scratch,
            f"vllm=={version}",
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise WheelUnavailableError(f"pip download vllm=={version} failed: {error}") from error
        wheels = list(Path(scratch).glob(f"vllm-{version}-*.whl"))
        if done.returncode != 0 or not wheels:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel"]
            raise WheelUnavailableError(f"pip download vllm=={version} failed: {last[0]}")
        final = target / wheels[0].name
        shutil.move(wheels[0], final)
    return final


def ensure_wheel(version: str, *, download: bool = True) -> Path:
    found = cached_wheel(version)
    if found is not None:
        return found
    if not download:
        raise WheelUnavailableError(f"no vllm-{version} wheel in {cache_dir()} and downloading is disabled")
    return download_wheel(version)


@dataclass
class Wheel:
    """Text files of the wheel, by path inside it (vllm/engine/arg_utils.py)."""

    path: Path
    _zip: zipfile.ZipFile | None = field(default=None, init=False, repr=False)

    def read(self, member: str) -> str | None:
        if self._zip is None:
            self._zip = zipfile.ZipFile(self.path)
        try:
            return self._zip.read(member).decode("utf-8")
        except KeyError:
            return None

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None
