"""How each vLLM release treats a multimodal checkpoint's encoder: when a text-only start (every
`--limit-mm-per-prompt` modality at 0) skips building it, and whether the encoder profiling run widens its cached
outputs. Read from the wheels of v0.10.2, v0.11.0 and v0.19.0 (docs/sizing.md §7); releases in between that were
not read keep the reading that counts more memory."""

from __future__ import annotations

from rightsizer.facts.vllm_release import parse_release

DEFAULT_ITEMS_PER_PROMPT = 999  # MultiModalConfig.get_limit_per_prompt's default for a modality left out (V1)

# Encoder family (model.vision.VisionFacts.family) -> the first release whose model file skips the tower when every
# modality it serves is limited to 0: the `get_limit_per_prompt` checks in __init__ of qwen2_5_vl.py, mistral3.py and
# mllama4.py at v0.10.2 (qwen3_vl.py from v0.11.0, which adds the model), and `_mark_tower_model`
# (model_executor/models/interfaces.py) at v0.19.0, which gemma3_mm.py is the first to use for SigLIP (0.12-0.18 not
# read: Gemma 3's tower is counted there, as at v0.11.0).
TOWER_SKIPPED_FROM: dict[str, tuple[int, int]] = {
    "llama4": (0, 10),
    "qwen2_5_vl": (0, 10),
    "pixtral": (0, 10),
    "qwen3_vl": (0, 11),
    "siglip": (0, 19),
}

# v0.11.0's gpu_model_runner.profile_run scatters each dummy item's encoder output into a (encoder_budget, width)
# tensor when it is shorter; v0.10.2 and v0.19.0 cache the outputs as they are. 0.12-0.18 were not read and keep
# the widening (the larger peak).
_WIDENED_FROM, _WIDENED_UNTIL = (0, 11), (0, 19)


# Encoder family -> the first release whose model file supports `--mm-encoder-tp-mode data` (supports_encoder_tp_data
# = True: the encoder's layers become ReplicatedLinear, or disable_tp, on every TP rank, and each rank encodes its
# share of the images). mllama4.py and qwen2_5_vl.py at v0.10.2, qwen3_vl.py from v0.11.0 (its first release), all
# three at v0.19.0; siglip (gemma3_mm.py) and pixtral (mistral3.py, pixtral.py) do not set it in any of the three, and
# vLLM then falls back to "weights" with a warning (ModelConfig.__post_init__, config/model.py@v0.19.0:615-624).
ENCODER_DATA_PARALLEL_FROM: dict[str, tuple[int, int]] = {
    "llama4": (0, 10),
    "qwen2_5_vl": (0, 10),
    "qwen3_vl": (0, 11),
}


def encoder_data_parallel(family: str, version: str) -> bool:
    """Whether `--mm-encoder-tp-mode data` replicates the encoder of `family` on vLLM `version`."""
    first = ENCODER_DATA_PARALLEL_FROM.get(family)
    return first is not None and parse_release(version)[:2] >= first


def skips_tower(family: str, version: str) -> bool:
    """Whether vLLM `version` leaves the encoder of `family` unbuilt when every modality is limited to 0."""
    first = TOWER_SKIPPED_FROM.get(family)
    return first is not None and parse_release(version)[:2] >= first


def widens_encoder_outputs(version: str) -> bool:
    return _WIDENED_FROM <= parse_release(version)[:2] < _WIDENED_UNTIL
