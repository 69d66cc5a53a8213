"""What the performance model costs plan(): Llama-3.1-405B over one pool of each known GPU product, memory-only vs
with the model, without and with an SLO, cold (every memo cleared) and warm.

    .venv/bin/python bench/perf_timing.py [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from typing import Any

from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.facts import catalog
from rightsizer.model import memory
from rightsizer.model.config import parse
from rightsizer.sizing import MEMORY_ONLY, PerformanceHook, SizingRequest, performance, plan
from rightsizer.sizing.pools import default_pools

MODEL = "meta-llama/Llama-3.1-405B-Instruct"
SPECS: dict[str, dict[str, Any]] = {
    "no SLO": {},
    "SLO + requestRate": {
        "slo": {"ttftP95Ms": 2000, "itlP95Ms": 60},
        "workload": {"requestRate": 2},
        "replicas": {"max": 10},
    },
}


def timings(request: SizingRequest, hook: PerformanceHook | None, runs: int, cold: bool) -> list[float]:
    times = []
    for _ in range(runs):
        if cold:
            memory.clear_caches()
            performance.clear_caches()
        start = time.perf_counter()
        plan(request, MODEL, hook)
        times.append((time.perf_counter() - start) * 1e3)
    return sorted(times)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    facts = parse(catalog.lookup(MODEL) or {})
    for label, fields in SPECS.items():
        spec = LLMDeploymentSpec.model_validate({"model": {"name": MODEL}, **fields})
        request = SizingRequest(spec, facts, default_pools())
        for name, hook in (("memory only", MEMORY_ONLY), ("with the model", None)):
            for cold in (True, False):
                t = timings(request, hook, args.runs, cold)
                print(
                    f"{label:<18} {name:<15} {'cold' if cold else 'warm'}: median {statistics.median(t):6.1f} ms, "
                    f"p95 {t[int(0.95 * (len(t) - 1))]:6.1f} ms"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
