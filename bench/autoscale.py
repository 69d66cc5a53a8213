"""Autoscaling policies on a real request trace, in a discrete-event simulation of vLLM replicas.

    python bench/autoscale.py --trace ../shared/data/traces/azure-llm-2023-conv.csv [--json]

One run replays the trace (Azure format, TIMESTAMP,ContextTokens,GeneratedTokens; the Azure LLM inference traces of
Patel et al., "Splitwise: Efficient generative LLM inference using phase splitting", ISCA 2024) against replicas of
the plan rightsizer makes for the model, GPU and SLO (bench/autoscale_sim.py: continuous batching step by step
with the performance model's step times, least-loaded routing, the same pod start-up delay for every policy), under:

  static-peak   replicas for the busiest minute's arrival rate at one replica's SLO capacity (perf.max_request_rate)
  static-mean   the same for the mean rate
  concurrency   KubeAI's autoscaler: ceil(active requests averaged over 10 min / target), target = the requests
                in flight at one replica's SLO capacity (the performance model's prediction)
  queue         KEDA on Σ vllm:num_requests_waiting, threshold 5, through the HPA's default behavior
  rightsizer    rightsizer.scaling.decision.decide, fed like the operator feeds it, with its default Behavior
  oracle        hindsight (bench/autoscale_policies.py: oracle_needs, cheapest_cover): per interval (60 s) the fewest
                ready replicas with which at least 99 % of the requests arriving in it meet the TTFT target, found
                by trial simulation from the state the earlier intervals left; then the cheapest pod timeline that
                provides them when every pod pays the start-up delay (pods start ahead of need, so none is late)

It prints per policy the TTFT and ITL SLO attainment (share of requests within target; ITL: a request's own p95
inter-token latency, nearest rank, over requests with two or more tokens) and GPU-hours (each pod from its creation
to its removal), and writes a replica-timeline PNG. Every policy starts with the oracle's first-interval replicas
ready; the first --warmup seconds (300) are played but not scored, neither requests nor GPU-hours.

    python bench/autoscale.py --trace ../shared/data/traces/azure-llm-2023-conv.csv --rate-scale 20
    python bench/autoscale.py --trace ../shared/data/traces/azure-llm-2023-code.csv --rate-scale 40 --json

docs/benchmarks.md has the results; docs/autoscaling.md how the defaults were chosen.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "operator"))

from bench import autoscale_trace as traces  # noqa: E402
from bench.autoscale_policies import (  # noqa: E402
    ConcurrencyTarget,
    Policy,
    QueueLength,
    Rightsizer,
    Schedule,
    Static,
    Timeline,
    cheapest_cover,
    oracle_needs,
    run,
)
from bench.autoscale_sim import Engine, Simulation  # noqa: E402
from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec  # noqa: E402
from rightsizer.facts import catalog  # noqa: E402
from rightsizer.model.config import parse  # noqa: E402
from rightsizer.perf import Replica, Slo, Traffic, build_replica, max_request_rate, predict  # noqa: E402
from rightsizer.perf.in_force import mixed_capacity_rps  # noqa: E402
from rightsizer.scaling import decision as autoscale  # noqa: E402
from rightsizer.sizing import SizingRequest, search  # noqa: E402
from rightsizer.sizing.pools import default_pools  # noqa: E402

IMAGES = REPO / "docs" / "images"
DEFAULT_MODEL = "meta-llama/Llama-3.1-8B-Instruct"


@dataclass(frozen=True)
class Setup:
    engine: Engine
    replica: Replica
    plan_label: str
    input_tokens: int
    output_tokens: int
    slo: Slo
    capacity_rps: float  # one replica's Poisson rate within the SLO at the declared workload
    concurrency_at_capacity: float


def plan_setup(args: argparse.Namespace, trace: traces.Trace) -> Setup:
    """Size the deployment as rightsizer would for this workload (the trace's mean lengths) and SLO."""
    inp = args.input_tokens or max(1, round(float(np.mean(trace.prompt))))
    out = args.output_tokens or max(1, round(float(np.mean(trace.output))))
    spec = LLMDeploymentSpec.model_validate(
        {
            "model": {"name": args.model},
            "serving": {"maxModelLen": args.max_model_len},
            "workload": {"inputTokens": inp, "outputTokens": out},
            "slo": {"ttftP95Ms": args.ttft_ms, "itlP95Ms": args.itl_ms},
            "gpu": {"products": [args.gpu]},
        }
    )
    config = catalog.lookup(args.model)
    if config is None:
        raise SystemExit(f"{args.model} is not in the catalog (rightsizer models lists it)")
    facts = parse(config)
    result = search(SizingRequest(spec, facts, default_pools()))
    if not result.candidates:
        raise SystemExit(f"no plan for {args.model} on {args.gpu}: {result.rejections[0].reason}")
    c = result.candidates[0]
    replica = build_replica(facts, c.settings, c.shape.pool.gpu, c.memory, gpus_per_node=c.shape.pool.gpus_per_node)
    slo = Slo(ttft_p95_s=args.ttft_ms / 1e3, itl_p95_s=args.itl_ms / 1e3)
    capacity = max_request_rate(replica, inp, out, slo)
    if capacity <= 0:
        raise SystemExit(f"one replica cannot meet TTFT {args.ttft_ms} ms / ITL {args.itl_ms} ms at any rate")
    at_capacity = predict(replica, Traffic(inp, out, request_rate=capacity)).running
    prefill_error, decode_error = args.model_error
    # The replicas the simulator runs are the true ones; `replica` (what every policy's capacity comes from) stays
    # the model's belief. (1, 1) runs the model itself.
    true_replica = replica if args.model_error == (1.0, 1.0) else replica.scaled(prefill_error, decode_error)
    engine = Engine(
        step=true_replica.step_seconds,
        max_num_seqs=c.settings.max_num_seqs,
        max_num_batched_tokens=c.settings.max_num_batched_tokens,
        kv_tokens=c.memory.kv_cache_tokens,
        request_overhead_s=replica.efficiency.request_overhead_s,
        gpus=c.shape.gpus,
    )
    label = f"{c.shape.label()}, max-num-seqs {c.settings.max_num_seqs}, batched tokens {engine.max_num_batched_tokens}"
    return Setup(engine, replica, label, inp, out, slo, capacity, at_capacity)


def capacity_at(setup: Setup, replica: Replica, prompt: float, output: float) -> float:
    """One replica's SLO capacity at these mean lengths, as the operator computes it (perf.in_force: the mix of
    prompt lengths around the mean, interpolated between grid points), for the model or its calibrated version."""
    return mixed_capacity_rps(replica, prompt, output, setup.slo) or setup.capacity_rps


def load_trace(args: argparse.Namespace) -> traces.Trace:
    trace = traces.load(Path(args.trace))
    if args.start or args.duration:
        end = args.start + args.duration if args.duration else math.inf
        trace = trace.window(args.start, end)
    trace = traces.compress(trace, args.time_compression)
    rng = np.random.default_rng(args.seed)
    trace = traces.scale_rate(trace, args.rate_scale, rng, mode=args.rate_mode, jitter=args.jitter)
    return traces.clip_lengths(trace, args.max_model_len)


@dataclass(frozen=True)
class Result:
    name: str
    ttft_attainment: float
    itl_attainment: float
    gpu_hours: float
    timeline: Timeline

    def wire(self) -> dict[str, float]:
        return {
            "ttftAttainment": round(self.ttft_attainment, 5),
            "itlAttainment": round(self.itl_attainment, 5),
            "gpuHours": round(self.gpu_hours, 3),
        }


def simulate(trace: traces.Trace, setup: Setup, args: argparse.Namespace, policy: Policy, initial: int) -> Result:
    sim = Simulation(trace, setup.engine, startup_s=args.startup_s)
    timeline = run(sim, policy, initial)
    scored = trace.arrival >= args.warmup
    ttft = np.nan_to_num(sim.ttft(), nan=math.inf)[scored]
    itl = sim.itl_met(setup.slo.itl_p95_s or math.inf, start=args.warmup)
    return Result(
        policy.name,
        float(np.mean(ttft <= (setup.slo.ttft_p95_s or math.inf))) if len(ttft) else 1.0,
        float(np.mean(itl)) if len(itl) else 1.0,
        sim.gpu_hours(start=args.warmup),
        timeline,
    )


def peak_rate(trace: traces.Trace, window_s: float = 60.0) -> float:
    edges = np.arange(0.0, trace.duration + window_s, window_s)
    return float(np.histogram(trace.arrival, bins=edges)[0].max() / window_s) if len(trace) else 0.0


def behavior_for(args: argparse.Namespace) -> autoscale.Behavior:
    return autoscale.Behavior(min_replicas=args.min_replicas, max_replicas=args.max_replicas)


def rightsizer_policy(args: argparse.Namespace, setup: Setup, *, calibrate: bool) -> Rightsizer:
    """rightsizer as the operator runs it: with self-calibration (the default), or on the model alone."""
    return Rightsizer(
        autoscale.Targets(
            ttft_p95_s=setup.slo.ttft_p95_s,
            itl_p95_s=setup.slo.itl_p95_s,
            capacity_rps=setup.capacity_rps,
            max_running=setup.engine.max_num_seqs,
        ),
        behavior_for(args),
        capacity_at=(lambda r, p, o: capacity_at(setup, r, p, o)) if args.capacity == "observed" else None,
        model=setup.replica,
        period_s=args.sync_period,
        window_s=args.window,
        name="rightsizer" if calibrate else "rightsizer-model",
        calibrate=calibrate,
    )


def compare(
    args: argparse.Namespace, needs: list[int] | None = None
) -> tuple[Setup, traces.Trace, list[Result], list[int]]:
    """Every chosen policy on the trace. `needs`: the oracle's per-interval replicas from an earlier run of the same
    case (the trial simulations are most of the time a run takes)."""
    trace = load_trace(args)
    setup = plan_setup(args, trace)
    mean_rate = len(trace) / trace.duration if trace.duration else 0.0
    peak = math.ceil(peak_rate(trace) / setup.capacity_rps)
    if args.max_replicas is None:
        args.max_replicas = max(4, 3 * peak)
    bounds = (args.min_replicas, args.max_replicas)
    if needs is None:
        search_sim = Simulation(trace, setup.engine, startup_s=args.startup_s, record_metrics=False)
        needs = oracle_needs(
            search_sim,
            interval_s=args.oracle_interval,
            ttft_target_s=setup.slo.ttft_p95_s or math.inf,
            attainment=args.attainment,
            bounds=bounds,
        )
    initial = needs[0] if needs else args.min_replicas
    cover = cheapest_cover(needs, args.oracle_interval, args.startup_s)
    policies: dict[str, Policy] = {
        "static-peak": Static("static-peak", max(args.min_replicas, peak)),
        "static-mean": Static("static-mean", max(args.min_replicas, math.ceil(mean_rate / setup.capacity_rps))),
        "concurrency": ConcurrencyTarget(max(1.0, round(setup.concurrency_at_capacity)), *bounds),
        "queue": QueueLength(5.0, *bounds),
        "rightsizer": rightsizer_policy(args, setup, calibrate=True),
        "rightsizer-model": rightsizer_policy(args, setup, calibrate=False),
        "oracle": Schedule(cover, args.oracle_interval, lead_s=args.startup_s),
    }
    chosen = [p for p in args.policies.split(",")] if args.policies else list(policies)
    results = []
    for name in chosen:
        policy = policies[name]
        first = policy.replicas if isinstance(policy, Static) else (cover[0] if cover else initial)
        started = time.perf_counter()
        results.append(simulate(trace, setup, args, policy, first))
        if args.verbose:
            print(f"  {name}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return setup, trace, results, needs


def plot(path: Path, title: str, trace: traces.Trace, results: list[Result], gpus: int, warmup: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True, height_ratios=(1, 2.2))
    edges = np.arange(0.0, trace.duration + 60.0, 60.0)
    counts = np.histogram(trace.arrival, bins=edges)[0] / 60.0
    top.step(edges[:-1] / 60, counts, where="post", color="0.3")
    top.set_ylabel("arrivals / s\n(per minute)")
    top.set_title(title, fontsize=9)
    styles = {
        "static-peak": ("tab:blue", 1.1, "--"),
        "static-mean": ("tab:cyan", 1.1, "--"),
        "concurrency": ("tab:green", 1.1, "-"),
        "queue": ("tab:orange", 1.1, "-"),
        "rightsizer": ("tab:red", 2.0, "-"),
        "rightsizer-model": ("tab:pink", 1.2, "--"),
        "oracle": ("black", 1.6, ":"),
    }
    for r in results:
        color, width, style = styles.get(r.name, ("tab:gray", 1.1, "-"))
        label = f"{r.name}: TTFT {100 * r.ttft_attainment:.1f} %, {r.gpu_hours:.1f} GPU-h"
        times = np.asarray(r.timeline.times) / 60
        bottom.step(times, r.timeline.serving, where="post", color=color, lw=width, ls=style, label=label)
    if warmup > 0:
        for axis in (top, bottom):
            axis.axvspan(0, warmup / 60, color="0.9", zorder=0)
        bottom.text(warmup / 120, 0.5, "warm-up\n(not scored)", ha="center", fontsize=7, color="0.4")
    bottom.set_xlabel("minutes")
    bottom.set_ylabel(f"replicas ({gpus} GPU each)")
    bottom.legend(fontsize=8, loc="upper left", ncol=2)
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def model_error(text: str) -> tuple[float, float]:
    """PREFILL,DECODE (or one factor for both): how much slower than the model the simulated replicas run."""
    parts = text.split(",")
    try:
        values = [float(v) for v in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or not all(0 < v < math.inf for v in values):
        raise argparse.ArgumentTypeError(f"--model-error {text!r}: give PREFILL,DECODE factors > 0, e.g. 1.4,1.4")
    return values[0], values[1]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--trace", required=True, help="CSV with TIMESTAMP,ContextTokens,GeneratedTokens")
    p.add_argument("--model", default=DEFAULT_MODEL, help="catalog name (rightsizer models)")
    p.add_argument("--gpu", default="H100", help="GPU product (GFD name or alias)")
    p.add_argument("--ttft-ms", type=float, default=1000.0, help="TTFT p95 target")
    p.add_argument("--itl-ms", type=float, default=200.0, help="ITL p95 target")
    p.add_argument("--time-compression", type=float, default=1.0, help="play the trace this many times faster")
    p.add_argument("--rate-scale", type=float, default=1.0, help="this many requests per trace request")
    p.add_argument("--rate-mode", choices=("superpose", "replicate"), default="superpose", help="see autoscale_trace")
    p.add_argument("--jitter", type=float, default=300.0, help="superpose: each copy's clock offset, up to ± seconds")
    p.add_argument("--startup-s", type=float, default=60.0, help="pod start-up delay, the same for every policy")
    p.add_argument(
        "--model-error",
        type=model_error,
        default=(1.0, 1.0),
        metavar="PREFILL,DECODE",
        help="the simulated replicas' step parts take this many times the model's (1.4,1.4: 40 %% slower; the\n"
        "policies still plan with the model; the oracle knows the truth)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--warmup", type=float, default=300.0, help="seconds played but not scored (policies settle from their start)"
    )
    p.add_argument("--start", type=float, default=0.0, help="use the trace from this second")
    p.add_argument("--duration", type=float, default=0.0, help="use this many seconds of the trace (0: all)")
    p.add_argument("--max-model-len", type=int, default=16384)
    p.add_argument("--input-tokens", type=int, default=0, help="declared workload (default: the trace's mean)")
    p.add_argument("--output-tokens", type=int, default=0, help="declared workload (default: the trace's mean)")
    p.add_argument("--min-replicas", type=int, default=1)
    p.add_argument("--max-replicas", type=int, default=None, help="default: 3 × static-peak")
    p.add_argument("--oracle-interval", type=float, default=60.0, help="seconds between the oracle's changes")
    p.add_argument("--attainment", type=float, default=0.99, help="the oracle's per-interval TTFT attainment")
    p.add_argument(
        "--capacity",
        choices=("observed", "declared"),
        default="observed",
        help="rightsizer's per-replica capacity: at the window's mean lengths (the operator's way) or the declared",
    )
    p.add_argument("--sync-period", type=float, default=15.0, help="rightsizer's decision period (the operator's)")
    p.add_argument("--window", type=float, default=60.0, help="rightsizer's metrics window (the operator's)")
    p.add_argument("--policies", default="", help="comma-separated subset (default: all)")
    p.add_argument("--png", default="", help="replica-timeline PNG (default docs/images/autoscale-<trace>.png)")
    p.add_argument("--no-png", action="store_true")
    p.add_argument("--json", action="store_true", help="print only the JSON result")
    p.add_argument("--verbose", action="store_true", help="time each policy on stderr")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    setup, trace, results, needs = compare(args)
    elapsed = time.perf_counter() - started
    if args.json:
        print(json.dumps({"policies": {r.name: r.wire() for r in results}}, indent=2))
    else:
        oracle = next((r.gpu_hours for r in results if r.name == "oracle"), None)
        mean_rate = len(trace) / trace.duration if trace.duration else 0.0
        print(f"trace {args.trace}: {len(trace):,} requests over {trace.duration / 60:.1f} min, {mean_rate:.2f} req/s")
        print(f"  (time compression {args.time_compression}, rate scale {args.rate_scale}, seed {args.seed})")
        if args.model_error != (1.0, 1.0):
            print(f"  replicas run at ×{args.model_error[0]:g} prefill, ×{args.model_error[1]:g} decode of the model")
        print(f"{args.model} on {args.gpu}: {setup.plan_label}")
        print(
            f"SLO TTFT p95 {args.ttft_ms:.0f} ms, ITL p95 {args.itl_ms:.0f} ms; one replica serves "
            f"{setup.capacity_rps:.2f} req/s within it at {setup.input_tokens}+{setup.output_tokens} tokens; "
            f"pod start-up {args.startup_s:.0f} s"
        )
        print(f"{'policy':<17}{'TTFT ok':>9}{'ITL ok':>9}{'GPU-h':>9}{'× oracle':>10}{'mean rep.':>11}{'max':>5}")
        for r in results:
            ratio = f"{r.gpu_hours / oracle:.2f}" if oracle else "-"
            serving = r.timeline.serving or [0]
            print(
                f"{r.name:<17}{100 * r.ttft_attainment:>8.2f}%{100 * r.itl_attainment:>8.2f}%{r.gpu_hours:>9.2f}"
                f"{ratio:>10}{float(np.mean(serving)):>11.2f}{max(serving):>5}"
            )
        print(f"oracle needs per interval: {needs}")
        print(f"({elapsed:.0f} s)")
    if not args.no_png:
        path = Path(args.png) if args.png else IMAGES / f"autoscale-{Path(args.trace).stem}.png"
        title = (
            f"{Path(args.trace).name} ×{args.rate_scale:g} rate ({args.rate_mode}), ×{args.time_compression:g} time; "
            f"{args.model.split('/')[-1]} on {args.gpu} ({setup.plan_label.split(',')[0]})\n"
            f"TTFT p95 ≤ {args.ttft_ms:.0f} ms, ITL p95 ≤ {args.itl_ms:.0f} ms; pod start-up {args.startup_s:.0f} s"
        )
        plot(path, title, trace, results, setup.engine.gpus, args.warmup)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
