#!/usr/bin/env python3
"""Fetch the vLLM wheel(s) the contract tests read, and extract their parser and metrics into the cache.

    hack/vllm_wheel.py --fetch [VERSION ...]     # default: the pinned release (spec.serving.engine.version default)

The wheel (~450 MB, `pip download --no-deps`, never installed) and the extracted JSON go to
${RIGHTSIZER_CACHE:-$HOME/.cache/rightsizer}/wheels, keyed by version: a second run does nothing. Exits 1, saying
why, when a wheel can be neither found there nor downloaded. The work is done by tests/contract/vllm_release.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "operator")]

from rightsizer.api.v1alpha1.llmdeployment import DEFAULT_ENGINE_VERSION  # noqa: E402
from tests.contract import vllm_release  # noqa: E402
from tests.contract.vllm_wheel import WheelUnavailableError  # noqa: E402


def main() -> int:
    cli = argparse.ArgumentParser(prog="hack/vllm_wheel.py", description=__doc__.splitlines()[0])
    cli.add_argument("--fetch", action="store_true", required=True, help="download if missing, then extract")
    cli.add_argument("versions", nargs="*", default=[DEFAULT_ENGINE_VERSION], help="vLLM releases")
    args = cli.parse_args()
    try:
        return vllm_release.main(args.versions)
    except WheelUnavailableError as error:
        print(f"hack/vllm_wheel.py: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
