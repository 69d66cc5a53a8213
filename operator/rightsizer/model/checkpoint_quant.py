"""quantization_config -> CheckpointQuantization: the storage vLLM allocates for a pre-quantized checkpoint.

Read exactly as vLLM's quantization configs read them (vllm/model_executor/layers/quantization/: gptq.py,
gptq_marlin.py, awq.py, fp8.py, mxfp4.py, modelopt.py, compressed_tensors/), and refused by name where vLLM cannot
serve the checkpoint or rightsizer cannot size it exactly. NVIDIA ModelOpt checkpoints that keep their settings in
hf_quant_config.json are merged into quantization_config first (merge_hf_quant_config), as vLLM's get_config does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rightsizer.api.v1alpha1.sizingpolicy import WeightFormat
from rightsizer.errors import ModelConfigError
from rightsizer.model.limits import FIELD
from rightsizer.model.readers import bool_of, int_of, short

QFIELD = f"{FIELD}.quantization_config"


@dataclass(frozen=True)
class CheckpointQuantization:
    """What the checkpoint's quantization_config says, down to the tensors vLLM allocates for each linear layer."""

    method: str  # vLLM's name: fp8, compressed-tensors, gptq, awq, mxfp4, modelopt, ...
    format: WeightFormat
    group_size: int | None  # inputs sharing one scale; None: one scale per output channel, tensor or block
    ignored_modules: tuple[str, ...]  # modules left unquantized, e.g. lm_head
    weight_bits: int  # stored bits per value: 4 (int4, fp4) or 8 (int8, fp8)
    zero_points: bool = False  # asymmetric: a packed zero point beside every scale
    act_order: bool = False  # GPTQ desc_act: an int32 g_idx per input row
    block: tuple[int, int] | None = None  # fp8 block quantization: one fp32 scale per (out, in) block
    per_channel: bool = False  # one scale per output channel (GPTQ group_size -1, compressed-tensors "channel")
    scale_bytes: int = 2  # bytes of one scale (fp16/bf16; fp32 for fp8 block and channel scales; fp8 for NVFP4)
    experts_only: bool = False  # MXFP4 (gpt-oss): only the MoE experts are quantized

    @property
    def min_bytes_per_param(self) -> float:
        return self.weight_bits / 8

    def bytes_per_param(self, count: int, outputs: int, inputs: int) -> float:
        """Bytes per parameter of a group of linear layers with `count` weights, `outputs` output rows and
        `inputs` input columns summed over its layers: packed values + scales + zero points + g_idx."""
        if count <= 0:
            return self.weight_bits / 8
        if self.block is not None:
            scales = count / (self.block[0] * self.block[1])
        elif self.group_size is not None:
            scales = count / self.group_size
        elif self.per_channel:
            scales = outputs
        else:
            scales = 0  # one scale per tensor: a few bytes per layer
        extra = scales * self.scale_bytes
        if self.zero_points:
            extra += scales * self.weight_bits / 8
        if self.act_order:
            extra += 4 * inputs
        return self.weight_bits / 8 + extra / count


def _ignored(qc: Mapping[str, Any], *keys: str) -> tuple[str, ...]:
    for key in keys:
        value = qc.get(key)
        if isinstance(value, list):
            return tuple(str(m)[:300] for m in value if isinstance(m, str))
    return ()


def _group(qc: Mapping[str, Any], key: str = "group_size", default: int = 128) -> tuple[int | None, bool]:
    """(group size, per channel): -1 means one group per output channel (per-channel scales)."""
    value = qc.get(key)
    if value is None:
        return default, False
    if isinstance(value, bool) or not isinstance(value, int) or value == 0 or value < -1 or value > 1 << 20:
        raise ModelConfigError(
            f"{QFIELD}.{key}", f"must be -1 (per channel) or a positive group size, got {short(value)}", "fix it"
        )
    return (None, True) if value == -1 else (value, False)


def _gptq(qc: Mapping[str, Any], method: str, ignored: tuple[str, ...]) -> CheckpointQuantization:
    bits = int_of(qc, "bits", default=4, high=16, base=QFIELD)
    if bits not in (4, 8):
        # vLLM serves 2- and 3-bit GPTQ only through its slow exllama kernel (gptq.py); rightsizer sizes the 4- and
        # 8-bit formats its Marlin kernels serve, rather than label a 3-bit checkpoint as something it is not.
        raise ModelConfigError(
            f"{QFIELD}.bits",
            f"{bits}-bit GPTQ is not sized by rightsizer (4- and 8-bit are)",
            "use a 4- or 8-bit GPTQ checkpoint, or an unquantized one",
        )
    group, per_channel = _group(qc)
    return CheckpointQuantization(
        method=method,
        format=WeightFormat.W4A16_GPTQ if bits == 4 else WeightFormat.W8A8,
        group_size=group,
        ignored_modules=ignored,
        weight_bits=bits,
        zero_points=not bool_of(qc, "sym", True),
        act_order=bool_of(qc, "desc_act", False),
        per_channel=per_channel,
    )


def _awq(qc: Mapping[str, Any], method: str, ignored: tuple[str, ...]) -> CheckpointQuantization:
    bits = int_of(qc, "bits", "w_bit", default=4, high=16, base=QFIELD)
    if bits != 4:
        # vLLM's AWQConfig: "Currently, only 4-bit weight quantization is supported for AWQ".
        raise ModelConfigError(f"{QFIELD}.bits", f"{bits}-bit AWQ is not served by vLLM", "use a 4-bit AWQ checkpoint")
    group, per_channel = _group(qc, "group_size" if "group_size" in qc else "q_group_size")
    return CheckpointQuantization(
        method=method,
        format=WeightFormat.W4A16_AWQ,
        group_size=group,
        ignored_modules=ignored,
        weight_bits=4,
        zero_points=bool_of(qc, "zero_point", True),
        per_channel=per_channel,
    )


def _block(qc: Mapping[str, Any], key: str) -> tuple[int, int] | None:
    value = qc.get(key)
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1 << 16 for v in value)
    ):
        raise ModelConfigError(f"{QFIELD}.{key}", f"must be two positive integers, got {short(value)}", "fix it")
    return value[0], value[1]


def _fp8(qc: Mapping[str, Any], method: str, ignored: tuple[str, ...]) -> CheckpointQuantization:
    block = _block(qc, "weight_block_size")
    return CheckpointQuantization(
        method=method,
        format=WeightFormat.FP8,
        group_size=None,
        ignored_modules=ignored,
        weight_bits=8,
        block=block,
        per_channel=method == "fbgemm_fp8",
        scale_bytes=4,
    )


_MODELOPT_FP8 = ("FP8", "FP8_PER_CHANNEL_PER_TOKEN", "FP8_PB_WO")


def _modelopt(qc: Mapping[str, Any], method: str) -> CheckpointQuantization:
    nested = qc.get("quantization")
    source: Mapping[str, Any] = nested if isinstance(nested, Mapping) else qc
    algo = str(source.get("quant_algo") or qc.get("quant_algo") or "").upper()[:60]
    ignored = _ignored(source, "exclude_modules", "ignore") or _ignored(qc, "ignore", "exclude_modules")
    if algo == "NVFP4":
        group, _ = _group(source, default=16)
        return CheckpointQuantization(
            method=method,
            format=WeightFormat.NVFP4,
            group_size=group or 16,
            ignored_modules=ignored,
            weight_bits=4,
            scale_bytes=1,  # one FP8 (e4m3) scale per 16 values
        )
    if algo in _MODELOPT_FP8:
        block = (128, 128) if algo == "FP8_PB_WO" else None
        return CheckpointQuantization(
            method=method,
            format=WeightFormat.FP8,
            group_size=None,
            ignored_modules=ignored,
            weight_bits=8,
            block=block,
            per_channel=algo == "FP8_PER_CHANNEL_PER_TOKEN",
            scale_bytes=4,
        )
    raise ModelConfigError(
        f"{QFIELD}.quant_algo",
        f"ModelOpt quant_algo {algo or 'missing'!r} is not sized by rightsizer",
        "use an FP8 or NVFP4 ModelOpt checkpoint",
    )


def _compressed_tensors(qc: Mapping[str, Any], method: str) -> CheckpointQuantization:
    groups = qc.get("config_groups")
    schemes: list[Mapping[str, Any]] = []
    if isinstance(groups, Mapping):
        for entry in groups.values():
            if isinstance(entry, Mapping) and isinstance(entry.get("weights"), Mapping):
                schemes.append(entry["weights"])
    if not schemes:
        raise ModelConfigError(
            f"{QFIELD}.config_groups", "no weight scheme in config_groups", "supply the checkpoint's config.json"
        )
    kinds = {(w.get("num_bits"), w.get("type", "int"), w.get("strategy"), w.get("group_size")) for w in schemes}
    if len(kinds) > 1:
        raise ModelConfigError(
            f"{QFIELD}.config_groups",
            f"mixes {len(kinds)} weight schemes, which rightsizer does not size per module",
            "use a checkpoint with one weight scheme",
        )
    weights = schemes[0]
    bits = int_of(weights, "num_bits", default=8, high=16, base=f"{QFIELD}.config_groups")
    kind = str(weights.get("type", "int"))
    strategy = str(weights.get("strategy") or ("group" if weights.get("group_size") else "tensor"))
    ignored = _ignored(qc, "ignore")
    per_channel = strategy == "channel"
    block = _block(weights, "block_structure") if strategy == "block" else None
    group: int | None = None
    if strategy in ("group", "tensor_group"):
        group, per_channel = _group(weights, default=16 if kind == "float" and bits == 4 else 128)
    common: dict[str, Any] = {"method": method, "ignored_modules": ignored, "per_channel": per_channel}
    if bits == 8:
        fmt = WeightFormat.FP8 if kind == "float" else WeightFormat.W8A8
        return CheckpointQuantization(format=fmt, group_size=group, weight_bits=8, block=block, scale_bytes=4, **common)
    if bits == 4 and kind == "float":
        return CheckpointQuantization(
            format=WeightFormat.NVFP4, group_size=group or 16, weight_bits=4, scale_bytes=1, **common
        )
    if bits == 4:
        return CheckpointQuantization(
            format=WeightFormat.W4A16_GPTQ,
            group_size=group,
            weight_bits=4,
            zero_points=not bool_of(weights, "symmetric", True),
            act_order=weights.get("actorder") == "group",  # CompressedTensorsWNA16 then adds weight_g_idx
            **common,
        )
    raise ModelConfigError(
        f"{QFIELD}.config_groups",
        f"compressed-tensors with {bits}-bit {kind} weights is not sized by rightsizer",
        "use an 8-bit (fp8/int8), 4-bit int or NVFP4 checkpoint",
    )


def checkpoint_quantization(cfg: Mapping[str, Any]) -> CheckpointQuantization | None:
    """Read quantization_config (or compressed-tensors' compression_config); None for an unquantized checkpoint."""
    qc = cfg.get("quantization_config")
    if qc is None:
        qc = cfg.get("compression_config")
    if qc is None:
        return None
    if not isinstance(qc, Mapping):
        raise ModelConfigError(QFIELD, f"must be an object, got {short(qc)}", "fix config.json")
    producer = qc.get("producer")
    method = str(qc.get("quant_method", "")).lower()[:60]
    if not method and isinstance(producer, Mapping) and producer.get("name") == "modelopt":
        method = "modelopt"  # hf_quant_config.json as ModelOpt writes it (vLLM sets the method the same way)
    if method in ("fp8", "fbgemm_fp8", "ptpc_fp8"):
        return _fp8(qc, method, _ignored(qc, "ignored_layers", "modules_to_not_convert", "ignore"))
    if method == "mxfp4":
        return CheckpointQuantization(
            method=method,
            format=WeightFormat.MXFP4,
            group_size=32,
            ignored_modules=_ignored(qc, "modules_to_not_convert", "ignore"),
            weight_bits=4,
            scale_bytes=1,  # one E8M0 scale per 32 values
            experts_only=True,
        )
    if method in ("gptq", "gptq_marlin"):
        return _gptq(qc, method, _ignored(qc, "modules_to_not_convert"))
    if method in ("awq", "awq_marlin"):
        return _awq(qc, method, _ignored(qc, "modules_to_not_convert"))
    if method in ("modelopt", "modelopt_fp4"):
        return _modelopt(qc, method)
    if method == "compressed-tensors":
        return _compressed_tensors(qc, method)
    raise ModelConfigError(
        f"{QFIELD}.quant_method",
        f"{method or 'missing'!r} is not supported by rightsizer's memory model",
        "use a checkpoint in fp8, int8 (w8a8), gptq/awq int4, mxfp4 or nvfp4, or an unquantized one",
    )


def merge_hf_quant_config(config: Mapping[str, Any], hf_quant: Mapping[str, Any] | None) -> dict[str, Any]:
    """config.json with ModelOpt's hf_quant_config.json merged in as quantization_config, as vLLM does: its
    get_config (vllm/transformers_utils/config.py) reads hf_quant_config.json when config.json has no
    quantization_config, and ModelOpt's config class accepts the file's nested {"producer", "quantization"} form."""
    merged = dict(config)
    if hf_quant is None or config.get("quantization_config") is not None:
        return merged
    merged["quantization_config"] = dict(hf_quant)
    return merged
