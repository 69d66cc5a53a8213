"""The built-in model catalog: config.json facts for popular models, so sizing works offline.

Each file under facts/models/ holds the architecture keys of the model's published config.json (see
docs/models.md for sources). Names are matched case-insensitively; a few common aliases map to the same file.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

_ALIASES = {
    "meta-llama/meta-llama-3.1-8b-instruct": "meta-llama/Llama-3.1-8B-Instruct",
    "meta-llama/llama-3.1-8b": "meta-llama/Llama-3.1-8B-Instruct",
    "meta-llama/meta-llama-3.1-70b-instruct": "meta-llama/Llama-3.1-70B-Instruct",
    "meta-llama/llama-3.1-70b": "meta-llama/Llama-3.1-70B-Instruct",
    "meta-llama/meta-llama-3.1-405b-instruct": "meta-llama/Llama-3.1-405B-Instruct",
    "meta-llama/llama-3.1-405b": "meta-llama/Llama-3.1-405B-Instruct",
    "mistralai/mistral-7b-instruct-v0.1": "mistralai/Mistral-7B-v0.1",
    "mistralai/mixtral-8x7b-v0.1": "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "qwen/qwen2.5-7b": "Qwen/Qwen2.5-7B-Instruct",
    "qwen/qwen2.5-72b": "Qwen/Qwen2.5-72B-Instruct",
    "deepseek-ai/deepseek-v3-0324": "deepseek-ai/DeepSeek-V3",
}


def _file_name(model: str) -> str:
    return model.replace("/", "--") + ".json"


@cache
def _index() -> dict[str, str]:
    """Lower-cased model name -> catalog file name."""
    folder = resources.files("rightsizer.facts").joinpath("models")
    names = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".json"):
            model = entry.name[: -len(".json")].replace("--", "/")
            names[model.lower()] = entry.name
    for alias, target in _ALIASES.items():
        names[alias] = _file_name(target)
    return names


def models() -> list[str]:
    """Every model name in the catalog (without aliases)."""
    folder = resources.files("rightsizer.facts").joinpath("models")
    return sorted(e.name[: -len(".json")].replace("--", "/") for e in folder.iterdir() if e.name.endswith(".json"))


def lookup(model: str) -> dict[str, Any] | None:
    """The catalog's config.json for `model`, or None."""
    file_name = _index().get(model.strip().lower())
    if file_name is None:
        return None
    text = resources.files("rightsizer.facts").joinpath("models", file_name).read_text()
    config: dict[str, Any] = json.loads(text)
    return config
