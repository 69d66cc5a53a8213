"""Measure a GPU's kernels and refit the performance model's hardware efficiency factors.

    python bench/gpu/calibrate.py --out h100.json                 # everything, within --budget-s (420 s)
    python bench/gpu/calibrate.py --quick --out h100-quick.json   # priority-0 shapes only, about a minute
    python bench/gpu/calibrate.py --dry-run --product H200        # the plan and its estimated time; no GPU needed
    python bench/gpu/calibrate.py --backend numpy                 # the same code paths on the CPU, tiny shapes

Needs PyTorch with CUDA and nothing else (no vLLM, no numpy, no network). It times, with CUDA events after a
warm-up and replayed from CUDA graphs:

  stream     a 1 GiB device copy: the bandwidth ceiling
  decode     x[M, K] @ w[N, K]ᵀ for the linear layers of Llama-3.1-8B and 70B at TP 1/2/4/8, M = 1..256 tokens
  prefill    the same weights, M = 512..8192 tokens
  attention  one decode step over a paged KV cache (16-token blocks through a block table) and over the same KV
             laid out contiguously, batch × context
  moe        the routed experts of Mixtral-8x7B, Qwen3-30B-A3B and gpt-oss-120b: top-k routing, one GEMM pair per
             expert, for 1..4096 tokens

each in bf16 and in FP8 (torch._scaled_mm) where the GPU has FP8 tensor cores. It prints every shape's time,
achieved bandwidth and FLOP/s as it goes, then a table per group, the fitted factors against the shipped ones
(facts/perf_calibration.py), and a snippet to paste there; --out writes all of it as JSON.

The device is identified from torch.cuda.get_device_name() in facts/gpus.py's product table (--product to
override); its datasheet peaks are what the fractions are fractions of. README.md beside this file says how to
read the results.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

REPO = Path(__file__).resolve().parents[2]
if __name__ == "__main__":  # run as a script: make bench.gpu and rightsizer importable without installing either
    sys.path[:0] = [str(REPO), str(REPO / "operator")]

from bench.gpu import backends, fit, kernels, shapes  # noqa: E402
from bench.gpu.shapes import DECODE, FP8, PREFILL, Shape  # noqa: E402
from rightsizer.facts import gpus  # noqa: E402
from rightsizer.facts.perf_calibration import VLLM  # noqa: E402

SCHEMA = 1
FIT_KINDS = (DECODE, PREFILL)  # what the model's linear term is: the factors are fitted on these
RESERVE_S = 10.0  # of the budget, kept for the fit, the table and the JSON
NUMPY_REFERENCE = "H100"  # the numpy backend's fractions are of this product's peaks: they mean nothing


# --- the device -------------------------------------------------------------------------------------------------


class UnknownDeviceError(LookupError):
    pass


def identify(device_name: str, override: str | None) -> gpus.GpuProduct:
    """The product table's entry for the device: `override` if given, else the CUDA device name.

    No fuzzy matching: an H100 NVL has other peaks than the SXM H100 (and the PCIe card) in the table, and
    silently taking the SXM figures would make every fraction wrong."""
    try:
        return gpus.lookup(override or device_name)
    except gpus.UnknownGpuProductError as exc:
        hint = "" if override else f"; {device_name!r} is not a name or alias in facts/gpus.py: pass --product"
        raise UnknownDeviceError(f"{exc}{hint}") from exc


def peaks(product: gpus.GpuProduct, dtype: str) -> tuple[float, float]:
    """(bytes/s, FLOP/s) at 100 %: what step.py scales by `hbm` and `compute` (FP8 weights: the FP8 peak)."""
    tflops = product.fp8_tflops if dtype == FP8 and product.fp8_tflops is not None else product.bf16_tflops
    return product.hbm_tb_per_s * 1e12, tflops * 1e12


# --- measuring --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    kind: str
    dtype: str
    label: str
    group: str
    priority: int
    params: dict[str, int | str]
    model_bytes: float
    bytes_moved: float
    flops: float
    seconds: float  # median per call
    seconds_best: float
    inner: int
    trials: int
    graph: bool
    copies: int
    peak_bytes_per_s: float
    peak_flops_per_s: float
    note: str = ""

    @property
    def achieved_bytes_per_s(self) -> float:
        return self.bytes_moved / self.seconds

    @property
    def achieved_flops_per_s(self) -> float:
        return self.flops / self.seconds

    def sample(self) -> fit.Sample:
        return fit.Sample(self.model_bytes, self.flops, self.seconds, self.peak_bytes_per_s, self.peak_flops_per_s)

    def to_json(self) -> dict[str, object]:
        s = self.sample()
        return {
            **asdict(self),
            "achieved_gb_per_s": self.achieved_bytes_per_s / 1e9,
            "achieved_tflops": self.achieved_flops_per_s / 1e12,
            "hbm_fraction": self.achieved_bytes_per_s / self.peak_bytes_per_s,
            "model_hbm_fraction": s.hbm_fraction,
            "compute_fraction": s.compute_fraction,
        }


@dataclass(frozen=True)
class Skipped:
    label: str
    kind: str
    dtype: str
    priority: int
    reason: str


@dataclass
class Run:
    measurements: list[Measurement]
    skipped: list[Skipped]
    seconds: float
    estimated_seconds: float  # the cost model's estimate of what was measured


def skip(shape: Shape, reason: str) -> Skipped:
    return Skipped(shape.label, shape.kind, shape.dtype, shape.priority, reason)


def measure(
    backend: backends.Backend,
    plan: Sequence[Shape],
    product: gpus.GpuProduct,
    *,
    timing: shapes.Timing,
    cost: shapes.CostModel,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
    log: Callable[[str], None] = print,
    seed: int = 0,
) -> Run:
    """Time every shape of `plan` in order until the next one would end past `deadline` (on `clock`).

    Each shape's cost is the cost model's estimate scaled by how far the estimates have been off so far, so a
    slower GPU than assumed trims the plan's tail (its highest priorities) instead of overrunning. A shape that
    fails (out of memory, an unsupported kernel) is recorded as skipped and the run goes on."""
    rng = random.Random(seed)
    cache = kernels.WeightCache(backend)
    start = clock()
    measurements: list[Measurement] = []
    skipped: list[Skipped] = []
    estimated = 0.0
    for index, shape in enumerate(plan):
        now = clock()
        # after a few shapes, trust the observed pace (bounded: one odd shape must not stall or flood the run)
        pace = min(5.0, max(0.2, (now - start) / estimated)) if index >= 5 and estimated > 0 else 1.0
        if now + cost.seconds(shape) * pace > deadline:
            skipped += [skip(s, "time budget") for s in plan[index:]]
            log(f"time budget: {len(plan) - index} shapes left unmeasured (priority >= {shape.priority})")
            break
        estimated += cost.seconds(shape)
        try:
            bench = kernels.build(backend, shape, rng=rng, cache=cache)
            timed = backend.time(bench.run, timing)
        except Exception as exc:  # one shape's failure (OOM, a kernel's limits) must not end a long run
            cache.clear()
            skipped.append(skip(shape, f"{type(exc).__name__}: {exc}"))
            log(f"[{index + 1:4d}/{len(plan)}] {shape.label}: skipped ({type(exc).__name__}: {exc})")
            continue
        bandwidth, flop_rate = peaks(product, shape.dtype)
        m = Measurement(
            kind=shape.kind,
            dtype=shape.dtype,
            label=shape.label,
            group=shape.group,
            priority=shape.priority,
            params=shape.params(),
            model_bytes=bench.model_bytes,
            bytes_moved=bench.bytes_moved,
            flops=bench.flops,
            seconds=timed.seconds,
            seconds_best=timed.best,
            inner=timed.inner,
            trials=timed.trials,
            graph=timed.graph,
            copies=bench.copies,
            peak_bytes_per_s=bandwidth,
            peak_flops_per_s=flop_rate,
            note=timed.note,
        )
        measurements.append(m)
        log(progress(index, len(plan), clock() - start, m))
    cache.clear()
    return Run(measurements, skipped, clock() - start, estimated)


def progress(index: int, total: int, elapsed: float, m: Measurement) -> str:
    bw = m.achieved_bytes_per_s
    fl = m.achieved_flops_per_s
    return (
        f"[{index + 1:4d}/{total}] {elapsed:6.1f}s  {m.label:<72s} {m.seconds * 1e6:10.1f} µs"
        f"  {bw / 1e9:8.1f} GB/s {bw / m.peak_bytes_per_s:6.1%}"
        f"  {fl / 1e12:7.1f} TFLOP/s {fl / m.peak_flops_per_s:6.1%}"
    )


# --- the fit and its report -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupRow:
    kind: str
    dtype: str
    group: str
    n: int
    hbm_median: float  # achieved / peak bandwidth (bytes moved), over the group's memory-bound shapes
    hbm_max: float
    compute_median: float  # achieved / peak FLOP/s, over its compute-bound shapes
    compute_max: float
    fit: fit.RooflineFit  # the group on its own


def fit_factors(measurements: Sequence[Measurement], kinds: Sequence[str] = FIT_KINDS) -> fit.RooflineFit:
    return fit.fit_roofline([m.sample() for m in measurements if m.kind in kinds])


def group_rows(measurements: Sequence[Measurement], overall: fit.RooflineFit) -> list[GroupRow]:
    """Per (kind, dtype, group): where each stands against the peaks, and its own fit (for spotting the shapes
    that one pair of factors describes badly)."""
    groups: dict[tuple[str, str, str], list[Measurement]] = {}
    for m in measurements:
        groups.setdefault((m.kind, m.dtype, m.group), []).append(m)
    rows = []
    for (kind, dtype, group), ms in groups.items():
        memory = [m.achieved_bytes_per_s / m.peak_bytes_per_s for m in ms if overall.memory_bound_at(m.sample())]
        compute = [m.sample().compute_fraction for m in ms if m.flops > 0 and not overall.memory_bound_at(m.sample())]
        rows.append(
            GroupRow(
                kind,
                dtype,
                group,
                len(ms),
                fit.percentile(memory, 0.5),
                max(memory, default=math.nan),
                fit.percentile(compute, 0.5),
                max(compute, default=math.nan),
                fit.fit_roofline([m.sample() for m in ms]),
            )
        )
    order = {k: i for i, k in enumerate(shapes.KINDS)}
    return sorted(rows, key=lambda r: (order[r.kind], r.dtype, r.group))


def _pct(x: float | None) -> str:
    return "    -" if x is None or math.isnan(x) else f"{x:5.1%}"


def table(rows: Sequence[GroupRow]) -> str:
    head = (
        f"{'kind':<9s} {'dtype':<5s} {'group':<30s} {'n':>4s}  {'HBM med':>7s} {'max':>6s}"
        f"  {'FLOP med':>8s} {'max':>6s}  {'fit hbm':>7s} {'compute':>7s}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.kind:<9s} {r.dtype:<5s} {r.group:<30s} {r.n:4d}  {_pct(r.hbm_median):>7s} {_pct(r.hbm_max):>6s}"
            f"  {_pct(r.compute_median):>8s} {_pct(r.compute_max):>6s}"
            f"  {_pct(r.fit.hbm):>7s} {_pct(r.fit.compute):>7s}"
        )
    return "\n".join(lines)


def report(
    run: Run,
    product: gpus.GpuProduct,
    device: str,
    info: dict[str, object],
    *,
    checks: Sequence[kernels.Check],
    args: dict[str, object],
    planned: int,
    trimmed: Sequence[Shape],
    unsupported: dict[str, str],
) -> tuple[dict[str, object], str]:
    """(the JSON document, the printed report)."""
    overall = fit_factors(run.measurements)
    rows = group_rows(run.measurements, overall)
    dtypes = sorted({m.dtype for m in run.measurements if m.kind in FIT_KINDS})
    today = datetime.date.today().isoformat()
    provenance = f"{info.get('backend')} {info.get('torch') or info.get('numpy')}, {today}"
    code = fit.snippet(
        overall,
        product=product,
        device=device,
        shipped=VLLM,
        provenance=provenance,
        shapes=f"{'/'.join(FIT_KINDS)} GEMM shapes ({', '.join(dtypes)})",
    )
    warnings = []
    for name, value in (("hbm", overall.hbm), ("compute", overall.compute)):
        if value is not None and value > 1.0:
            warnings.append(f"fitted {name} {value:.3f} exceeds the datasheet peak: wrong --product, or a cache served")
    warnings += [f"self-check failed: {c.name}: error {c.error:.2e} > {c.tolerance:.0e}" for c in checks if not c.ok]
    doc: dict[str, object] = {
        "schema": SCHEMA,
        "tool": "bench/gpu/calibrate.py",
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": {"name": device, **info},
        "product": asdict(product),
        "arguments": args,
        "budget": {
            "planned_shapes": planned,
            "trimmed_before_start": len(trimmed),
            "measured": len(run.measurements),
            "skipped": len(run.skipped),
            "seconds": round(run.seconds, 1),
            "estimated_seconds": round(run.estimated_seconds, 1),
        },
        "unsupported": unsupported,
        "checks": [{**asdict(c), "ok": c.ok} for c in checks],
        "fit": {
            "kinds": list(FIT_KINDS),
            **asdict(overall),
            "shipped": {"hbm": VLLM.hbm, "compute": VLLM.compute, "source": VLLM.source},
        },
        "groups": [{**asdict(r), "fit": asdict(r.fit)} for r in rows],
        "warnings": warnings,
        "snippet": code,
        "measurements": [m.to_json() for m in run.measurements],
        "skipped": [asdict(s) for s in run.skipped],
    }
    text = [
        "",
        f"{device} as {product.product}: {product.hbm_tb_per_s} TB/s, {product.bf16_tflops:g} bf16 TFLOP/s"
        + (f", {product.fp8_tflops:g} FP8 TFLOP/s" if product.fp8_tflops else ""),
        f"{len(run.measurements)} shapes measured in {run.seconds:.0f} s, {len(run.skipped)} skipped"
        + (f", {len(trimmed)} trimmed to fit the budget" if trimmed else ""),
        "HBM: achieved / datasheet bandwidth (bytes moved) over memory-bound shapes; FLOP: achieved / dense peak over"
        " compute-bound shapes; fit: the group's own roofline fit",
        table(rows),
        "",
        f"fit over {', '.join(FIT_KINDS)} GEMMs ({overall.points} shapes, {overall.memory_bound} memory-bound,"
        f" {overall.compute_bound} compute-bound, RMS log error {overall.rms_log_error:.3f}):",
        f"  hbm     {_pct(overall.hbm)}   shipped VLLM.hbm     {VLLM.hbm:.1%} (published vLLM latencies)",
        f"  compute {_pct(overall.compute)}   shipped VLLM.compute {VLLM.compute:.1%}",
        *[f"warning: {w}" for w in warnings],
        "",
        "# paste into operator/rightsizer/facts/perf_calibration.py:",
        code,
    ]
    return doc, "\n".join(text)


# --- the command ------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("torch", "numpy"), default="torch")
    p.add_argument("--product", help="facts/gpus.py product or alias (default: from torch.cuda.get_device_name)")
    p.add_argument("--out", type=Path, help="JSON file for the measurements, the fit and the snippet")
    p.add_argument("--budget-s", type=float, default=420.0, help="wall-clock budget from start to the JSON")
    p.add_argument("--quick", action="store_true", help="priority-0 shapes only, fewer trials")
    p.add_argument(
        "--kinds", default=",".join(shapes.KINDS), help="comma-separated subset of " + ",".join(shapes.KINDS)
    )
    p.add_argument("--dtypes", default=",".join(shapes.DTYPES), help="bf16,fp8 (FP8 only where the GPU has it)")
    p.add_argument("--no-graphs", action="store_true", help="time eager launches instead of CUDA graph replays")
    p.add_argument("--no-check", action="store_true", help="skip the kernels' numerical self-checks")
    p.add_argument("--dry-run", action="store_true", help="print the plan and its estimated time, measure nothing")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for name, allowed in (("kinds", shapes.KINDS), ("dtypes", shapes.DTYPES)):
        values = [v for v in getattr(args, name).split(",") if v]
        if unknown := sorted(set(values) - set(allowed)):
            p.error(f"--{name}: unknown {', '.join(unknown)} (choose from {', '.join(allowed)})")
        setattr(args, name, values)
    return args


def main(
    argv: Sequence[str] | None = None,
    *,
    backend: backends.Backend | None = None,
    clock: Callable[[], float] = time.monotonic,
    out: TextIO = sys.stdout,
) -> int:
    """The command. Tests pass a `backend` (the numpy one, configured) and a `clock`."""
    started = clock()
    args = parse_args(argv)

    def log(line: str) -> None:
        print(line, file=out, flush=True)

    use_numpy = (backend.name if backend is not None else args.backend) == "numpy"
    if args.dry_run:  # no device to ask: the product named, else the H100's peaks for the estimate
        product = gpus.lookup(args.product or NUMPY_REFERENCE)
        return dry_run(args, product, use_numpy, log)
    try:
        backend = backend or backends.load(args.backend, seed=args.seed, graphs=not args.no_graphs)
        device = backend.device_name()
        product = identify(device, args.product or (NUMPY_REFERENCE if use_numpy else None))
    except (backends.BackendUnavailableError, UnknownDeviceError) as exc:
        log(f"error: {exc}")
        return 2
    info = backend.info()
    log(f"device: {device} -> {product.product}; backend {info}")
    seen = info.get("torch_total_gib")
    if isinstance(seen, float) and abs(seen / product.torch_total_gib - 1) > 0.05:
        log(f"warning: torch sees {seen} GiB, {product.product} has {product.torch_total_gib}: is it that product?")
    if use_numpy:
        log(f"numpy backend: tiny shapes on the CPU, fractions of {product.product}'s peaks; they test the logic only")

    unsupported = {d: reason for d in args.dtypes if (reason := backend.unsupported(d)) is not None}
    for dtype, reason in unsupported.items():
        log(f"skipping {dtype}: {reason}")
    dtypes = [d for d in args.dtypes if d not in unsupported]

    checks: list[kernels.Check] = []
    if not args.no_check:
        checks = kernels.self_check(backend, dtypes, seed=args.seed)
        for c in checks:
            log(
                f"check {'ok  ' if c.ok else 'FAIL'} {c.name}:"
                f" relative error {c.error:.2e} (tolerance {c.tolerance:.0e})"
            )

    spec, timing, cost = setup(args, product, use_numpy)
    planned = shapes.plan(spec, dtypes=dtypes, kinds=args.kinds, max_priority=0 if args.quick else None)
    available = args.budget_s - (clock() - started) - RESERVE_S
    kept, trimmed = shapes.trim_to_budget(planned, available, cost)
    log(
        f"plan: {len(planned)} shapes, estimated {shapes.estimate(planned, cost):.0f} s; {len(kept)} fit"
        f" {available:.0f} s of budget"
        + (f" ({len(trimmed)} trimmed, priority >= {trimmed[0].priority})" if trimmed else "")
    )
    run = measure(
        backend,
        kept,
        product,
        timing=timing,
        cost=cost,
        deadline=started + args.budget_s - RESERVE_S,
        clock=clock,
        log=log,
        seed=args.seed,
    )
    run.skipped[:0] = [skip(s, "time budget (planned)") for s in trimmed]
    arguments = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    doc, text = report(
        run,
        product,
        device,
        info,
        checks=checks,
        args=arguments,
        planned=len(planned),
        trimmed=trimmed,
        unsupported=unsupported,
    )
    log(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(finite(doc), indent=1, allow_nan=False) + "\n")
        log(f"wrote {args.out}")
    return 0


def finite(value: object) -> object:
    """`value` with NaN and infinities (an empty group's median, an unidentified fit) as null: strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def setup(
    args: argparse.Namespace, product: gpus.GpuProduct, use_numpy: bool
) -> tuple[shapes.PlanSpec, shapes.Timing, shapes.CostModel]:
    if use_numpy:
        return shapes.TINY, shapes.TIMING_TINY, shapes.numpy_cost()
    cost = shapes.torch_cost(product.hbm_tb_per_s, product.bf16_tflops, product.fp8_tflops, quick=args.quick)
    return shapes.FULL, cost.timing, cost


def dry_run(args: argparse.Namespace, product: gpus.GpuProduct, use_numpy: bool, log: Callable[[str], None]) -> int:
    spec, _, cost = setup(args, product, use_numpy)
    dtypes = [d for d in args.dtypes if d != FP8 or product.supports_fp8]
    planned = shapes.plan(spec, dtypes=dtypes, kinds=args.kinds, max_priority=0 if args.quick else None)
    kept, trimmed = shapes.trim_to_budget(planned, args.budget_s - RESERVE_S, cost)
    by_kind: dict[tuple[str, str], list[Shape]] = {}
    for s in planned:
        by_kind.setdefault((s.kind, s.dtype), []).append(s)
    log(f"plan for {product.product} ({'numpy, tiny shapes' if use_numpy else 'torch'}):")
    for (kind, dtype), ss in by_kind.items():
        log(f"  {kind:<9s} {dtype:<4s} {len(ss):4d} shapes, estimated {shapes.estimate(ss, cost):6.1f} s")
    log(
        f"total {len(planned)} shapes, estimated {shapes.estimate(planned, cost):.0f} s;"
        f" within --budget-s {args.budget_s:g}: {len(kept)} kept, {len(trimmed)} trimmed"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
