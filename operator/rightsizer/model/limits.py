"""Bounds on a config.json, checked before any per-layer work, so an adversarial config costs microseconds.

Every LLMDeployment field is tenant input, and spec.model.config is a whole config.json. Each limit is several times
the largest value a published model uses (docs/sizing.md, "Limits"), so no real checkpoint is refused:

    layers          Llama-3.1-405B 126, Kimi-K2 61                        -> 1,024
    experts         Kimi-K2 384                                            -> 4,096
    hidden size     Llama-3.1-405B 16,384                                  -> 65,536
    MLP width       Llama-3.1-405B 53,248                                  -> 262,144
    vocabulary      Gemma 3 262,208                                        -> 2,097,152
    attention heads Llama-3.1-405B 128, DeepSeek-V3 128                    -> 1,024
    head size       MLA latent 576, Gemma 4 global 512                     -> 1,024
    positions       Llama 4 Scout 10,485,760                               -> 67,108,864
    parameters      Kimi-K2 1.03T                                          -> 10T
    config.json     the largest seen (ModelOpt ignore lists) well under 1 MB -> 4 MiB, 200,000 JSON values, depth 32
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rightsizer.errors import ModelConfigError

FIELD = "spec.model.config"

MAX_LAYERS = 1024
MAX_EXPERTS = 4096
MAX_HIDDEN_SIZE = 65_536
MAX_INTERMEDIATE_SIZE = 262_144
MAX_VOCAB_SIZE = 2_097_152
MAX_HEADS = 1024
MAX_HEAD_DIM = 1024
MAX_POSITIONS = 67_108_864
MAX_PARAMETERS = 10 * 10**12
MAX_CONFIG_BYTES = 4 * 1024 * 1024  # JSON text, for downloads and ConfigMaps
MAX_CONFIG_VALUES = 200_000  # JSON values (objects, arrays, scalars) in one config
MAX_CONFIG_DEPTH = 32
MAX_SMALL_INT = 1 << 40  # any other integer a config carries (ranks, window sizes, group sizes)


def check_shape(config: Any) -> None:
    """Refuse a config with too many values or too deep a nesting, walking at most MAX_CONFIG_VALUES nodes."""
    stack: list[tuple[Any, int]] = [(config, 1)]
    seen = 0
    while stack:
        value, depth = stack.pop()
        seen += 1
        if seen > MAX_CONFIG_VALUES:
            raise ModelConfigError(
                FIELD,
                f"config.json has more than {MAX_CONFIG_VALUES} values",
                "supply the model's real config.json (published ones have a few thousand at most)",
            )
        if depth > MAX_CONFIG_DEPTH:
            raise ModelConfigError(
                FIELD, f"config.json is nested deeper than {MAX_CONFIG_DEPTH} levels", "supply the real config.json"
            )
        if isinstance(value, Mapping):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list | tuple):
            stack.extend((v, depth + 1) for v in value)


def check_text_size(size: int, where: str, field: str) -> None:
    if size > MAX_CONFIG_BYTES:
        raise ModelConfigError(
            field,
            f"{where} is {size} bytes, more than the {MAX_CONFIG_BYTES} a config.json may have",
            "supply the model's real config.json",
        )
