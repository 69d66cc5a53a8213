"""An architecture the config parser does not know: sized as a standard decoder with a plan warning that says so,
or refused by key when a key a standard decoder needs is missing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.errors import ModelConfigError
from rightsizer.facts import catalog
from rightsizer.facts.gpus import lookup
from rightsizer.model.architectures import KNOWN_MODEL_TYPES
from rightsizer.model.config import parse
from rightsizer.sizing import SizingRequest, plan
from rightsizer.sizing.pools import GpuPool
from tests.unit.helpers import REPO

LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"


def _llama_like(**changes: Any) -> dict[str, Any]:
    """Llama 3.1 8B's config.json under another name, with `changes` (None removes a key)."""
    config = dict(catalog.lookup(LLAMA_8B) or {})
    config.update(architectures=["FrobnicatorForCausalLM"], model_type="frobnicator")
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    return config


def _plan_warnings(config: dict[str, Any]) -> list[str]:
    spec = LLMDeploymentSpec.model_validate({"model": {"name": "example/frobnicator"}})
    h100 = GpuPool("h100", lookup("H100"), 8, None, None)
    return plan(SizingRequest(spec, parse(config), [h100]), "example/frobnicator").warnings


def test_an_unknown_architecture_is_sized_as_a_standard_decoder_with_a_warning() -> None:
    warnings = [w for w in _plan_warnings(_llama_like()) if "not one rightsizer knows" in w]
    assert len(warnings) == 1
    warning = warnings[0]
    assert "FrobnicatorForCausalLM" in warning and "model_type frobnicator" in warning
    assert "standard decoder" in warning
    assert "encoder" in warning and "multi-token-prediction" in warning and "unusual layer" in warning


def test_an_unknown_architecture_sizes_exactly_as_the_same_llama_config() -> None:
    # Same keys, same sizing: only the warning differs (the generic reading is Llama's).
    unknown, llama = parse(_llama_like()), parse(dict(catalog.lookup(LLAMA_8B) or {}))
    assert (unknown.num_layers, unknown.hidden_size, unknown.intermediate_size, unknown.attention) == (
        llama.num_layers,
        llama.hidden_size,
        llama.intermediate_size,
        llama.attention,
    )


def test_a_missing_model_type_is_named_in_the_warning() -> None:
    warnings = _plan_warnings(_llama_like(model_type=None))
    assert any("(no model_type)" in w for w in warnings)


def test_a_known_architecture_plans_without_the_warning() -> None:
    config = dict(catalog.lookup(LLAMA_8B) or {})
    assert not [w for w in _plan_warnings(config) if "not one rightsizer knows" in w]


def test_an_unknown_architecture_without_its_mlp_width_is_refused_by_key() -> None:
    with pytest.raises(ModelConfigError) as refused:
        parse(_llama_like(intermediate_size=None))
    assert refused.value.field == "spec.model.config.intermediate_size"
    assert "model_type 'frobnicator' is not an architecture rightsizer knows" in refused.value.one_line()
    assert "\n" not in refused.value.one_line()


def test_a_known_architecture_keeps_vllms_default_mlp_width() -> None:
    config = dict(catalog.lookup(LLAMA_8B) or {})
    del config["intermediate_size"]
    assert parse(config).intermediate_size == 4 * config["hidden_size"]


@pytest.mark.parametrize("key", ["num_hidden_layers", "hidden_size", "num_attention_heads", "vocab_size"])
def test_an_unknown_architecture_missing_a_required_key_is_refused_naming_it(key: str) -> None:
    with pytest.raises(ModelConfigError) as refused:
        parse(_llama_like(**{key: None}))
    assert repr(key) in refused.value.one_line()


def test_every_catalog_model_is_a_known_architecture() -> None:
    # A catalog plan never carries the warning: each catalog model's parameter count is pinned (test_catalog.py).
    types = {
        parse(json.loads(path.read_text())).model_type
        for path in (REPO / "operator" / "rightsizer" / "facts" / "models").glob("*.json")
    }
    assert types <= KNOWN_MODEL_TYPES, sorted(types - KNOWN_MODEL_TYPES)
