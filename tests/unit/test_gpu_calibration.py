"""bench/gpu/calibrate.py without a GPU: the numpy backend runs the same code paths (shape plan, paged gather,
MoE routing and grouped GEMM, timing loop, fit, JSON) on tiny shapes. No assertion depends on how fast this
machine is: timings only enter through properties that hold for any positive time."""

from __future__ import annotations

import io
import itertools
import json
import math
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.gpu import calibrate, fit, kernels, shapes
from bench.gpu.backends import NumpyBackend, inner_calls
from rightsizer.facts.gpus import lookup
from rightsizer.facts.perf_calibration import VLLM, Efficiency

REPO = Path(__file__).resolve().parents[2]
H100 = lookup("H100")
H100_FP8_TFLOPS = H100.fp8_tflops or math.nan  # H100 has FP8 tensor cores; NaN would fail every comparison


def numpy_backend() -> NumpyBackend:
    # rotate_bytes > 0: the small weights are spread over several copies, as on a GPU with an L2 cache
    return NumpyBackend(seed=1, emulate_fp8=True, rotate_bytes=64 * 1024)


def strict_json(path: Path) -> dict[str, Any]:
    def reject(token: str) -> None:
        raise AssertionError(f"non-standard JSON constant {token}")

    doc: dict[str, Any] = json.loads(path.read_text(), parse_constant=reject)
    return doc


# --- the whole run, on the CPU -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def numpy_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("gpu") / "calibration.json"
    printed = io.StringIO()
    rc = calibrate.main(
        ["--backend", "numpy", "--out", str(out), "--budget-s", "300"], backend=numpy_backend(), out=printed
    )
    assert rc == 0
    return strict_json(out), printed.getvalue()


def test_numpy_run_measures_every_kind_in_both_formats(numpy_run: tuple[dict[str, Any], str]) -> None:
    doc, printed = numpy_run
    ms = doc["measurements"]
    kinds = {(m["kind"], m["dtype"]) for m in ms}
    assert kinds == {
        ("stream", "bf16"),
        ("decode", "bf16"),
        ("decode", "fp8"),
        ("prefill", "bf16"),
        ("prefill", "fp8"),
        ("attention", "bf16"),
        ("moe", "bf16"),
        ("moe", "fp8"),
    }
    assert len(ms) == len(shapes.plan(shapes.TINY)) and doc["skipped"] == []
    assert all(c["ok"] for c in doc["checks"]) and len(doc["checks"]) == 4
    assert doc["product"]["product"] == "NVIDIA-H100-80GB-HBM3"
    for m in ms:
        assert m["seconds"] > 0 and m["seconds_best"] <= m["seconds"]
        assert m["trials"] == shapes.TIMING_TINY.trials and 1 <= m["inner"] <= shapes.TIMING_TINY.max_inner
        # the fractions are of the product's datasheet peaks, FP8 GEMMs against the FP8 peak
        assert m["peak_bytes_per_s"] == H100.hbm_tb_per_s * 1e12
        peak = H100_FP8_TFLOPS if m["dtype"] == "fp8" else H100.bf16_tflops
        assert m["peak_flops_per_s"] == peak * 1e12
        assert m["achieved_gb_per_s"] == pytest.approx(m["bytes_moved"] / m["seconds"] / 1e9)
        assert m["model_hbm_fraction"] == pytest.approx(m["model_bytes"] / m["seconds"] / m["peak_bytes_per_s"])
    # the small weights rotate over copies so repeated calls read memory, not a cache
    assert any(m["copies"] > 1 for m in ms if m["kind"] == "decode")
    assert "KERNELS_H100 = Efficiency(" in printed and "fit over decode, prefill GEMMs" in printed


def test_numpy_run_fits_factors_from_its_own_measurements(numpy_run: tuple[dict[str, Any], str]) -> None:
    doc, _ = numpy_run
    samples = [
        fit.Sample(m["model_bytes"], m["flops"], m["seconds"], m["peak_bytes_per_s"], m["peak_flops_per_s"])
        for m in doc["measurements"]
        if m["kind"] in ("decode", "prefill")
    ]
    refit = fit.fit_roofline(samples)
    got = doc["fit"]
    assert got["points"] == len(samples) == refit.points
    for name in ("hbm", "compute"):
        assert got[name] == (None if getattr(refit, name) is None else pytest.approx(getattr(refit, name), rel=1e-12))
    # a CPU reaches a sliver of an H100's peaks: whatever identified is a fraction in (0, 1]
    assert got["hbm"] is not None, "decode at M=1 streams weights: memory-bound on any machine"
    for name in ("hbm", "compute"):
        assert got[name] is None or 0 < got[name] <= 1
    assert got["memory_bound"] + got["compute_bound"] == got["points"]
    # hbm is the geometric mean of the memory-bound shapes' fractions, or a boundary value between them
    fractions = sorted(s.hbm_fraction for s in samples)
    assert fractions[0] <= got["hbm"] <= fractions[-1]


def test_snippet_is_python_that_builds_the_fitted_efficiency(numpy_run: tuple[dict[str, Any], str]) -> None:
    doc, _ = numpy_run
    namespace: dict[str, object] = {"Efficiency": Efficiency, "VLLM": VLLM}
    exec(doc["snippet"], namespace)
    measured = namespace["KERNELS_H100"]
    assert isinstance(measured, Efficiency)
    assert measured.hbm == pytest.approx(doc["fit"]["hbm"], rel=1e-3)
    expected_compute = doc["fit"]["compute"] if doc["fit"]["compute"] is not None else VLLM.compute
    assert measured.compute == pytest.approx(expected_compute, rel=1e-3)
    assert (measured.link, measured.step_overhead_s) == (VLLM.link, VLLM.step_overhead_s)
    assert "cpu (numpy)" in measured.source and "NVIDIA-H100-80GB-HBM3" in measured.source


# --- the fit ------------------------------------------------------------------------------------------------------


def synthetic(hbm: float, compute: float, noise: float, seed: int = 0) -> list[fit.Sample]:
    """The full GPU plan's GEMMs timed by a roofline at known efficiencies, times a deterministic jitter."""
    rng = random.Random(seed)
    samples = []
    for s in shapes.plan(shapes.FULL, kinds=(shapes.DECODE, shapes.PREFILL)):
        assert isinstance(s, shapes.GemmShape)
        elt = 1 if s.dtype == shapes.FP8 else 2
        bandwidth, flop_rate = calibrate.peaks(H100, s.dtype)
        weight = s.n * s.k * elt
        seconds = max(weight / (hbm * bandwidth), s.flops() / (compute * flop_rate))
        samples.append(fit.Sample(weight, s.flops(), seconds * (1 + rng.uniform(-noise, noise)), bandwidth, flop_rate))
    return samples


@pytest.mark.parametrize(("hbm", "compute"), [(0.83, 0.61), (0.6, 0.75), (0.95, 0.3)])
def test_fit_recovers_known_efficiencies(hbm: float, compute: float) -> None:
    exact = fit.fit_roofline(synthetic(hbm, compute, noise=0.0))
    assert exact.hbm == pytest.approx(hbm, rel=1e-9) and exact.compute == pytest.approx(compute, rel=1e-9)
    assert exact.rms_log_error == pytest.approx(0.0, abs=1e-6)
    noisy = fit.fit_roofline(synthetic(hbm, compute, noise=0.05))
    assert noisy.hbm == pytest.approx(hbm, rel=0.01) and noisy.compute == pytest.approx(compute, rel=0.01)
    assert noisy.memory_bound > 100 and noisy.compute_bound > 100


def test_fit_disagrees_with_the_shipped_factors_when_the_measurements_do() -> None:
    measured = fit.fit_roofline(synthetic(0.7, 0.65, noise=0.02))
    assert measured.hbm is not None and measured.compute is not None
    assert measured.hbm == pytest.approx(0.7, rel=0.01)
    assert abs(measured.hbm - VLLM.hbm) > 0.2 and abs(measured.compute - VLLM.compute) > 0.15


def test_fit_leaves_a_factor_no_point_is_bound_by_unidentified() -> None:
    decode_only = [s for s in synthetic(0.8, 0.6, noise=0.0) if s.flops / s.model_bytes < 2.0]  # M <= 1 per byte
    assert decode_only
    got = fit.fit_roofline(decode_only)
    assert got.hbm == pytest.approx(0.8) and got.compute is None and got.compute_bound == 0
    code = fit.snippet(got, product=H100, device="test", shipped=VLLM, provenance="test", shapes="decode shapes")
    namespace: dict[str, object] = {"Efficiency": Efficiency, "VLLM": VLLM}
    exec(code, namespace)
    assert namespace["KERNELS_H100"].compute == VLLM.compute  # type: ignore[attr-defined]


def test_fit_is_the_global_minimum() -> None:
    """On scattered data no (hbm, compute) on a fine grid does better than the closed-form optimum."""
    rng = random.Random(3)
    samples = [
        fit.Sample(rng.uniform(1e6, 1e9), rng.uniform(1e8, 1e13), rng.uniform(1e-5, 1e-2), 3.35e12, 989e12)
        for _ in range(60)
    ]
    got = fit.fit_roofline(samples, min_points=1)
    assert got.hbm is not None and got.compute is not None

    def loss(h: float, c: float) -> float:
        return sum(math.log(max(s.memory_seconds / h, s.compute_seconds / c) / s.seconds) ** 2 for s in samples)

    best = loss(got.hbm, got.compute)
    assert got.rms_log_error == pytest.approx(math.sqrt(best / len(samples)))
    grid = [math.exp(x / 20) for x in range(-260, 40)]  # 2e-6 .. 7, 5 % steps
    coarse = min(itertools.product(grid[::4], grid[::4]), key=lambda hc: loss(*hc))
    near = (
        [g for g in grid if abs(math.log(g / coarse[0])) < 0.5],
        [g for g in grid if abs(math.log(g / coarse[1])) < 0.5],
    )
    assert best <= min(loss(h, c) for h, c in itertools.product(*near)) + 1e-9


# --- the kernels --------------------------------------------------------------------------------------------------


def attention_by_hand(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Per sequence, per query head: softmax(q·k / √d) v over its KV head."""
    batch, kv_heads, group, dim = q.shape
    out = np.zeros_like(q)
    for b, h, g in itertools.product(range(batch), range(kv_heads), range(group)):
        scores = k[b, h] @ q[b, h, g] / math.sqrt(dim)
        weights = np.exp(scores - scores.max())
        out[b, h, g] = (weights / weights.sum()) @ v[b, h]
    return out


def test_paged_gather_equals_the_contiguous_attention() -> None:
    backend = numpy_backend()
    rng = random.Random(5)
    batch, kv_heads, group, dim, context, block = 3, 2, 4, 16, 37, 16  # 37: a partial last block
    k = backend.randn((batch, kv_heads, context, dim))
    v = backend.randn((batch, kv_heads, context, dim))
    q = backend.randn((batch, kv_heads, group, dim))
    num_blocks, tables = kernels.block_tables(batch, context, block, 3, rng)
    assert num_blocks == 3 * batch * 3
    named = [blk for table in tables for seq in table for blk in seq]
    assert sorted(named) == list(range(num_blocks)), "every block belongs to exactly one sequence of one copy"
    assert named != sorted(named), "blocks are scattered, not laid out in order"
    for table in tables:
        k_cache = backend.randn((num_blocks, block, kv_heads, dim))  # noise everywhere the table does not point
        v_cache = backend.randn((num_blocks, block, kv_heads, dim))
        kernels.scatter_to_cache(k_cache, table, k)
        kernels.scatter_to_cache(v_cache, table, v)
        index = backend.index(table)
        np.testing.assert_array_equal(kernels.gather_kv(k_cache, index, context), k)
        paged = kernels.paged_decode_attention(backend, q, k_cache, v_cache, index, context)
        contiguous = kernels.decode_attention(backend, q, k, v)
        np.testing.assert_allclose(paged, contiguous, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(contiguous, attention_by_hand(q, k, v), rtol=1e-4, atol=1e-6)


def test_routing_sends_each_token_to_top_k_distinct_experts() -> None:
    routing = kernels.route(tokens=5, experts=16, top_k=4, rng=random.Random(2))
    assert routing.tokens == 5 and len(routing.order) == 20
    for pairs in routing.choices:
        assert len({e for e, _ in pairs}) == 4
        assert sum(w for _, w in pairs) == pytest.approx(1.0)
    assert routing.offsets[0] == 0 and routing.offsets[-1] == 20
    for e in range(16):
        run = routing.order[routing.offsets[e] : routing.offsets[e + 1]]
        assert sorted(run) == [t for t, pairs in enumerate(routing.choices) if e in {x for x, _ in pairs}]
    assert len(routing.active) < 16, "5 tokens × 4 of 16 experts leave some experts without tokens"


@pytest.mark.parametrize(("dtype", "rtol"), [("bf16", 1e-5), ("fp8", 0.15)])
def test_grouped_gemm_equals_the_dense_per_expert_loop(dtype: str, rtol: float) -> None:
    backend = numpy_backend()
    experts, top_k, hidden, inter, tokens = 8, 2, 32, 48, 11
    w13 = backend.randn((experts, 2 * inter, hidden), 0.2)
    w2 = backend.randn((experts, hidden, inter), 0.2)
    x = backend.randn((tokens, hidden))
    routing = kernels.route(tokens, experts, top_k, random.Random(4))
    grouped = kernels.grouped_moe(
        backend,
        x,
        [backend.prepare(w13[e], dtype) for e in range(experts)],
        [backend.prepare(w2[e], dtype) for e in range(experts)],
        kernels.to_device(backend, routing),
    )
    dense = np.zeros_like(x)
    for e in range(experts):  # every expert on every token, in float64, then the router's weights
        h = x.astype(np.float64) @ w13[e].T
        y = (h[:, :inter] / (1 + np.exp(-h[:, :inter])) * h[:, inter:]) @ w2[e].T
        mask = np.array([sum(w for x_e, w in pairs if x_e == e) for pairs in routing.choices])
        dense += mask[:, None] * y
    scale = np.abs(dense).max()
    assert np.abs(grouped - dense).max() <= rtol * scale
    if dtype == "fp8":
        assert np.abs(grouped - dense).max() > 1e-4 * scale, "the FP8 path really quantised"


def test_self_checks_pass_on_the_numpy_backend() -> None:
    checks = kernels.self_check(numpy_backend(), ["bf16", "fp8"])
    assert [c.name for c in checks] == [
        "paged attention = contiguous",
        "grouped MoE = dense per-expert loop (bf16)",
        "grouped MoE = dense per-expert loop (fp8)",
        "fp8 GEMM ≈ bf16 GEMM",
    ]
    assert all(c.ok for c in checks), checks


def test_fp8_is_skipped_with_a_reason_where_unsupported(tmp_path: Path) -> None:
    out = tmp_path / "bf16.json"
    printed = io.StringIO()
    backend = NumpyBackend(seed=0)  # no FP8 emulation: like a GPU without FP8 tensor cores
    rc = calibrate.main(["--backend", "numpy", "--kinds", "decode", "--out", str(out)], backend=backend, out=printed)
    assert rc == 0
    doc = strict_json(out)
    assert set(doc["unsupported"]) == {"fp8"} and "skipping fp8" in printed.getvalue()
    assert {m["dtype"] for m in doc["measurements"]} == {"bf16"}


# --- timing and the budget ---------------------------------------------------------------------------------------


def test_timing_loop_calls_warmup_probe_then_trials_of_inner_calls() -> None:
    calls: list[int] = []
    timing = shapes.Timing(warmup=2, probe=3, trials=4, target_s=1e-3, max_inner=7)
    measured = numpy_backend().time(calls.append, timing)
    assert 1 <= measured.inner <= 7 and measured.trials == 4 and not measured.graph
    assert len(calls) == 2 + 3 + 4 * measured.inner
    assert calls[5 : 5 + measured.inner] == list(range(measured.inner)), "each call of a run picks its own copy"
    assert 0 < measured.best <= measured.seconds
    assert inner_calls(1e-4, timing) == 7 and inner_calls(4e-4, timing) == 3 and inner_calls(1.0, timing) == 1


def test_budget_trims_the_densest_grids_first() -> None:
    cost = shapes.torch_cost(H100.hbm_tb_per_s, H100.bf16_tflops, H100.fp8_tflops, quick=False)
    planned = shapes.plan(shapes.FULL)
    full = shapes.estimate(planned, cost)
    core = [s for s in planned if s.priority == 0]
    budget = shapes.estimate(core, cost) + 0.25 * (full - shapes.estimate(core, cost))
    kept, dropped = shapes.trim_to_budget(planned, budget, cost)
    assert dropped and kept and len(kept) + len(dropped) == len(planned)
    assert shapes.estimate(kept, cost) <= budget
    assert max(s.priority for s in kept) <= min(s.priority for s in dropped)
    assert set(core) <= set(kept), "everything the fit needs is kept"
    assert {s.kind for s in kept} == set(shapes.KINDS)
    assert shapes.trim_to_budget(planned, 0.0, cost) == ([], planned)


class StepClock:
    """A clock that advances a fixed step each time it is read: the run's pace, without real time."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_the_run_stops_at_its_deadline() -> None:
    backend = numpy_backend()
    plan = shapes.plan(shapes.TINY)
    cost = shapes.numpy_cost()
    log: list[str] = []
    run = calibrate.measure(
        backend, plan, H100, timing=shapes.TIMING_TINY, cost=cost, deadline=20.0, clock=StepClock(1.0), log=log.append
    )
    measured = [m.label for m in run.measurements]
    assert 5 <= len(measured) < 10, "the clock reads twice a shape: about ten fit in twenty seconds"
    assert measured == [s.label for s in plan[: len(measured)]], "a prefix of the priority order"
    assert [s.label for s in run.skipped] == [s.label for s in plan[len(measured) :]]
    assert {s.reason for s in run.skipped} == {"time budget"}
    assert any(line.startswith("time budget:") for line in log)


def test_main_trims_the_plan_to_the_budget_and_records_what_it_left(tmp_path: Path) -> None:
    out = tmp_path / "trimmed.json"
    cost = shapes.numpy_cost()
    planned = shapes.plan(shapes.TINY)
    # room for about a third of the plan's estimate once the reserve is set aside
    budget = calibrate.RESERVE_S + shapes.estimate(planned, cost) / 3
    clock = StepClock(1e-6)
    rc = calibrate.main(
        ["--backend", "numpy", "--budget-s", f"{budget}", "--out", str(out)],
        backend=numpy_backend(),
        clock=clock,
        out=io.StringIO(),
    )
    assert rc == 0
    doc = strict_json(out)
    trimmed = doc["budget"]["trimmed_before_start"]
    assert 0 < trimmed < len(planned) and doc["budget"]["planned_shapes"] == len(planned)
    assert len(doc["measurements"]) + len(doc["skipped"]) == len(planned)
    assert sum(1 for s in doc["skipped"] if s["reason"] == "time budget (planned)") == trimmed
    assert max(m["priority"] for m in doc["measurements"]) <= min(s["priority"] for s in doc["skipped"])


def test_quick_keeps_only_priority_zero() -> None:
    quick = shapes.plan(shapes.FULL, max_priority=0)
    assert quick and all(s.priority == 0 for s in quick)
    assert {s.kind for s in quick} == set(shapes.KINDS)
    assert len(quick) < len(shapes.plan(shapes.FULL)) / 4


# --- shapes and the device ----------------------------------------------------------------------------------------


def test_shapes_are_the_models_tensor_parallel_shards() -> None:
    layers = dict((name, (n, k)) for name, n, k in shapes.LLAMA_70B.linear_layers(8))
    assert layers == {
        "qkv": ((8 + 2 * 1) * 128, 8192),
        "o": (8192, 1024),
        "gate_up": (2 * 3584, 8192),
        "down": (8192, 3584),
        "lm_head": (16032, 8192),
    }
    gemms = [s for s in shapes.plan(shapes.FULL) if isinstance(s, shapes.GemmShape)]
    assert {(s.model, s.tp) for s in gemms} == {
        (m, tp) for m in ("llama-3.1-8b", "llama-3.1-70b") for tp in (1, 2, 4, 8)
    }
    assert {s.m for s in gemms if s.kind == "decode"} == {1, 2, 4, 8, 16, 32, 64, 128, 256}
    assert {s.m for s in gemms if s.kind == "prefill"} == {512, 1024, 2048, 4096, 8192}
    # torch._scaled_mm wants K and N in multiples of 16; so do the MoE experts
    assert all(s.n % 16 == 0 and s.k % 16 == 0 for s in gemms)
    assert all(m.hidden % 16 == 0 and m.intermediate % 16 == 0 for m in shapes.FULL.moe_models)


@pytest.mark.parametrize(
    ("device", "product"),
    [
        ("NVIDIA H100 80GB HBM3", "NVIDIA-H100-80GB-HBM3"),
        ("NVIDIA H200", "NVIDIA-H200"),
        ("NVIDIA A100-SXM4-80GB", "NVIDIA-A100-SXM4-80GB"),
        ("NVIDIA L40S", "NVIDIA-L40S"),
        ("NVIDIA B200", "NVIDIA-B200"),
    ],
)
def test_device_names_map_to_products(device: str, product: str) -> None:
    assert calibrate.identify(device, None).product == product


def test_an_unknown_device_needs_product_and_the_override_wins() -> None:
    with pytest.raises(calibrate.UnknownDeviceError, match="--product"):
        calibrate.identify("NVIDIA H100 NVL", None)  # other peaks than the SXM H100: never guessed
    assert calibrate.identify("NVIDIA H100 NVL", "H200").product == "NVIDIA-H200"
    assert calibrate.identify("NVIDIA H100 PCIe", None).product == "NVIDIA-H100-PCIe"  # in the table: its own peaks


def test_the_gpu_side_needs_neither_numpy_nor_the_rest_of_rightsizer() -> None:
    """On the GPU machine only torch is installed: the plan, the runner and the fit must import without numpy,
    and only the two facts modules of rightsizer may be used (the others are being moved)."""
    code = (
        "import sys; sys.modules['numpy'] = None\n"
        "from bench.gpu import calibrate\n"
        "sys.exit(calibrate.main(['--dry-run', '--product', 'H200']))\n"
    )
    env_path = f"{REPO}:{REPO / 'operator'}"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": env_path}, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "total" in done.stdout and "fp8" in done.stdout
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from bench.gpu import calibrate, kernels, backends, fit; "
            "print(sorted(m for m in sys.modules if m.startswith(('rightsizer', 'torch', 'numpy'))))",
        ],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path},
        check=True,
    )
    assert loaded.stdout.strip() == str(
        sorted(["rightsizer", "rightsizer.facts", "rightsizer.facts.gpus", "rightsizer.facts.perf_calibration"])
    )
