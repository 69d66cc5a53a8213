"""Every autoscaling policy under injected model error: bench/autoscale.py over traces × errors × seeds, one table.

    python bench/autoscale_matrix.py [--jobs 2] [--out bench/results/autoscale-matrix.json] [--policies ...]

Cases: the two Azure traces (conversation ×20, coding ×40, as docs/benchmarks.md runs them) and the Mooncake
long-context conversation trace (×4, a 32k context window and a 3 s TTFT target: what a user of a service with
12k-token prompts would pick), each at model errors ×0.7, ×1.0 and ×1.4 (prefill and decode alike: the simulated
replicas take that many times the model's step time; every policy still plans with the model, the oracle knows the
truth) and rate-scaling seeds 0, 1, 2. Results go to a JSON file case by case, and a case already there is not run
again (so an interrupted run resumes, and `--policies rightsizer --rerun` refreshes one policy, reusing the oracle's
recorded needs, which its trial simulations took most of the time to find). Seed 0's replica
timelines go to docs/images/autoscale-error-<trace>-<error>.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "operator"))

from bench import autoscale as bench  # noqa: E402

TRACES = REPO.parent / "shared" / "data" / "traces"
CASES: dict[str, list[str]] = {
    "conv": ["--trace", str(TRACES / "azure-llm-2023-conv.csv"), "--rate-scale", "20"],
    "code": ["--trace", str(TRACES / "azure-llm-2023-code.csv"), "--rate-scale", "40"],
    "mooncake": [
        "--trace",
        str(TRACES / "mooncake-2025-conversation.csv"),
        "--rate-scale",
        "4",
        "--max-model-len",
        "32768",
        "--ttft-ms",
        "3000",
    ],
}
ERRORS = ("0.7", "1", "1.4")
SEEDS = (0, 1, 2)


def key(trace: str, error: str, seed: int) -> str:
    return f"{trace} ×{error} seed {seed}"


def one(trace: str, error: str, seed: int, policies: str, needs: list[int] | None) -> tuple[str, dict[str, Any]]:
    argv = [*CASES[trace], "--model-error", f"{error},{error}", "--seed", str(seed)]
    if policies:
        argv += ["--policies", policies]
    args = bench.build_parser().parse_args(argv)
    started = time.perf_counter()
    setup, tr, results, needs = bench.compare(args, needs)
    rows: dict[str, Any] = {}
    for r in results:
        serving = r.timeline.serving or [0]
        rows[r.name] = {**r.wire(), "meanReplicas": round(float(np.mean(serving)), 2), "maxReplicas": max(serving)}
    if seed == 0 and not policies:
        label = error.replace(".", "")
        title = (
            f"{Path(args.trace).name} ×{args.rate_scale:g}, replicas ×{error} the model's step time, seed 0; "
            f"{setup.plan_label.split(',')[0]}\nTTFT p95 ≤ {args.ttft_ms:.0f} ms, ITL p95 ≤ {args.itl_ms:.0f} ms"
        )
        png = bench.IMAGES / f"autoscale-error-{trace}-{label}.png"
        bench.plot(png, title, tr, results, setup.engine.gpus, args.warmup)
    meta = {"plan": setup.plan_label, "capacityRps": round(setup.capacity_rps, 3), "requests": len(tr), "needs": needs}
    return key(trace, error, seed), {"policies": rows, **meta, "seconds": round(time.perf_counter() - started)}


def table(results: dict[str, dict[str, Any]], traces: list[str]) -> str:
    """Per trace and error: each policy's TTFT attainment (min over seeds) and GPU-hours over the oracle's (max)."""
    lines = []
    for trace in traces:
        heads = " | ".join(f"×{e}: TTFT ok (worst seed) · GPU-h × oracle" for e in ERRORS)
        lines += [f"\n{trace}", f"| policy | {heads} |"]
        lines.append("|---" * (len(ERRORS) + 1) + "|")
        names: list[str] = []
        for e in ERRORS:
            for s in SEEDS:
                got = results.get(key(trace, e, s))
                for n in got["policies"] if got else {}:
                    if n not in names:
                        names.append(n)
        order = ["static-peak", "static-mean", "concurrency", "queue", "rightsizer", "rightsizer-model", "oracle"]
        for name in sorted(names, key=lambda n: order.index(n) if n in order else len(order)):
            cells = []
            for e in ERRORS:
                ttft, ratio = [], []
                for s in SEEDS:
                    got = results.get(key(trace, e, s))
                    if not got:
                        continue
                    policies = got["policies"]
                    if name in policies and "oracle" in policies:
                        ttft.append(100 * policies[name]["ttftAttainment"])
                        ratio.append(policies[name]["gpuHours"] / policies["oracle"]["gpuHours"])
                cells.append(
                    f"{min(ttft):.2f} % ({', '.join(f'{t:.2f}' for t in ttft)}) · "
                    f"{max(ratio):.2f} ({', '.join(f'{r:.2f}' for r in ratio)})"
                    if ttft
                    else "-"
                )
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "autoscale-matrix.json"))
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--traces", default=",".join(CASES))
    p.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="rate-scaling seeds to run (the table shows all)")
    p.add_argument("--policies", default="", help="a subset (merged into the cases already recorded)")
    p.add_argument("--rerun", action="store_true", help="run the cases already recorded again")
    p.add_argument("--table", action="store_true", help="print the table of what is recorded and stop")
    args = p.parse_args(argv)
    out = Path(args.out)
    results: dict[str, dict[str, Any]] = json.loads(out.read_text()) if out.exists() else {}
    traces = args.traces.split(",")
    if not args.table:
        seeds = [int(x) for x in args.seeds.split(",")]
        todo = [(t, e, s) for t in traces for e in ERRORS for s in seeds if args.rerun or key(t, e, s) not in results]
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            futures = [
                pool.submit(one, t, e, s, args.policies, results.get(key(t, e, s), {}).get("needs")) for t, e, s in todo
            ]
            for future in futures:
                name, got = future.result()
                if name in results and args.policies:
                    merged = dict(results[name]["policies"])
                    merged.update(got["policies"])
                    got = {**results[name], "policies": merged}
                results[name] = got
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
                print(f"{name}: {got['seconds']} s", file=sys.stderr, flush=True)
    print(table(results, traces))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
