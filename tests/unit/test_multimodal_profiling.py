"""Multimodal checkpoints as vLLM serves them (issue 12 item 5): spec.serving.limitMmPerPrompt passed through as
--limit-mm-per-prompt, text-only starts without the encoder where the release skips building it, and the encoder
profiling run's cached outputs in the activation peak, per release (docs/sizing.md §7; vLLM read at v0.10.2,
v0.11.0 and v0.19.0: v1/worker/gpu_model_runner.py profile_run, v1/core/encoder_cache_manager.py
compute_mm_encoder_budget, MultiModalBudget.get_max_items, each model file's processing info)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from pydantic import ValidationError

from rightsizer.adapters.modelsource import resolve
from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec, ModelSource
from rightsizer.errors import ModelConfigError, SizingError
from rightsizer.facts import catalog
from rightsizer.facts.gpus import lookup
from rightsizer.facts.vllm_profiles import profile_for
from rightsizer.model.config import WeightFormat, parse
from rightsizer.model.memory import EngineSettings, activation_bytes, encoder_profiling, weight_bytes
from rightsizer.model.multimodal import multimodal_serving
from rightsizer.sizing import SizingRequest, plan
from rightsizer.sizing.extra_args import read_extra_args
from rightsizer.sizing.pools import GpuPool
from tests.unit.helpers import facts_of
from tests.unit.test_vision import QWEN2_5_VL_7B

GEMMA = "google/gemma-3-27b-it"
QWEN3_VL = "Qwen/Qwen3-VL-8B-Instruct"
H100 = [GpuPool("h100", lookup("H100"), 8, None, None)]


def settings(**fields: Any) -> EngineSettings:
    base = EngineSettings(1, 1, 1024, 8192, 32768, 0.9, "bfloat16", "auto", WeightFormat.NONE)
    return replace(base, **fields)


def spec(model: str, version: str, limits: dict[str, int] | None = None, **serving: Any) -> LLMDeploymentSpec:
    fields: dict[str, Any] = {"maxModelLen": 32768, "engine": {"version": version}, **serving}
    if limits is not None:
        fields["limitMmPerPrompt"] = limits
    return LLMDeploymentSpec.model_validate(
        {"model": {"name": model}, "serving": fields, "gpu": {"products": ["H100"]}}
    )


# --- the profiling run --------------------------------------------------------------------------------------------


def test_gemma3_images_fill_the_batched_token_budget() -> None:
    """256-token images: max(1, min(8192 // 256, 1024 × min(999, 32768 // 256))) = 32 dummy images."""
    run = encoder_profiling(facts_of(GEMMA), settings())
    assert run is not None
    assert (run.modality, run.tokens_per_item, run.encoder_budget, run.items, run.rows) == ("image", 256, 8192, 32, 256)
    assert run.cached_bytes(2) == 32 * 256 * 5376 * 2


def test_v0_11_widens_each_output_to_the_budget() -> None:
    """gpu_model_runner.py@v0.11.0: each 256-row output is scattered into an (encoder_budget, hidden) tensor."""
    run = encoder_profiling(facts_of(GEMMA), settings(widen_encoder_outputs=True))
    assert run is not None and run.rows == 8192
    assert run.cached_bytes(2) == 32 * 8192 * 5376 * 2  # 2.62 GiB where 0.10.2 and 0.19.0 cache 0.08 GiB


@pytest.mark.parametrize(("version", "widened"), [("0.10.2", False), ("0.11.0", True), ("0.19.0", False)])
def test_the_releases_read(version: str, widened: bool) -> None:
    assert multimodal_serving(spec(GEMMA, version), facts_of(GEMMA)).widen_encoder_outputs is widened


def test_the_cached_outputs_add_to_the_activation_peak() -> None:
    facts, profile = facts_of(GEMMA), profile_for("0.19.0")
    layers = range(facts.num_layers)
    text_only = settings(mm_limits=(("image", 0),))
    grown = activation_bytes(facts, settings(), profile, layers, last=True)
    # the 32 images' cached embeddings and their bf16 pixel values (3 × 896 × 896 each), both alive through the
    # language model's dummy run (tests/unit/test_multimodal_logs.py checks the sum against a logged start)
    cached, pixels = 32 * 256 * 5376 * 2, 32 * 3 * 896 * 896 * 2
    assert grown - activation_bytes(facts, text_only, profile, layers, last=True) == cached + pixels


def test_fewer_sequences_profile_fewer_items() -> None:
    """max_num_seqs × items per prompt caps the dummy batch: 1 sequence × limit 2 images = 2 items."""
    run = encoder_profiling(facts_of(GEMMA), settings(max_num_seqs=1, mm_limits=(("image", 2),)))
    assert run is not None and run.items == 2


def test_qwen_profiles_its_largest_modality_the_video() -> None:
    """qwen2_vl.py: the dummy video holds as many max-size frames as max_model_len allows (two per temporal patch),
    so at 32k it is two 16,384-token images deep and outweighs an image; one item, its budget its own length.
    Qwen3-VL counts 12.5 prompt tokens per video embedding and appends 3 deepstack features to every row."""
    run = encoder_profiling(facts_of(QWEN3_VL), settings())
    assert run is not None
    assert (run.modality, run.tokens_per_item, run.items, run.rows) == ("video", 409_600, 1, 32_768)
    assert run.width == 4 * 4096
    images_only = encoder_profiling(facts_of(QWEN3_VL), settings(mm_limits=(("video", 0),)))
    assert images_only is not None and (images_only.modality, images_only.rows) == ("image", 16_384)


def test_a_text_model_profiles_no_encoder() -> None:
    assert encoder_profiling(facts_of("meta-llama/Llama-3.1-8B-Instruct"), settings()) is None


# --- the image processor --------------------------------------------------------------------------------------------


def test_max_pixels_is_read_from_the_preprocessor_config() -> None:
    """smart_resize within max_pixels: Qwen2.5-VL's default 12,845,056 gives 3584² px = 16,384 tokens; a
    preprocessor_config.json of max_pixels 1,003,520 (1280 × 28 × 28) gives 980² px = 35² merged patches."""
    assert parse(QWEN2_5_VL_7B).vision.outputs.image_tokens == 16_384  # type: ignore[union-attr]
    smaller = parse({**QWEN2_5_VL_7B, "preprocessor_config": {"max_pixels": 1_003_520}})
    assert smaller.vision is not None and smaller.vision.outputs.image_tokens == 35 * 35


def test_qwen3_vl_reads_size_longest_edge() -> None:
    config = {**facts_config(QWEN3_VL), "preprocessor_config": {"size": {"longest_edge": 1 << 20}}}
    facts = parse(config)
    assert facts.vision is not None and facts.vision.outputs.image_tokens == 1024  # 1024² px / 16² / 2²


@pytest.mark.parametrize("bad", [0, -5, "lots", 1.5, True, 1 << 40])
def test_a_bad_max_pixels_is_refused_naming_the_key(bad: object) -> None:
    with pytest.raises(ModelConfigError) as refused:
        parse({**QWEN2_5_VL_7B, "preprocessor_config": {"max_pixels": bad}})
    assert refused.value.field == "spec.model.config.preprocessor_config.max_pixels"


def facts_config(model: str) -> dict[str, Any]:
    config = catalog.lookup(model)
    assert config is not None
    return dict(config)


# --- text-only ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "version", "loaded"),
    [
        (GEMMA, "0.10.2", True),  # gemma3_mm.py builds SigLIP whatever the limits
        (GEMMA, "0.11.0", True),
        (GEMMA, "0.19.0", False),  # _mark_tower_model
        (QWEN3_VL, "0.11.0", False),  # get_limit_per_prompt checks in Qwen3VLForConditionalGeneration.__init__
        (QWEN3_VL, "0.19.0", False),
    ],
)
def test_text_only_skips_the_encoder_where_the_release_does(model: str, version: str, loaded: bool) -> None:
    facts = facts_of(model)
    serving = multimodal_serving(spec(model, version, {"image": 0, "video": 0}), facts)
    assert serving.text_only and serving.encoder_loaded is loaded
    layers = range(facts.num_layers)
    full = weight_bytes(facts, settings(), 0, layers)
    sized = weight_bytes(facts, settings(encoder_loaded=serving.encoder_loaded), 0, layers)
    assert facts.vision is not None
    assert full - sized == (0 if loaded else facts.vision.parameters * 2)


def test_a_modality_left_out_keeps_the_encoder() -> None:
    """vLLM's default for a modality not named is 999: Qwen3-VL with only images at 0 still serves video."""
    serving = multimodal_serving(spec(QWEN3_VL, "0.19.0", {"image": 0}), facts_of(QWEN3_VL))
    assert not serving.text_only and serving.encoder_loaded


def test_the_plan_passes_the_limits_and_says_why() -> None:
    planned = plan(SizingRequest(spec(GEMMA, "0.19.0", {"image": 0}), facts_of(GEMMA), H100), GEMMA)
    at = planned.vllm_args.index("--limit-mm-per-prompt")
    assert planned.vllm_args[at + 1] == '{"image":0}'
    assert any("text-only" in r and "not loaded" in r for r in planned.reasons)
    default = plan(SizingRequest(spec(GEMMA, "0.19.0"), facts_of(GEMMA), H100), GEMMA)
    assert "--limit-mm-per-prompt" not in default.vllm_args
    assert any("32 dummy image items of 256 tokens" in r for r in default.reasons)
    assert planned.kv_cache_tokens > default.kv_cache_tokens
    assert planned.memory.weights_gib_per_gpu < default.memory.weights_gib_per_gpu


# --- the field -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("limits", [{"image": -1}, {"image": 5000}, {"pointcloud": 1}, {"image": "many"}])
def test_limits_are_bounded(limits: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        spec(GEMMA, "0.19.0", limits)


@pytest.mark.parametrize(
    ("version", "args"),
    [
        ("0.19.0", ["--limit-mm-per-prompt", '{"image":0}']),
        ("0.19.0", ['--limit-mm-per-prompt={"image":0}']),
        ("0.19.0", ["--limit_mm_per_prompt", "{}"]),
        ("0.19.0", ["--limit-mm-per-prompt.image", "0"]),
        ("0.19.0", ["--language-model-only"]),
        ("0.10.2", ["--limit-mm-per-prompt", '{"image":0}']),
    ],
)
def test_extra_args_refuse_the_flag_now_that_it_is_a_field(version: str, args: list[str]) -> None:
    with pytest.raises(SizingError) as refused:
        read_extra_args(version, ["--enforce-eager", *args])
    assert refused.value.field == "spec.serving.engine.extraArgs[1]"
    assert "spec.serving.limitMmPerPrompt" in refused.value.fix


def test_a_config_maps_preprocessor_config_json_is_read() -> None:
    """The ConfigMap key preprocessor_config.json beside config.json sizes the images; without it, the defaults."""
    keys = {"config.json": json.dumps(QWEN2_5_VL_7B), "preprocessor_config.json": json.dumps({"max_pixels": 1_003_520})}

    def read(name: str, key: str) -> str:
        if key not in keys:
            raise ModelConfigError("spec.model.configMapRef.key", f"ConfigMap {name} has no key {key!r}")
        return keys[key]

    source = ModelSource.model_validate({"name": "acme/vl", "configMapRef": {"name": "vl"}})
    vision = resolve(source, read_config_map=read).facts.vision
    assert vision is not None and vision.outputs.image_tokens == 35 * 35
    del keys["preprocessor_config.json"]
    vision = resolve(source, read_config_map=read).facts.vision
    assert vision is not None and vision.outputs.image_tokens == 16_384


# --- --mm-encoder-tp-mode data (a pass-through in extraArgs that the weights follow) ---------------------------------

SCOUT = "meta-llama/Llama-4-Scout-17B-16E-Instruct"
DATA_MODE = ["--mm-encoder-tp-mode", "data"]


def test_data_mode_replicates_the_encoder_on_every_rank_where_vllm_supports_it() -> None:
    """mllama4.py sets supports_encoder_tp_data (v0.10.2 on): the vision layers become replicated, the projector's
    linear_1 stays column-parallel; at TP 4 each GPU holds 3/4 of the rest of the encoder more."""
    facts = facts_of(SCOUT)
    vision = facts.vision
    assert vision is not None
    serving = multimodal_serving(spec(SCOUT, "0.19.0", engine={"version": "0.19.0", "extraArgs": DATA_MODE}), facts)
    assert serving.encoder_data_parallel
    layers = range(facts.num_layers)
    sharded = weight_bytes(facts, settings(tensor_parallel_size=4), 0, layers)
    data = weight_bytes(facts, settings(tensor_parallel_size=4, encoder_data_parallel=True), 0, layers)
    projector = 4096 * 5120  # vision_output_dim x text hidden_size
    assert vision.tp_sharded_in_data_mode == projector
    assert data - sharded == pytest.approx((vision.parameters - projector) * 3 / 4 * 2)


@pytest.mark.parametrize(
    ("model", "version", "supported"),
    [
        (SCOUT, "0.10.2", True),
        ("Qwen/Qwen3-VL-8B-Instruct", "0.11.0", True),
        ("Qwen/Qwen3-VL-8B-Instruct", "0.19.0", True),
        (GEMMA, "0.19.0", False),  # gemma3_mm.py does not support it: vLLM falls back to "weights"
    ],
)
def test_data_mode_follows_the_releases_model_files(model: str, version: str, supported: bool) -> None:
    validated = spec(model, version, engine={"version": version, "extraArgs": DATA_MODE})
    assert multimodal_serving(validated, facts_of(model)).encoder_data_parallel is supported


def test_the_plan_passes_data_mode_through_and_counts_the_replicated_encoder() -> None:
    pools = [GpuPool("h100", lookup("H100"), 8, None, None)]

    def planned(extra: list[str]) -> Any:
        validated = LLMDeploymentSpec.model_validate(
            {
                "model": {"name": SCOUT},
                "serving": {"maxModelLen": 8192, "engine": {"version": "0.19.0", "extraArgs": extra}},
                "gpu": {"tensorParallelSize": 4},
            }
        )
        return plan(SizingRequest(validated, facts_of(SCOUT), pools), SCOUT)

    plain, data = planned([]), planned(["--mm-encoder-tp-mode=data"])
    assert "--mm-encoder-tp-mode=data" in data.vllm_args
    assert data.memory.weights_gib_per_gpu > plain.memory.weights_gib_per_gpu + 0.3
    assert any("every GPU holds the whole llama4 encoder" in r for r in data.reasons)


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--mm-encoder-tp", "data"], "sets how the vision encoder is sharded"),
        (["--mm-encoder-tp-mode", "both"], "vLLM accepts only weights or data"),
        (["--mm_encoder_tp_mode=data"], "sets how the vision encoder is sharded"),
    ],
)
def test_data_mode_is_read_in_its_full_spelling_only(args: list[str], problem: str) -> None:
    with pytest.raises(SizingError) as refused:
        read_extra_args("0.19.0", args)
    assert refused.value.field == "spec.serving.engine.extraArgs[0]"
    assert problem in refused.value.problem
