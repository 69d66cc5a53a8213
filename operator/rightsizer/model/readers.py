"""Typed readers for config.json values: every value is tenant input, so each read checks its type and range and
names the key when it refuses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rightsizer.errors import ModelConfigError
from rightsizer.model.limits import FIELD, MAX_SMALL_INT


def first_of(cfg: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[str, Any]:
    for key in keys:
        if key in cfg and cfg[key] is not None:
            return key, cfg[key]
    return keys[0], None


def value_of(cfg: Mapping[str, Any], *keys: str, default: Any = None) -> Any:
    _, value = first_of(cfg, keys)
    return default if value is None else value


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def int_of(
    cfg: Mapping[str, Any],
    *keys: str,
    default: int | None = None,
    low: int = 1,
    high: int = MAX_SMALL_INT,
    base: str = FIELD,
) -> int:
    """An integer config value within [low, high]; a missing key takes `default` or is refused by name."""
    key, value = first_of(cfg, keys)
    if value is None:
        if default is None:
            raise ModelConfigError(
                base,
                f"config.json has no {' or '.join(repr(k) for k in keys)}",
                "supply the model's full config.json",
            )
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelConfigError(f"{base}.{key}", f"must be an integer, got {short(value)}", "fix config.json")
    if not low <= value <= high:
        raise ModelConfigError(
            f"{base}.{key}", f"must be between {low} and {high}, got {short(value)}", "fix config.json"
        )
    return value


def float_of(cfg: Mapping[str, Any], key: str, default: float, low: float, high: float, *, base: str = FIELD) -> float:
    value = cfg.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ModelConfigError(
            f"{base}.{key}", f"must be a number between {low} and {high}, got {short(value)}", "fix config.json"
        )
    return float(value)


def bool_of(cfg: Mapping[str, Any], key: str, default: bool) -> bool:
    value = cfg.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ModelConfigError(f"{FIELD}.{key}", f"must be true or false, got {short(value)}", "fix config.json")
    return value


def int_list_of(cfg: Mapping[str, Any], key: str, low: int, high: int) -> list[int]:
    value = cfg.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
        raise ModelConfigError(f"{FIELD}.{key}", f"must be a list of integers, got {short(value)}", "fix config.json")
    if any(not low <= v <= high for v in value):
        raise ModelConfigError(f"{FIELD}.{key}", f"entries must be between {low} and {high}", "fix config.json")
    return list(value)
