"""The YAML files a person points rightsizer at (a pools file, a manifest): read, parsed, and every problem one line
naming the file and what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from rightsizer.api.v1alpha1.common import GpuPoolSpec
from rightsizer.errors import validation_message
from rightsizer.facts import gpus
from rightsizer.sizing.pools import GpuPool, from_spec


class InputFileError(Exception):
    """A file rightsizer was given cannot be used: one line naming the file and the problem."""


def load_pools(path: Path) -> list[GpuPool]:
    data = load_yaml(path)
    items = data.get("pools", data) if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise InputFileError(f"{path}: expected a list of pools (or a mapping with a 'pools' list)")
    try:
        return [from_spec(GpuPoolSpec.model_validate(item)) for item in items]
    except ValidationError as err:
        raise InputFileError(f"{path}: {validation_message(err)}") from None
    except gpus.UnknownGpuProductError as err:
        raise InputFileError(f"{path}: {err}") from None


def load_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as err:
        raise InputFileError(f"{path}: {err.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputFileError(f"{path}: malformed YAML{where}: {getattr(err, 'problem', err)}") from None
