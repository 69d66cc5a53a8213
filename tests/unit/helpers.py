"""Helpers shared by the pure-core unit tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.facts import catalog
from rightsizer.model.config import ModelFacts, parse

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"


def facts_of(model: str) -> ModelFacts:
    config = catalog.lookup(model)
    assert config is not None, f"{model} missing from the catalog"
    return parse(config)


def spec_of(model: str, **fields: Any) -> LLMDeploymentSpec:
    return LLMDeploymentSpec.model_validate({"model": {"name": model}, **fields})


@pytest.fixture
def calibration_csv() -> Path:
    path = SHARED / "data" / "calibration" / "vllm-0.19.0-h100.csv"
    if not path.exists():
        path = REPO / "tests" / "data" / "vllm-0.19.0-h100.csv"
    return path
