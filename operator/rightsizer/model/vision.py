"""Vision encoders of multimodal checkpoints: the parameters vLLM loads beside the language model.

Each family follows vLLM's model file for the encoder and its projector (read at v0.11.0 and v0.19.0, where the
modules are the same); the counts are pinned in tests/unit/test_catalog.py and tests/unit/test_vision.py against
the published totals (which include the encoder)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rightsizer.errors import ModelConfigError
from rightsizer.model import limits
from rightsizer.model.limits import FIELD
from rightsizer.model.readers import int_of

WHERE = f"{FIELD}.vision_config"


@dataclass(frozen=True)
class VisionFacts:
    """A vision encoder and its projector, as vLLM builds them."""

    family: str  # llama4, siglip (Gemma 3), qwen2_5_vl, qwen3_vl, pixtral (Mistral Small 3.x)
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


def _vit_layers(layers: int, h: int, inter: int, *, gated: bool, bias: bool, norm_params: int) -> int:
    """`layers` pre-norm transformer blocks: q, k, v, o; a plain (fc1, fc2) or gated (gate_up, down) MLP; two norms
    of `norm_params` elements each."""
    attention = 4 * h * h + (4 * h if bias else 0)
    mlp = (3 if gated else 2) * h * inter
    if bias:
        mlp += (2 if gated else 1) * inter + h
    return layers * (attention + mlp + 2 * norm_params)


def _siglip(vc: Mapping[str, Any], text_hidden: int) -> int:
    """Gemma 3: vLLM siglip.py SiglipVisionModel (conv patch embedding with bias, learned positions, biased
    attention and MLP, LayerNorms, post_layernorm; the attention-pooling head only when vision_use_head) and
    gemma3_mm.py Gemma3MultiModalProjector (an RMSNorm over the vision width and a bias-free vision -> text
    projection)."""
    h = int_of(vc, "hidden_size", high=limits.MAX_HIDDEN_SIZE, base=WHERE)
    inter = int_of(vc, "intermediate_size", high=limits.MAX_INTERMEDIATE_SIZE, base=WHERE)
    layers = int_of(vc, "num_hidden_layers", high=limits.MAX_LAYERS, base=WHERE)
    channels = int_of(vc, "num_channels", default=3, high=16, base=WHERE)
    patch = int_of(vc, "patch_size", high=1024, base=WHERE)
    image = int_of(vc, "image_size", high=1 << 16, base=WHERE)
    embeddings = channels * patch * patch * h + h + (image // patch) ** 2 * h
    encoder = _vit_layers(layers, h, inter, gated=False, bias=True, norm_params=2 * h)
    post_layernorm = 2 * h
    head = 0
    if vc.get("vision_use_head", True) is not False:
        # SiglipMultiheadAttentionPoolingHead: probe, torch MultiheadAttention (in/out projections with bias),
        # LayerNorm and an MLP.
        head = h + 4 * h * h + 4 * h + 2 * h + 2 * h * inter + inter + h
    projector = h + h * text_hidden
    return embeddings + encoder + post_layernorm + head + projector


def _qwen_vit(vc: Mapping[str, Any], text_hidden: int, *, qwen3: bool) -> int:
    """Qwen2.5-VL (vLLM qwen2_5_vl.py Qwen2_5_VisionTransformer): bias-free Conv3d patch embedding, RMSNorm blocks
    with biased attention and a biased gated MLP, and a patch merger (RMSNorm, spatial_merge_size^2 x hidden ->
    same -> out_hidden_size, both biased). Qwen3-VL (qwen3_vl.py Qwen3_VisionTransformer): a biased Conv3d, learned
    position embeddings, LayerNorm blocks with a plain biased MLP, the merger with LayerNorm, and one more merger per
    deepstack_visual_indexes entry whose LayerNorm runs after the spatial shuffle."""
    h = int_of(vc, "hidden_size", high=limits.MAX_HIDDEN_SIZE, base=WHERE)
    inter = int_of(vc, "intermediate_size", high=limits.MAX_INTERMEDIATE_SIZE, base=WHERE)
    depth = int_of(vc, "depth", high=limits.MAX_LAYERS, base=WHERE)
    channels = int_of(vc, "in_channels", "in_chans", default=3, high=16, base=WHERE)
    patch = int_of(vc, "patch_size", high=1024, base=WHERE)
    temporal = int_of(vc, "temporal_patch_size", default=2, high=16, base=WHERE)
    merge = int_of(vc, "spatial_merge_size", default=2, high=16, base=WHERE)
    out = int_of(vc, "out_hidden_size", default=text_hidden, high=limits.MAX_HIDDEN_SIZE, base=WHERE)
    merged = h * merge * merge
    merger_mlp = merged * merged + merged + merged * out + out
    conv = channels * temporal * patch * patch * h
    if not qwen3:
        encoder = _vit_layers(depth, h, inter, gated=True, bias=True, norm_params=h)
        return conv + encoder + h + merger_mlp
    positions = int_of(vc, "num_position_embeddings", high=1 << 20, base=WHERE) * h
    encoder = _vit_layers(depth, h, inter, gated=False, bias=True, norm_params=2 * h)
    deepstack = vc.get("deepstack_visual_indexes") or []
    if not isinstance(deepstack, list) or len(deepstack) > depth:
        raise ModelConfigError(
            f"{WHERE}.deepstack_visual_indexes", "must list at most one vision layer per block", "fix config.json"
        )
    mergers = (2 * h + merger_mlp) + len(deepstack) * (2 * merged + merger_mlp)
    return conv + h + positions + encoder + mergers


def _pixtral(vc: Mapping[str, Any], config: Mapping[str, Any], text_hidden: int) -> int:
    """Mistral Small 3.x: vLLM pixtral.py PixtralHFVisionModel (bias-free conv patch embedding, ln_pre RMSNorm,
    RMSNorm blocks with bias-free attention and gated MLP; rotary positions carry no weights) and mistral3.py
    Mistral3MultiModalProjector (RMSNorm, the patch merger's bias-free spatial_merge_size^2 x hidden -> hidden
    layer, then vision -> text -> text linears, biased when multimodal_projector_bias)."""
    h = int_of(vc, "hidden_size", high=limits.MAX_HIDDEN_SIZE, base=WHERE)
    inter = int_of(vc, "intermediate_size", high=limits.MAX_INTERMEDIATE_SIZE, base=WHERE)
    layers = int_of(vc, "num_hidden_layers", high=limits.MAX_LAYERS, base=WHERE)
    channels = int_of(vc, "num_channels", default=3, high=16, base=WHERE)
    patch = int_of(vc, "patch_size", high=1024, base=WHERE)
    merge = int_of(config, "spatial_merge_size", default=2, high=16)
    encoder = channels * patch * patch * h + h + _vit_layers(layers, h, inter, gated=True, bias=False, norm_params=h)
    projector = h + merge * merge * h * h + h * text_hidden + text_hidden * text_hidden
    if config.get("multimodal_projector_bias") is True:
        projector += 2 * text_hidden
    return encoder + projector


def vision_facts(config: Mapping[str, Any], text_hidden: int) -> VisionFacts | None:
    vc = config.get("vision_config")
    if not isinstance(vc, Mapping):
        return None
    vision_type = str(vc.get("model_type", ""))
    model_type = str(config.get("model_type", ""))
    if vision_type == "llama4_vision_model":
        return VisionFacts("llama4", _llama4(vc, text_hidden))
    if model_type == "gemma3" and vision_type == "siglip_vision_model":
        return VisionFacts("siglip", _siglip(vc, text_hidden))
    if model_type == "qwen2_5_vl":
        return VisionFacts("qwen2_5_vl", _qwen_vit(vc, text_hidden, qwen3=False))
    if model_type in ("qwen3_vl", "qwen3_vl_moe"):
        return VisionFacts("qwen3_vl", _qwen_vit(vc, text_hidden, qwen3=True))
    if model_type == "mistral3" and vision_type == "pixtral":
        return VisionFacts("pixtral", _pixtral(vc, config, text_hidden))
    return None  # other encoders are not counted yet (docs/sizing.md: multimodal)
