"""The reconciler's assessment cache and time budget: bounded memory and time whatever a tenant writes.

Before: the cache keyed on the whole spec and config as JSON (about 3 MiB per distinct 1 MB inline config, 512
entries), and an assessment had no time limit."""

from __future__ import annotations

import pytest

from rightsizer.adapters.settings import OperatorSettings
from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.controller import reconcile
from rightsizer.controller.reconcile import AssessmentCache, Observed, Reconciler
from rightsizer.errors import SizingError
from rightsizer.facts import catalog
from rightsizer.policy.assessment import Assessment
from tests.unit.fake_kube import FakeKube
from tests.unit.test_discovery import node

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
MIB = 1024 * 1024


def observed() -> Observed:
    return Observed(nodes=[node(f"h200-{i}", "NVIDIA-H200", pool="h200") for i in range(2)])


def inline(padding: int) -> LLMDeploymentSpec:
    """The catalog config inline, with `padding` bytes of an unknown key: a distinct spec each size."""
    config = {**(catalog.lookup(MODEL) or {}), "x_padding": "x" * padding}
    return LLMDeploymentSpec.model_validate({"model": {"name": MODEL, "config": config}})


def test_keys_are_digests_and_the_cache_is_bounded_by_bytes() -> None:
    reconciler = Reconciler(FakeKube(), OperatorSettings(allow_hub=False))
    reconciler.assessments = cache = AssessmentCache(max_entries=512, max_bytes=8 * MIB)
    for i in range(24):  # each about 0.5 MiB of inputs (the config inline, and resolved)
        reconciler.assess("team-a", "chat", inline(MIB // 4 + i), observed())
    assert 6 * MIB < cache.bytes <= 8 * MIB
    assert 12 <= len(cache) < 24  # the oldest were dropped for bytes, not for count
    assert all(len(key) == 64 for key in cache._entries)  # SHA-256, whatever the spec's size


def test_an_entry_larger_than_an_eighth_of_the_budget_is_not_kept() -> None:
    cache = AssessmentCache(max_bytes=8 * MIB)
    computed: list[int] = []

    def compute() -> Assessment:
        computed.append(1)
        return object()  # type: ignore[return-value]  # the cache never looks inside

    cache.get_or_compute("small", compute)
    cache.get_or_compute("x" * (MIB + 1), compute)
    cache.get_or_compute("small", compute)
    assert (len(cache), len(computed)) == (1, 2)


def test_an_assessment_past_its_time_budget_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reconcile, "ASSESSMENT_BUDGET_SECONDS", -1.0)
    reconciler = Reconciler(FakeKube(), OperatorSettings(allow_hub=False))
    spec = LLMDeploymentSpec.model_validate({"model": {"name": MODEL}})
    with pytest.raises(SizingError, match="budget") as refused:
        reconciler.assess("team-a", "chat", spec, observed())
    assert refused.value.field == "spec"
    assert len(reconciler.assessments) == 0  # a refusal is not cached: the next pass tries again
