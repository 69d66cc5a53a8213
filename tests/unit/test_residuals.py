"""Issue 12 item 7: the two held-out residuals, traced to vLLM's source and fixed by its mechanism.

Both rows are vLLM 0.19.0 starts on one H100 from the llm-d-planner sweep (tests/data/vllm-0.19.0-h100-heldout.csv,
never fitted to): Phi-2, whose parallel blocks have an ungated MLP that was counted as SwiGLU (1.56 GiB of weights
too many, -2.27 % KV tokens), and Qwen3-30B-A3B, whose fused-MoE workspace outlives the profiling forward pass
(0.50 GiB of activation too few, +3.32 % KV tokens).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.calibration_set import CalibrationPoint, held_out_points
from rightsizer.facts.gpus import lookup
from rightsizer.facts.vllm_profiles import GIB, profile_for
from rightsizer.model.config import WeightFormat, parse
from rightsizer.model.memory import EngineSettings, activation_bytes, moe_workspace_bytes, replica_memory
from rightsizer.model.params import inventory, total_parameters
from tests.unit.helpers import facts_of

PHI2 = "microsoft/phi-2"
QWEN3_MOE = "Qwen/Qwen3-30B-A3B"


def _held_out(model: str) -> CalibrationPoint:
    found = [p for p in held_out_points()[0] if p.row["model"] == model]
    assert len(found) == 1, model
    return found[0]


def _settings(**kw: object) -> EngineSettings:
    values: dict[str, object] = dict(
        tensor_parallel_size=1,
        pipeline_parallel_size=1,
        max_num_seqs=1024,
        max_num_batched_tokens=8192,
        max_model_len=8192,
        gpu_memory_utilization=0.95,
        dtype="bfloat16",
        kv_cache_dtype="auto",
        weight_format=WeightFormat.NONE,
    )
    values.update(kw)
    return EngineSettings(**values)  # type: ignore[arg-type]


# --- Phi: parallel blocks, ungated MLP ----------------------------------------------------------------------------


def test_phi_layers_are_built_as_vllm_builds_them() -> None:
    """phi.py@v0.19.0: QKV and dense with biases, fc1/fc2 (no gate), one LayerNorm per layer, a biased LM head."""
    f = facts_of(PHI2)
    modules = {g.module for g in inventory(f) if g.layer in (-1, 0)}
    assert {"mlp.fc1", "mlp.fc2", "mlp.fc1.bias", "mlp.fc2.bias", "lm_head.bias"} <= modules
    assert not any("gate" in m for m in modules)
    assert {"self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.o_proj.bias"} <= modules
    assert f.norms_per_layer == 1 and f.norm_bias
    assert total_parameters(f) == 2_779_683_840  # the Hub's safetensors count for microsoft/phi-2 (docs/models.md)


def test_phi_mlp_width_is_n_inner_else_four_times_hidden() -> None:
    """PhiMLP reads n_inner, else 4 x hidden_size, and never intermediate_size (phi.py@v0.19.0:149-150)."""
    base = {"model_type": "phi", "hidden_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4}
    base |= {"vocab_size": 1024, "intermediate_size": 999}
    assert parse(base).intermediate_size == 1024
    assert parse(base | {"n_inner": 512}).intermediate_size == 512


def test_phi2_held_out_start_is_reproduced() -> None:
    """microsoft/phi-2, fp16, max_model_len 2048: vLLM logged 5.19 GiB of weights and 226,112 KV tokens."""
    point = _held_out(PHI2)
    memory = replica_memory(point.facts, point.settings, lookup("H100"), profile_for("0.19.0"))
    assert memory.binding.weights / GIB == pytest.approx(float(point.row["weights_memory_gib"]), abs=0.02)
    logged = int(point.row["kv_cache_tokens"])
    assert abs(memory.kv_cache_tokens - logged) / logged < 0.001


def test_an_ungated_mlp_keeps_two_widths_of_activations_not_three() -> None:
    """k_mlp counts gate_up (2 widths) + the activation's output (1); fc1's output is one width."""
    config = {"model_type": "phi", "hidden_size": 4096, "num_hidden_layers": 2, "num_attention_heads": 32}
    f = parse(config | {"vocab_size": 1024})
    gated = replace(f, mlp_gated=True)
    s = _settings(max_num_seqs=1)  # a tiny sampler, so the forward pass is the peak
    profile = profile_for("0.19.0")
    drop = activation_bytes(gated, s, profile, range(2), True) - activation_bytes(f, s, profile, range(2), True)
    assert drop == 8192 * 2 * f.intermediate_size


# --- partial rotary: the cos/sin cache is (max_position, rotary_dim) ----------------------------------------------


def test_partial_rotary_factor_nested_in_rope_parameters_is_read() -> None:
    """Qwen3.5 declares partial_rotary_factor 0.25 only inside rope_parameters; get_rope reads it there
    (rotary_embedding/__init__.py@v0.19.0:62-66): 64 of 256 dims, a 32 MiB cache rather than 128 MiB."""
    f = facts_of("Qwen/Qwen3.5-27B")
    assert (f.attention.head_dim, f.rotary_dim) == (256, 64)


@pytest.mark.parametrize("key", ["partial_rotary_factor", "rotary_pct", "rotary_emb_fraction"])
def test_top_level_partial_rotary_names_win_over_rope_parameters(key: str) -> None:
    """patch_rope_parameters copies the top-level name into rope_parameters (transformers_utils/config.py@v0.19.0:
    385-403), so it is what get_rope sees."""
    config: dict[str, object] = {"hidden_size": 1024, "num_hidden_layers": 2, "num_attention_heads": 8}
    config |= {"vocab_size": 1024, "intermediate_size": 2048, "model_type": "llama", key: 0.25}
    config["rope_parameters"] = {"rope_type": "default", "partial_rotary_factor": 0.5}
    assert parse(config).rotary_dim == 32


# --- MoE: the workspace that outlives the forward pass -----------------------------------------------------------


def test_qwen3_moe_workspace_is_half_a_gib_at_8192_tokens() -> None:
    """TritonExperts.workspace_shapes: (M, 8, max(768, 2048)) + (M, 8, max(1536, 2048)) bf16 elements, M = 8192."""
    f = facts_of(QWEN3_MOE)
    assert moe_workspace_bytes(f, _settings(), profile_for("0.19.0"), range(f.num_layers)) == 8192 * 8 * 4096 * 2


def test_qwen3_moe_held_out_start_is_reproduced() -> None:
    """Qwen3-30B-A3B, bf16, TP 1: vLLM logged a 2.68 GiB activation peak and 168,288 KV tokens."""
    point = _held_out(QWEN3_MOE)
    memory = replica_memory(point.facts, point.settings, lookup("H100"), profile_for("0.19.0"))
    assert memory.binding.activation / GIB == pytest.approx(float(point.row["activation_memory_gib"]), abs=0.01)
    logged = int(point.row["kv_cache_tokens"])
    assert abs(memory.kv_cache_tokens - logged) / logged < 0.002


def test_the_workspace_is_counted_only_where_vllm_keeps_it() -> None:
    f = facts_of(QWEN3_MOE)
    layers = range(f.num_layers)
    kept = profile_for("0.19.0")
    assert moe_workspace_bytes(f, _settings(), profile_for("0.11.0"), layers) == 0  # fused_experts(): freed per call
    assert moe_workspace_bytes(f, _settings(weight_format=WeightFormat.FP8), kept, layers) == 0  # other backends
    assert moe_workspace_bytes(facts_of("Qwen/Qwen3-8B"), _settings(), kept, range(36)) == 0  # dense


def test_the_workspace_follows_the_batch_and_the_expert_width_per_rank() -> None:
    """M is max_num_batched_tokens; TP splits the expert width, expert parallelism keeps it whole."""
    f = facts_of("mistralai/Mixtral-8x7B-Instruct-v0.1")  # I 14336, hidden 4096, top-2
    layers, profile = range(f.num_layers), profile_for("0.19.0")
    tp2 = moe_workspace_bytes(f, _settings(tensor_parallel_size=2), profile, layers)
    assert tp2 == 8192 * 2 * (7168 + 14336) * 2
    assert moe_workspace_bytes(f, _settings(tensor_parallel_size=2, max_num_batched_tokens=2048), profile, layers) == (
        tp2 / 4
    )
    ep = moe_workspace_bytes(f, _settings(tensor_parallel_size=2, expert_parallel=True), profile, layers)
    assert ep == 8192 * 2 * (14336 + 28672) * 2


def test_the_workspace_sits_under_the_sampler_not_beside_the_forward_pass() -> None:
    """Peak = persistent + max(forward, workspace + sampler): the last stage carries the whole workspace on top of
    the sampler's buffers, and a stage without a sampler (the forward pass already holds it) is not charged again."""
    f = facts_of(QWEN3_MOE)
    s, layers = _settings(), range(f.num_layers)
    kept = profile_for("0.19.0")
    freed = replace(kept, persistent_moe_workspace=False)
    workspace = moe_workspace_bytes(f, s, kept, layers)
    assert activation_bytes(f, s, kept, layers, True) - activation_bytes(f, s, freed, layers, True) == workspace
    assert activation_bytes(f, s, kept, layers, False) == activation_bytes(f, s, freed, layers, False)
