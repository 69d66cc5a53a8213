"""Where the kernels run: PyTorch on a CUDA GPU, or numpy on the CPU.

bench/gpu/kernels.py writes every operation once, against the small set of primitives below plus what numpy
arrays and torch tensors share (slicing, fancy indexing, `@`, `reshape`, `swapaxes`). The torch backend is what
a calibration runs on; the numpy backend runs the same code paths on a CPU with tiny shapes, so the logic is
tested where there is no GPU and no torch (the PyPI torch wheel is multi-GB and is not a project dependency).
Each backend imports its library only when it is created.
"""

from __future__ import annotations

import math
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bench.gpu.shapes import FP8, Timing

Array = Any  # a numpy.ndarray or a torch.Tensor: the kernels use only what both provide
FP8_E4M3_MAX = 448.0  # largest finite float8_e4m3fn


class BackendUnavailableError(RuntimeError):
    pass


@dataclass(frozen=True)
class Measured:
    """The timing of one shape: seconds per call, the median and the best of `trials` runs of `inner` calls."""

    seconds: float
    best: float
    inner: int
    trials: int
    graph: bool  # replayed from a CUDA graph (no launch overhead between calls)
    note: str = ""


class Backend(Protocol):
    name: str
    tolerance: float  # relative error the self-checks allow (bf16 rounding on a GPU, float32 on a CPU)

    def device_name(self) -> str: ...
    def info(self) -> dict[str, object]: ...
    def unsupported(self, dtype: str) -> str | None:
        """None when `dtype` GEMMs run here, else why not."""
        ...

    def element_bytes(self, dtype: str) -> int: ...
    def rotate_bytes(self) -> int:
        """Footprint to spread repeated inputs over, so that the measured calls stream from memory rather than
        hitting a cache (the L2 of a GPU holds a small weight matrix across back-to-back calls)."""
        ...

    def randn(self, shape: tuple[int, ...], scale: float = 1.0) -> Array: ...
    def zeros(self, shape: tuple[int, ...]) -> Array: ...
    def index(self, values: Sequence[int] | Sequence[Sequence[int]]) -> Array: ...
    def column(self, values: Sequence[float]) -> Array:
        """An [n, 1] array in the activation dtype: per-row factors to broadcast."""
        ...

    def prepare(self, x: Array, dtype: str) -> Any:
        """An operand of linear() in `dtype`: FP8 quantises (per tensor, with a scale) once, here."""
        ...

    def linear(self, x: Any, w: Any) -> Array:
        """x @ wᵀ with w [N, K] as torch.nn.Linear stores it; quantises a plain x when w is FP8."""
        ...

    def softmax(self, x: Array) -> Array: ...
    def silu_mul(self, gate: Array, up: Array) -> Array: ...
    def index_add(self, out: Array, index: Array, src: Array) -> None:
        """out[index[j]] += src[j] for every row j (repeated indices accumulate)."""
        ...

    def copy(self, dst: Array, src: Array) -> None: ...
    def max_abs(self, x: Array) -> float: ...
    def time(self, run: Callable[[int], object], timing: Timing) -> Measured:
        """Seconds per call of run(i), i = 0, 1, ...: each i may pick a different copy of the inputs."""
        ...

    def release(self) -> None:
        """Give cached memory back between shapes."""
        ...


def inner_calls(per_call_s: float, timing: Timing) -> int:
    """Calls per timed run: enough to last `target_s`, so that timer resolution and launch jitter vanish."""
    if per_call_s <= 0:
        return timing.max_inner
    return max(1, min(timing.max_inner, math.ceil(timing.target_s / per_call_s)))


# --- numpy ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _NumpyFp8:
    values: Array  # float32 holding values representable in e4m3 (times scale)
    scale: float


class NumpyBackend:
    """float32 on the CPU, timed by the wall clock. `emulate_fp8` rounds FP8 operands to e4m3's 3 mantissa bits
    so that the quantised code paths run (and their error is checked) without FP8 hardware."""

    name = "numpy"
    tolerance = 1e-4

    def __init__(self, *, seed: int = 0, emulate_fp8: bool = False, rotate_bytes: int = 0) -> None:
        try:
            import numpy as np
        except ImportError as exc:  # pragma: no cover - numpy is a dev dependency
            raise BackendUnavailableError("numpy is not installed") from exc
        self.np = np
        self.rng = np.random.default_rng(seed)
        self.emulate_fp8 = emulate_fp8
        self._rotate_bytes = rotate_bytes

    def device_name(self) -> str:
        return "cpu (numpy)"

    def info(self) -> dict[str, object]:
        return {"backend": self.name, "numpy": self.np.__version__, "emulate_fp8": self.emulate_fp8}

    def unsupported(self, dtype: str) -> str | None:
        if dtype == FP8 and not self.emulate_fp8:
            return "numpy has no FP8 (emulate_fp8 rounds to e4m3 in float32, for tests)"
        return None

    def element_bytes(self, dtype: str) -> int:
        return 4  # float32 storage for every dtype: these are the bytes that actually move

    def rotate_bytes(self) -> int:
        return self._rotate_bytes

    def randn(self, shape: tuple[int, ...], scale: float = 1.0) -> Array:
        return self.rng.standard_normal(shape, dtype=self.np.float32) * self.np.float32(scale)

    def zeros(self, shape: tuple[int, ...]) -> Array:
        return self.np.zeros(shape, dtype=self.np.float32)

    def index(self, values: Sequence[int] | Sequence[Sequence[int]]) -> Array:
        return self.np.asarray(values, dtype=self.np.int64)

    def column(self, values: Sequence[float]) -> Array:
        return self.np.asarray(values, dtype=self.np.float32).reshape(-1, 1)

    def _quantise(self, x: Array) -> _NumpyFp8:
        np = self.np
        scale = max(float(np.abs(x).max()), 1e-12) / FP8_E4M3_MAX
        mantissa, exponent = np.frexp(x / scale)  # mantissa in [0.5, 1): 1 implicit + 3 stored bits = 1/16 steps
        values = np.ldexp(np.round(mantissa * 16) / 16, exponent).astype(np.float32)
        return _NumpyFp8(np.clip(values, -FP8_E4M3_MAX, FP8_E4M3_MAX), scale)

    def prepare(self, x: Array, dtype: str) -> Any:
        return self._quantise(x) if dtype == FP8 else x

    def linear(self, x: Any, w: Any) -> Array:
        if isinstance(w, _NumpyFp8):
            xq = x if isinstance(x, _NumpyFp8) else self._quantise(x)
            return (xq.values @ w.values.T) * self.np.float32(xq.scale * w.scale)
        return x @ w.T

    def softmax(self, x: Array) -> Array:
        e = self.np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    def silu_mul(self, gate: Array, up: Array) -> Array:
        return gate / (1.0 + self.np.exp(-gate)) * up

    def index_add(self, out: Array, index: Array, src: Array) -> None:
        self.np.add.at(out, index, src)

    def copy(self, dst: Array, src: Array) -> None:
        self.np.copyto(dst, src)

    def max_abs(self, x: Array) -> float:
        return float(self.np.abs(x).max())

    def time(self, run: Callable[[int], object], timing: Timing) -> Measured:
        for i in range(timing.warmup):
            run(i)
        start = time.perf_counter()
        for i in range(timing.probe):
            run(i)
        inner = inner_calls((time.perf_counter() - start) / max(1, timing.probe), timing)
        runs = []
        for _ in range(timing.trials):
            start = time.perf_counter()
            for i in range(inner):
                run(i)
            # the clock ticks in nanoseconds; a zero would only mean an empty run(), which the kernels never are
            runs.append(max(time.perf_counter() - start, 1e-9) / inner)
        return Measured(statistics.median(runs), min(runs), inner, timing.trials, graph=False)

    def release(self) -> None:
        pass


# --- torch ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TorchFp8:
    values: Array  # float8_e4m3fn, [rows, K] row-major
    scale: Array  # 0-d float32 on the device: torch._scaled_mm's per-tensor scale


class TorchBackend:
    """bf16 tensors on the first CUDA device; FP8 GEMMs through torch._scaled_mm where the GPU has FP8 tensor
    cores (compute capability 8.9+). Timed with CUDA events; calls are captured in a CUDA graph and replayed,
    as vLLM runs its decode steps, so launch gaps do not count against the kernels (eager if capture fails)."""

    name = "torch"
    tolerance = 3e-2  # bf16 keeps 8 bits of mantissa; accumulation orders differ between equivalent paths

    def __init__(self, *, seed: int = 0, graphs: bool = True) -> None:
        try:
            import torch
        except ImportError as exc:
            raise BackendUnavailableError("torch is not installed (pip install torch); or use --backend numpy") from exc
        if not torch.cuda.is_available():
            raise BackendUnavailableError("torch sees no CUDA device")
        self.torch = torch
        self.device = torch.device("cuda", torch.cuda.current_device())
        self.act = torch.bfloat16
        self.graphs = graphs
        torch.manual_seed(seed)
        self._fp8_reason = self._probe_fp8()

    def _probe_fp8(self) -> str | None:
        torch = self.torch
        major, minor = torch.cuda.get_device_capability(self.device)
        if (major, minor) < (8, 9):
            return f"compute capability {major}.{minor} has no FP8 tensor cores"
        if not hasattr(torch, "_scaled_mm") or not hasattr(torch, "float8_e4m3fn"):
            return f"torch {torch.__version__} has no torch._scaled_mm"
        try:
            x = self.randn((32, 64))
            w = self.randn((48, 64))
            self.linear(self.prepare(x, FP8), self.prepare(w, FP8))
            torch.cuda.synchronize()
        except Exception as exc:  # any failure of the private API means: measure bf16 only
            return f"torch._scaled_mm failed: {type(exc).__name__}: {exc}"
        return None

    def device_name(self) -> str:
        return str(self.torch.cuda.get_device_name(self.device))

    def info(self) -> dict[str, object]:
        torch = self.torch
        props = torch.cuda.get_device_properties(self.device)
        info: dict[str, object] = {
            "backend": self.name,
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "capability": list(torch.cuda.get_device_capability(self.device)),
            "multiprocessors": props.multi_processor_count,
            "torch_total_gib": round(props.total_memory / 2**30, 2),
            "l2_bytes": getattr(props, "L2_cache_size", None),
            "cuda_graphs": self.graphs,
            "fp8": self._fp8_reason or "torch._scaled_mm",
        }
        try:  # clocks and power limit say whether the GPU ran as shipped; absent without nvidia-smi
            query = "name,driver_version,clocks.max.sm,clocks.max.mem,power.limit,persistence_mode"
            out = subprocess.run(
                ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
            info["nvidia_smi"] = {"query": query, "result": out.stdout.strip().splitlines()}
        except (OSError, subprocess.SubprocessError) as exc:
            info["nvidia_smi"] = f"unavailable: {type(exc).__name__}"
        return info

    def unsupported(self, dtype: str) -> str | None:
        return self._fp8_reason if dtype == FP8 else None

    def element_bytes(self, dtype: str) -> int:
        return 1 if dtype == FP8 else 2

    def rotate_bytes(self) -> int:
        props = self.torch.cuda.get_device_properties(self.device)
        l2 = getattr(props, "L2_cache_size", 0) or 50 * 2**20  # H100/H200: 50 MiB
        return max(256 * 2**20, 4 * l2)

    def randn(self, shape: tuple[int, ...], scale: float = 1.0) -> Array:
        x = self.torch.randn(shape, device=self.device, dtype=self.act)
        return x.mul_(scale) if scale != 1.0 else x

    def zeros(self, shape: tuple[int, ...]) -> Array:
        return self.torch.zeros(shape, device=self.device, dtype=self.act)

    def index(self, values: Sequence[int] | Sequence[Sequence[int]]) -> Array:
        return self.torch.tensor(values, device=self.device, dtype=self.torch.long)

    def column(self, values: Sequence[float]) -> Array:
        return self.torch.tensor(values, device=self.device, dtype=self.act).reshape(-1, 1)

    def _quantise(self, x: Array) -> _TorchFp8:
        torch = self.torch
        # On the device and without .item(): quantising inside a timed MoE call must not synchronise
        scale = (x.abs().amax().float() / FP8_E4M3_MAX).clamp(min=1e-12)
        values = (x.float() / scale).clamp(-FP8_E4M3_MAX, FP8_E4M3_MAX).to(torch.float8_e4m3fn)
        return _TorchFp8(values, scale)

    def prepare(self, x: Array, dtype: str) -> Any:
        return self._quantise(x) if dtype == FP8 else x

    def linear(self, x: Any, w: Any) -> Array:
        torch = self.torch
        if isinstance(w, _TorchFp8):
            xq = x if isinstance(x, _TorchFp8) else self._quantise(x)
            # _scaled_mm wants the second operand column-major: the transpose of a row-major [N, K] weight
            out = torch._scaled_mm(xq.values, w.values.t(), scale_a=xq.scale, scale_b=w.scale, out_dtype=self.act)
            return out[0] if isinstance(out, tuple) else out  # torch < 2.4 also returned the amax
        return torch.nn.functional.linear(x, w)

    def softmax(self, x: Array) -> Array:
        return self.torch.softmax(x.float(), dim=-1).to(self.act)  # in float32, as attention kernels do

    def silu_mul(self, gate: Array, up: Array) -> Array:
        return self.torch.nn.functional.silu(gate) * up

    def index_add(self, out: Array, index: Array, src: Array) -> None:
        out.index_add_(0, index, src)

    def copy(self, dst: Array, src: Array) -> None:
        dst.copy_(src)

    def max_abs(self, x: Array) -> float:
        return float(x.float().abs().max().item())

    def _elapsed(self, launch: Callable[[], object]) -> float:
        torch = self.torch
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        launch()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end)) / 1e3

    def time(self, run: Callable[[int], object], timing: Timing) -> Measured:
        torch = self.torch
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm up where the graph will be captured (cuBLAS workspaces, autotuning)
            for i in range(timing.warmup):
                run(i)
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        # eager calls include launch overhead, so `inner` errs low: the graph's run is then shorter than target
        per_call = self._elapsed(lambda: [run(i) for i in range(timing.probe)]) / max(1, timing.probe)
        inner = inner_calls(per_call, timing)
        graph, note = None, ""
        if self.graphs:
            try:
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, stream=side):
                    for i in range(inner):
                        run(i)
                graph.replay()
                torch.cuda.synchronize()
            except Exception as exc:  # a capture failure costs the graph, not the measurement
                graph, note = None, f"eager: graph capture failed ({type(exc).__name__}: {exc})"
                torch.cuda.synchronize()
        if graph is not None:
            replay = graph.replay
        else:

            def replay() -> None:
                for i in range(inner):
                    run(i)

        runs = [self._elapsed(replay) / inner for _ in range(timing.trials)]
        return Measured(statistics.median(runs), min(runs), inner, timing.trials, graph=graph is not None, note=note)

    def release(self) -> None:
        self.torch.cuda.empty_cache()


def load(name: str, *, seed: int = 0, graphs: bool = True) -> Backend:
    if name == "numpy":
        return NumpyBackend(seed=seed)
    if name == "torch":
        return TorchBackend(seed=seed, graphs=graphs)
    raise ValueError(f"unknown backend {name!r}: torch or numpy")
