"""Vision encoders of multimodal checkpoints: the parameters vLLM loads beside the language model.

Each family follows vLLM's model file for the encoder and its projector; the counts are pinned in
tests/unit/test_catalog.py against the published totals (which include the encoder)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rightsizer.model import limits
from rightsizer.model.limits import FIELD
from rightsizer.model.readers import int_of

WHERE = f"{FIELD}.vision_config"


@dataclass(frozen=True)
class VisionFacts:
    """A vision encoder and its projector, as vLLM builds them."""

    family: str  # llama4
    parameters: int


def _llama4(vc: Mapping[str, Any], text_hidden: int) -> int:
    """vLLM mllama4.py: Llama4VisionModel (unfold patch embedding, class and position embeddings, pre/post
    LayerNorms, encoder layers with biased attention and a GELU MLP), the pixel-shuffle adapter MLP and the
    multi-modal projector (vision_output_dim -> text hidden, no bias)."""
    h = int_of(vc, "hidden_size", high=limits.MAX_HIDDEN_SIZE, base=WHERE)
    inter = int_of(vc, "intermediate_size", high=limits.MAX_INTERMEDIATE_SIZE, base=WHERE)
    layers = int_of(vc, "num_hidden_layers", high=limits.MAX_LAYERS, base=WHERE)
    channels = int_of(vc, "num_channels", default=3, high=16, base=WHERE)
    patch = int_of(vc, "patch_size", high=1024, base=WHERE)
    image = int_of(vc, "image_size", high=1 << 16, base=WHERE)
    proj_in = int_of(vc, "projector_input_dim", high=limits.MAX_HIDDEN_SIZE, base=WHERE)
    proj_out = int_of(vc, "projector_output_dim", high=limits.MAX_HIDDEN_SIZE, base=WHERE)
    out_dim = int_of(vc, "vision_output_dim", high=limits.MAX_HIDDEN_SIZE, base=WHERE)
    patch_embedding = channels * patch * patch * h
    positions = ((image // patch) ** 2 + 1) * h
    class_embedding = h
    outer_norms = 2 * 2 * h  # layernorm_pre and layernorm_post, weight and bias
    attention = 4 * (h * h + h)  # q, k, v, o with biases
    mlp = h * inter + inter + inter * h + h  # fc1, fc2 with biases
    layer_norms = 2 * 2 * h
    encoder = layers * (attention + mlp + layer_norms)
    # Llama4VisionPixelShuffleMLP: fc1 (intermediate_size -> projector_input_dim), fc2 (-> projector_output_dim),
    # biased only when multi_modal_projector_bias is set.
    adapter = inter * proj_in + proj_in * proj_out
    if vc.get("multi_modal_projector_bias") is True:
        adapter += proj_in + proj_out
    projector = out_dim * text_hidden
    return patch_embedding + positions + class_embedding + outer_norms + encoder + adapter + projector


def vision_facts(config: Mapping[str, Any], text_hidden: int) -> VisionFacts | None:
    vc = config.get("vision_config")
    if not isinstance(vc, Mapping):
        return None
    if str(vc.get("model_type", "")) == "llama4_vision_model":
        return VisionFacts("llama4", _llama4(vc, text_hidden))
    return None  # other encoders are not counted yet (docs/sizing.md: multimodal)
