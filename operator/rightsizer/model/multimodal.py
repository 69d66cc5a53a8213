"""How vLLM serves a multimodal checkpoint's encoder under spec.serving.limitMmPerPrompt (vLLM
--limit-mm-per-prompt): which modalities it profiles, whether a text-only start builds the encoder at all, and the
release's way of caching the profiling run's outputs (facts.vllm_multimodal). Sizing and the in-force plan's
performance model read it the same way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.facts.vllm_multimodal import (
    DEFAULT_ITEMS_PER_PROMPT,
    encoder_data_parallel,
    skips_tower,
    widens_encoder_outputs,
)
from rightsizer.model.config import ModelFacts


@dataclass(frozen=True)
class MultimodalServing:
    limits: tuple[tuple[str, int], ...]  # the pins, (modality, items)
    text_only: bool  # a multimodal checkpoint with every modality its processor serves at 0
    encoder_loaded: bool  # False where the release then builds the language model alone
    widen_encoder_outputs: bool
    encoder_data_parallel: bool = False  # --mm-encoder-tp-mode data, where the release's model file supports it


MM_ENCODER_TP_FLAG = "--mm-encoder-tp-mode"


def encoder_tp_data(extra_args: Sequence[str]) -> bool:
    """Whether spec.serving.engine.extraArgs set --mm-encoder-tp-mode data (the last one wins, as in argparse).
    Only the full spelling is read: sizing.extra_args refuses the others for this option, so sizing and the
    in-force performance model (which cannot import sizing) read the same."""
    mode = None
    for i, arg in enumerate(extra_args):
        if arg == MM_ENCODER_TP_FLAG and i + 1 < len(extra_args):
            mode = extra_args[i + 1]
        elif arg.startswith(MM_ENCODER_TP_FLAG + "="):
            mode = arg.partition("=")[2]
    return mode == "data"


def multimodal_serving(spec: LLMDeploymentSpec, facts: ModelFacts) -> MultimodalServing:
    vision = facts.vision
    pins = spec.serving.limit_mm_per_prompt
    limits = pins.pinned() if pins is not None else ()
    text_only = vision is not None and all(
        dict(limits).get(m, DEFAULT_ITEMS_PER_PROMPT) == 0 for m in vision.outputs.modalities
    )
    version = spec.serving.engine.version
    loaded = not (text_only and vision is not None and skips_tower(vision.family, version))
    data = (
        loaded
        and vision is not None
        and encoder_tp_data(spec.serving.engine.extra_args)
        and encoder_data_parallel(vision.family, version)
    )
    return MultimodalServing(limits, text_only, loaded, widens_encoder_outputs(version), data)
