"""Contract tests: rightsizer's vLLM arguments and metric names against what a real vLLM release accepts and exposes,
read from its PyPI wheel (never installed: vLLM is no dependency of the operator, and torch cannot be installed here).

The pinned release's wheel is downloaded on first use (~450 MB, once, into ${RIGHTSIZER_CACHE:-~/.cache/rightsizer}/
wheels); CI fetches it up front with `hack/vllm_wheel.py --fetch`. Set RIGHTSIZER_VLLM_DOWNLOAD=0 to never
download: the tests that need the wheel then skip, saying why. Other releases are checked when their wheel or
extracted contract is already in the cache (fetch one with `hack/vllm_wheel.py --fetch 0.13.0`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from rightsizer.api.v1alpha1.llmdeployment import DEFAULT_ENGINE_VERSION
from tests.contract import vllm_release
from tests.contract.vllm_release import ReleaseContract
from tests.contract.vllm_wheel import WheelUnavailableError, cache_dir

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.contract)


def download_allowed() -> bool:
    return os.environ.get("RIGHTSIZER_VLLM_DOWNLOAD", "1") != "0"


def load_or_skip(version: str, *, download: bool = True) -> ReleaseContract:
    try:
        return vllm_release.load(version, download=download and download_allowed())
    except WheelUnavailableError as reason:
        pytest.skip(f"vLLM {version} wheel unavailable ({reason}); fetch it: hack/vllm_wheel.py --fetch")


@pytest.fixture(scope="session")
def pinned() -> ReleaseContract:
    """The release rightsizer deploys by default (spec.serving.engine.version)."""
    return load_or_skip(DEFAULT_ENGINE_VERSION)


def cached_releases() -> list[str]:
    """Releases whose wheel or extracted contract is in the cache, oldest first."""
    pattern = re.compile(r"vllm-(\d+\.\d+\.\d+)[-.]")
    names = [p.name for p in cache_dir().glob("vllm-*")] if cache_dir().exists() else []
    found = {m.group(1) for name in names if (m := pattern.match(name))}
    return sorted(found, key=lambda v: tuple(int(x) for x in v.split(".")))
