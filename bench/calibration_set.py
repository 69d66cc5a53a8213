"""The vLLM 0.19 calibration set (startup logs on H100-80GB) as rightsizer inputs, shared by the accuracy
benchmark and the calibration tests."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from rightsizer.facts import catalog
from rightsizer.model.config import ModelFacts, WeightFormat, parse
from rightsizer.model.memory import EngineSettings

REPO = Path(__file__).resolve().parents[1]
SHARED_CSV = REPO.parent / "shared" / "data" / "calibration" / "vllm-0.19.0-h100.csv"
LOCAL_CSV = REPO / "tests" / "data" / "vllm-0.19.0-h100.csv"
# The other 29 successful starts of the same sweep (llm-d-incubation/llm-d-planner@a95e9f6,
# accuracy/results/v0.19.0/results_raw.csv): architectures never calibrated on, compared but never fitted to.
HELD_OUT_CSV = REPO / "tests" / "data" / "vllm-0.19.0-h100-heldout.csv"

# Quantized checkpoints in the sweep, by the catalog model that has their architecture.
CHECKPOINTS: dict[str, tuple[str, WeightFormat, int | None]] = {
    "RedHatAI/Llama-3.3-70B-Instruct-fp8-dynamic": ("meta-llama/Llama-3.1-70B-Instruct", WeightFormat.FP8, None),
    "redhatai/Llama-3.3-70B-Instruct-quantized.w8a8": ("meta-llama/Llama-3.1-70B-Instruct", WeightFormat.W8A8, None),
    "RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w4a16": (
        "meta-llama/Llama-3.1-8B-Instruct",
        WeightFormat.W4A16_GPTQ,
        128,
    ),
    "RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w8a8": (
        "meta-llama/Llama-3.1-8B-Instruct",
        WeightFormat.W8A8,
        None,
    ),
    # Held-out rows.
    "RedHatAI/Qwen2.5-7B-Instruct-fp8-dynamic": ("Qwen/Qwen2.5-7B-Instruct", WeightFormat.FP8, None),
    "RedHatAI/Qwen2.5-7B-Instruct-quantized.w8a8": ("Qwen/Qwen2.5-7B-Instruct", WeightFormat.W8A8, None),
}


@dataclass(frozen=True)
class CalibrationPoint:
    row: dict[str, str]
    facts: ModelFacts
    settings: EngineSettings

    @property
    def label(self) -> str:
        r = self.row
        return (
            f"{r['model'].split('/')[-1][:36]} tp{r['tp']} pp{r['pp']} {r['dtype'].removeprefix('torch.')} "
            f"q={r['quantization']} kv={r['kv_cache_dtype']} L={r['max_model_len']}"
        )


def csv_path() -> Path:
    return SHARED_CSV if SHARED_CSV.exists() else LOCAL_CSV


def points(path: Path | None = None) -> list[CalibrationPoint]:
    found, missing = _read(path or csv_path())
    assert not missing, missing
    return found


def held_out_points() -> tuple[list[CalibrationPoint], list[str]]:
    """The held-out starts rightsizer can size offline, and the models it cannot (no catalog config.json)."""
    return _read(HELD_OUT_CSV)


def _read(path: Path) -> tuple[list[CalibrationPoint], list[str]]:
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    result, missing = [], []
    for row in rows:
        model, fmt, group = CHECKPOINTS.get(row["model"], (row["model"], WeightFormat.NONE, None))
        if row["quantization"] == "fp8":  # --quantization fp8: online quantization of a bf16 checkpoint
            fmt = WeightFormat.FP8
        elif row["quantization"] == "mxfp4":  # gpt-oss: the checkpoint's MXFP4 experts
            fmt = WeightFormat.MXFP4
        config = catalog.lookup(model)
        if config is None:
            missing.append(row["model"])
            continue
        settings = EngineSettings(
            tensor_parallel_size=int(row["tp"]),
            pipeline_parallel_size=int(row["pp"]),
            max_num_seqs=1024,  # vLLM 0.19 server defaults on H100, as the sweep ran
            max_num_batched_tokens=8192,
            max_model_len=int(row["max_model_len"]),
            gpu_memory_utilization=float(row["gpu_memory_utilization"]),
            dtype=row["dtype"].removeprefix("torch."),
            kv_cache_dtype=row["kv_cache_dtype"],
            weight_format=fmt,
            group_size=group,
        )
        result.append(CalibrationPoint(row, parse(config), settings))
    return result, missing
