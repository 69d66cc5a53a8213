"""Vision encoders of multimodal checkpoints: the parameters vLLM loads beside the language model.

Each family follows vLLM's model file for the encoder and its projector (read at v0.11.0 and v0.19.0, where the
modules are the same); the counts are pinned in tests/unit/test_catalog.py and tests/unit/test_vision.py against
the published totals (which include the encoder)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rightsizer.errors import ModelConfigError
from rightsizer.model import limits
from rightsizer.model.limits import FIELD
from rightsizer.model.readers import int_of

WHERE = f"{FIELD}.vision_config"
PREPROCESSOR = f"{FIELD}.preprocessor_config"
MAX_PIXELS = 1 << 31  # far above any published max_pixels (Qwen2.5-VL 12,845,056; Qwen3-VL 16,777,216)

# preprocessor_config.json defaults when the config does not carry it: the published checkpoints' own values, which
# are also the largest images their processors accept, so the profiling peak is not understated.
QWEN2_5_VL_MAX_PIXELS = 12_845_056  # Qwen/Qwen2.5-VL-*-Instruct preprocessor_config.json "max_pixels"
QWEN3_VL_MAX_PIXELS = 16_777_216  # Qwen/Qwen3-VL-*-Instruct preprocessor_config.json size.longest_edge
LLAMA4_MAX_TILES = 16  # meta-llama/Llama-4-*-Instruct preprocessor_config.json "max_patches"
QWEN2_5_VL_VIDEO_FRAMES = 16  # qwen2_vl.py _MAX_FRAMES_PER_VIDEO at v0.10.2/v0.11.0 (14 at v0.19.0: 16 counts more)
QWEN3_VL_VIDEO_TOKENS_PER_EMBEDDING = 12.5  # qwen3_vl.py get_max_video_tokens: timestamps around each video token


@dataclass(frozen=True)
class EncoderOutputs:
    """What one dummy item of vLLM's encoder profiling run is, per modality the processor serves: the prompt tokens
    it counts against the encoder budget and the embedding rows it leaves in the encoder cache
    (processing info `get_mm_max_tokens_per_item` / `get_image_size_with_most_features` in each model file)."""

    modalities: tuple[str, ...]
    image_tokens: int  # embeddings of the largest image the processor makes
    video_grid_cap: int = 0  # Qwen: temporal patches of the dummy video at most (0: no video modality)
    video_tokens_per_embedding: float = 1.0
    width_factor: int = 1  # rows are width_factor × the text hidden size wide (Qwen3-VL appends deepstack features)
    # Elements of the processor's pixel tensor per embedding row: the dummy item's encoder input, which vLLM keeps on
    # the GPU, in the model dtype, through the whole profiling run (memory.EncoderProfiling.input_bytes).
    input_per_row: int = 0

    def per_item(self, modality: str, max_model_len: int) -> tuple[int, int]:
        """(budget tokens, cached rows) of one dummy item of `modality` at `max_model_len`."""
        if modality != "video":
            return self.image_tokens, self.image_tokens
        # qwen2_vl.py get_num_frames_with_most_features: as many frames as fit max_model_len, one video per prompt,
        # at most the release's frame cap; two frames make one temporal patch.
        grid = max(1, min(self.video_grid_cap, max_model_len // self.image_tokens))
        rows = grid * self.image_tokens
        return int(rows * self.video_tokens_per_embedding), rows


@dataclass(frozen=True)
class VisionFacts:
    """A vision encoder and its projector, as vLLM builds them."""

    family: str  # llama4, siglip (Gemma 3), qwen2_5_vl, qwen3_vl, pixtral (Mistral Small 3.x)
    parameters: int
    outputs: EncoderOutputs
    tp_sharded_in_data_mode: int = 0  # parameters still split over TP under --mm-encoder-tp-mode data


def _positive(source: Mapping[str, Any], key: str, default: int, high: int, base: str) -> int:
    value = source.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= high or value != int(value):
        raise ModelConfigError(f"{base}.{key}", f"must be a whole number from 1 to {high:,}, not {value!r}")
    return int(value)


def _qwen_max_pixels(pre: Mapping[str, Any], default: int) -> int:
    """Qwen2.5-VL keeps `max_pixels` at the top level, Qwen3-VL as size.longest_edge (Qwen2VLImageProcessorFast)."""
    size = pre.get("size")
    if isinstance(size, Mapping) and ("longest_edge" in size or "max_pixels" in size):
        key = "longest_edge" if "longest_edge" in size else "max_pixels"
        return _positive(size, key, default, MAX_PIXELS, f"{PREPROCESSOR}.size")
    return _positive(pre, "max_pixels", default, MAX_PIXELS, PREPROCESSOR)


def _qwen_image_tokens(vc: Mapping[str, Any], max_pixels: int) -> int:
    """qwen2_vl.py _get_vision_info on the largest image: smart_resize rounds each side to a multiple of
    patch × merge within max_pixels, then every merge × merge patches make one embedding."""
    patch = int_of(vc, "patch_size", high=1024, base=WHERE)
    merge = int_of(vc, "spatial_merge_size", default=2, high=16, base=WHERE)
    factor = patch * merge
    side = max(factor, math.isqrt(max_pixels) // factor * factor)
    return (side // patch) ** 2 // (merge * merge)


def _qwen_input_per_row(vc: Mapping[str, Any]) -> int:
    """Qwen2.5-VL / Qwen3-VL pixel_values (and pixel_values_videos) are flattened patches of
    channels × temporal_patch_size × patch² elements, spatial_merge_size² patches per embedding row
    (Qwen2VLImageProcessor; qwen2_5_vl.py / qwen3_vl.py)."""
    patch = int_of(vc, "patch_size", high=1024, base=WHERE)
    temporal = int_of(vc, "temporal_patch_size", default=2, high=16, base=WHERE)
    merge = int_of(vc, "spatial_merge_size", default=2, high=16, base=WHERE)
    channels = int_of(vc, "in_channels", "in_chans", default=3, high=16, base=WHERE)
    return merge * merge * channels * temporal * patch * patch


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
    """The encoder of a multimodal config.json. The image processor's settings come from the config's
    `preprocessor_config` key (preprocessor_config.json; a ConfigMap's key of that name is merged there), else the
    published checkpoints' defaults above."""
    vc = config.get("vision_config")
    if not isinstance(vc, Mapping):
        return None
    pre = config.get("preprocessor_config") or {}
    if not isinstance(pre, Mapping):
        raise ModelConfigError(PREPROCESSOR, "must be the JSON object of preprocessor_config.json")
    vision_type = str(vc.get("model_type", ""))
    model_type = str(config.get("model_type", ""))
    if vision_type == "llama4_vision_model":
        tiles = _positive(pre, "max_patches", LLAMA4_MAX_TILES, 1024, PREPROCESSOR)
        image, patch = (
            int_of(vc, "image_size", high=1 << 16, base=WHERE),
            int_of(vc, "patch_size", high=1024, base=WHERE),
        )
        shuffle = vc.get("pixel_shuffle_ratio", 0.5)
        if isinstance(shuffle, bool) or not isinstance(shuffle, int | float) or not 0 < shuffle <= 1:
            raise ModelConfigError(f"{WHERE}.pixel_shuffle_ratio", f"must be in (0, 1], not {shuffle!r}")
        # mllama4.py: (image_size / patch)^2 patches per tile, pixel-shuffled down by 1/ratio^2; the largest image
        # is max_patches tiles plus the global view.
        per_tile = (image // patch) ** 2 // round(1 / shuffle**2)
        tokens = per_tile * (tiles + 1 if tiles > 1 else 1)
        # pixel_values: one (channels, image_size, image_size) tile per per_tile rows (mllama4.py _parse_and_validate).
        channels = int_of(vc, "num_channels", default=3, high=16, base=WHERE)
        outputs = EncoderOutputs(("image",), tokens, input_per_row=channels * image * image // max(1, per_tile))
        # Llama4MultiModalProjector's linear_1 stays a ColumnParallelLinear in data mode (mllama4.py@v0.19.0:158-173).
        projector = int_of(vc, "vision_output_dim", high=limits.MAX_HIDDEN_SIZE, base=WHERE) * text_hidden
        return VisionFacts("llama4", _llama4(vc, text_hidden), outputs, tp_sharded_in_data_mode=projector)
    if model_type == "gemma3" and vision_type == "siglip_vision_model":
        # gemma3_mm.py get_num_image_tokens: (crops + 1) × mm_tokens_per_image, crops only with pan-and-scan.
        per_image = int_of(config, "mm_tokens_per_image", default=256, high=1 << 16)
        crops = _positive(pre, "pan_and_scan_max_num_crops", 4, 64, PREPROCESSOR) if pre.get("do_pan_and_scan") else 0
        # pixel_values: (crops + 1, channels, image_size, image_size) per image (gemma3_mm.py Gemma3ImagePixelInputs).
        image = int_of(vc, "image_size", high=1 << 16, base=WHERE)
        channels = int_of(vc, "num_channels", default=3, high=16, base=WHERE)
        pixels = channels * image * image // per_image
        outputs = EncoderOutputs(("image",), (crops + 1) * per_image, input_per_row=pixels)
        return VisionFacts("siglip", _siglip(vc, text_hidden), outputs)
    if model_type == "qwen2_5_vl":
        tokens = _qwen_image_tokens(vc, _qwen_max_pixels(pre, QWEN2_5_VL_MAX_PIXELS))
        frames, pixels = QWEN2_5_VL_VIDEO_FRAMES // 2, _qwen_input_per_row(vc)
        outputs = EncoderOutputs(("image", "video"), tokens, video_grid_cap=frames, input_per_row=pixels)
        return VisionFacts("qwen2_5_vl", _qwen_vit(vc, text_hidden, qwen3=False), outputs)
    if model_type in ("qwen3_vl", "qwen3_vl_moe"):
        tokens = _qwen_image_tokens(vc, _qwen_max_pixels(pre, QWEN3_VL_MAX_PIXELS))
        deepstack = vc.get("deepstack_visual_indexes") or []
        outputs = EncoderOutputs(
            ("image", "video"),
            tokens,
            video_grid_cap=1 << 20,  # _MAX_FRAMES_PER_VIDEO 24576 at v0.11.0: max_model_len bounds it first
            video_tokens_per_embedding=QWEN3_VL_VIDEO_TOKENS_PER_EMBEDDING,
            width_factor=1 + (len(deepstack) if isinstance(deepstack, list) else 0),
            input_per_row=_qwen_input_per_row(vc),
        )
        return VisionFacts("qwen3_vl", _qwen_vit(vc, text_hidden, qwen3=True), outputs)
    if model_type == "mistral3" and vision_type == "pixtral":
        # pixtral.py / mistral3.py: image_size / patch patches per side, merged spatial_merge_size^2 to one.
        side = int_of(vc, "image_size", high=1 << 16, base=WHERE) // int_of(vc, "patch_size", high=1024, base=WHERE)
        merge = int_of(config, "spatial_merge_size", default=2, high=16)
        # pixel_values: (channels, image_size, image_size) for the largest image, merge^2 patches per row.
        channels = int_of(vc, "num_channels", default=3, high=16, base=WHERE)
        patch = int_of(vc, "patch_size", high=1024, base=WHERE)
        outputs = EncoderOutputs(("image",), max(1, side // merge) ** 2, input_per_row=channels * (patch * merge) ** 2)
        return VisionFacts("pixtral", _pixtral(vc, config, text_hidden), outputs)
    return None  # other encoders are not counted yet (docs/sizing.md: multimodal)
