"""Where a model's config.json comes from, in order: inline spec, ConfigMap, a local file, the built-in catalog,
the Hugging Face Hub. The first source that has it wins; the plan records which one.

NVIDIA ModelOpt checkpoints may keep their quantization in hf_quant_config.json beside config.json; vLLM merges it
as quantization_config, and so does the resolved config here: read from the Hub beside config.json, from the
ConfigMap key `hf_quant_config.json` beside the config key, or given inline as the config's own
`quantization_config` (the merged form). A multimodal model's preprocessor_config.json (the image processor's
max_pixels, which sizes vLLM's encoder profiling run) is read from the ConfigMap key `preprocessor_config.json`
into the config's `preprocessor_config` key, where an inline config gives it directly; elsewhere the published
defaults apply (model.vision). Text read from a ConfigMap or file is size-checked before it is parsed."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rightsizer.adapters.hub import HubClient
from rightsizer.api.v1alpha1.llmdeployment import ModelSource
from rightsizer.errors import ModelConfigError
from rightsizer.facts import catalog
from rightsizer.model.checkpoint_quant import merge_hf_quant_config
from rightsizer.model.config import ModelFacts, parse
from rightsizer.model.limits import check_text_size

ConfigMapReader = Callable[[str, str], str]  # (name, key) -> text
HF_QUANT_CONFIG_KEY = "hf_quant_config.json"
PREPROCESSOR_CONFIG_KEY = "preprocessor_config.json"


@dataclass(frozen=True)
class ResolvedModel:
    facts: ModelFacts
    config: Mapping[str, Any]
    source: str


def _load_json(text: str, where: str, field: str) -> dict[str, Any]:
    check_text_size(len(text), where, field)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ModelConfigError(field, f"{where} is not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(data, dict):
        raise ModelConfigError(field, f"{where} is not a JSON object")
    return data


def resolve(
    model: ModelSource,
    *,
    config_file: Path | None = None,
    read_config_map: ConfigMapReader | None = None,
    hub: HubClient | None = None,
    read_hub_token: Callable[[], str | None] | None = None,
    hub_scope: str = "",
) -> ResolvedModel:
    """The model's config from the first source that has it. `read_hub_token` is called only when the Hub is asked;
    `hub_scope` (the namespace the token belongs to) keeps what that token fetched apart in the Hub's cache."""
    if model.config:
        return ResolvedModel(parse(model.config), model.config, "inline spec.model.config")
    if model.config_map_ref is not None:
        ref = model.config_map_ref
        if read_config_map is None:
            raise ModelConfigError(
                "spec.model.configMapRef", "ConfigMaps cannot be read here", "pass the config with --model-config"
            )
        text = read_config_map(ref.name, ref.key)
        config = _load_json(text, f"ConfigMap {ref.name} key {ref.key}", "spec.model.configMapRef")
        config = merge_hf_quant_config(config, _config_map_quant(read_config_map, ref.name, ref.key))
        preprocessor = _config_map_key(read_config_map, ref.name, ref.key, PREPROCESSOR_CONFIG_KEY)
        if preprocessor is not None and "preprocessor_config" not in config:
            config = {**config, "preprocessor_config": preprocessor}
        return ResolvedModel(parse(config), config, f"ConfigMap {ref.name}/{ref.key}")
    if config_file is not None:
        try:
            text = config_file.read_text()
        except OSError as err:
            raise ModelConfigError("--model-config", f"cannot read {config_file}: {err.strerror}") from None
        config = _load_json(text, str(config_file), "--model-config")
        return ResolvedModel(parse(config), config, f"file {config_file}")
    built_in = catalog.lookup(model.name)
    if built_in is not None:
        return ResolvedModel(parse(built_in), built_in, "built-in catalog")
    if hub is None:
        raise ModelConfigError(
            "spec.model.name",
            f"{model.name} is not in the built-in catalog and the Hub is not consulted here",
            "set spec.model.config (or configMapRef), pass --model-config, or allow Hub access",
        )
    # The token is read only now, when the Hub is really asked: catalog and inline models never need the Secret.
    token = read_hub_token() if read_hub_token else None
    config = hub.config(model.name, model.revision, token, scope=hub_scope)
    if config.get("quantization_config") is None:
        quant = hub.hf_quant_config(model.name, model.revision, token, scope=hub_scope)
        config = merge_hf_quant_config(config, quant)
    return ResolvedModel(parse(config), config, f"{hub.endpoint}")


def _config_map_quant(read: ConfigMapReader, name: str, config_key: str) -> dict[str, Any] | None:
    """hf_quant_config.json from the same ConfigMap, when it has that key (a missing key is not an error)."""
    return _config_map_key(read, name, config_key, HF_QUANT_CONFIG_KEY)


def _config_map_key(read: ConfigMapReader, name: str, config_key: str, key: str) -> dict[str, Any] | None:
    """The JSON object under `key` of the same ConfigMap, when it has that key (a missing key is not an error)."""
    if config_key == key:
        return None
    try:
        text = read(name, key)
    except ModelConfigError:
        return None
    return _load_json(text, f"ConfigMap {name} key {key}", "spec.model.configMapRef")
