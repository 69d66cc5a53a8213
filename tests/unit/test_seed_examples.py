"""The seed documents' worked examples: the naive formulas as published, and why rightsizer differs."""

import pytest

from bench.seed_examples import azure_max_batch, facts, rightsizer_fp8_on_h200, rule_of_thumb_gb


def test_rule_of_thumb_for_llama_70b_at_16_bit_is_168_gb() -> None:
    assert rule_of_thumb_gb(70e9, 16) == pytest.approx(168.0)
    assert rule_of_thumb_gb(70e9, 8) == pytest.approx(84.0)


def test_azure_formula_counts_every_attention_head() -> None:
    llama = facts("meta-llama/Llama-3.1-8B-Instruct")
    # 140 GB − 8.03 GB of fp8 weights over 1,152 × 2 × 32 layers × 32 heads × 128 × 1 B per sequence.
    assert azure_max_batch(llama, 1.0, 1.0) == pytest.approx((140e9 - 8_030_261_248) / (1152 * 2 * 32 * 32 * 128))


def test_grouped_query_attention_holds_about_four_times_more_than_the_formula_says() -> None:
    """Llama 3 8B has 8 KV heads for 32 query heads: a token's KV is a quarter of what the formula charges, so the
    real cache holds far more sequences than the article's table, even after vLLM's actual overheads."""
    llama = facts("meta-llama/Llama-3.1-8B-Instruct")
    seqs, held = rightsizer_fp8_on_h200("meta-llama/Llama-3.1-8B-Instruct")
    assert held > 3 * azure_max_batch(llama, 1.0, 1.0)
    assert seqs == 1024  # vLLM's default cap on a large GPU


def test_phi3_medium_without_gqa_saving_tracks_the_formula_more_closely() -> None:
    phi = facts("microsoft/Phi-3-medium-128k-instruct")  # 40 heads, 10 KV heads
    _, held = rightsizer_fp8_on_h200("microsoft/Phi-3-medium-128k-instruct")
    assert 2 * azure_max_batch(phi, 1.0, 1.0) < held < 5 * azure_max_batch(phi, 1.0, 1.0)
