"""What the performance model costs plan(): Llama-3.1-405B over one pool of each known GPU product, memory-only vs
with the model, without and with an SLO, cold (every memo cleared) and warm. With --drain: what perf.drain costs
per burst of the latency corpus (every row sent all at once), warm.

    .venv/bin/python bench/perf_timing.py [--runs 20]
    .venv/bin/python bench/perf_timing.py --drain [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.facts import catalog
from rightsizer.model import memory
from rightsizer.model.config import parse
from rightsizer.sizing import MEMORY_ONLY, PerformanceHook, SizingRequest, performance, plan
from rightsizer.sizing.pools import default_pools

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` as a package when run as a script

from bench import latency_corpus as corpus
from bench.latency_model import burst
from rightsizer.facts.perf_calibration import VLLM

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


def drain_timings(runs: int) -> None:
    """Each burst row drained `runs` times after one warm-up (memoised stage costs); its best time, milliseconds."""
    best: list[tuple[float, corpus.Row, int]] = []
    for row in corpus.load():
        if row.burst is None:
            continue
        try:
            r = corpus.replica(row, VLLM)
        except corpus.RowSkippedError:
            continue
        burst(r, row)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            d = burst(r, row)
            times.append((time.perf_counter() - start) * 1e3)
        best.append((min(times), row, d.preemptions))
    best.sort(key=lambda b: b[0])
    ms = [b[0] for b in best]
    worst, row, preemptions = best[-1]
    p90 = ms[int(0.9 * (len(ms) - 1))]
    print(f"perf.drain over {len(best)} burst rows: median {statistics.median(ms):.1f} ms, p90 {p90:.1f} ms")
    print(f"  worst {worst:.1f} ms: line {row.line}, {row.model} on {row.gpu}, {row.burst} requests, ", end="")
    print(f"{preemptions} preemptions")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=None, help="timed runs per case (20; 3 with --drain)")
    parser.add_argument("--drain", action="store_true", help="time perf.drain over the latency corpus's bursts")
    args = parser.parse_args(argv)
    if args.drain:
        drain_timings(args.runs or 3)
        return 0
    args.runs = args.runs or 20
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
