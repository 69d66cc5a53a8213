"""The admission handlers kopf calls are async and run the judgement on the Runtime's own threads: never in kopf's
thread pool, where a queue of other work would delay every `kubectl apply` (docs/benchmarks.md, *Under load*)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import kopf
import pytest

from rightsizer.controller import webhooks
from rightsizer.controller.runtime import runtime_of
from tests.unit.fake_kube import FakeKube
from tests.unit.test_webhooks import H200_NODES, PLATFORM_DEFAULTS, indices, kopf_body, llmd, memo_with, without_slo


def test_admission_runs_on_its_own_threads_with_the_same_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    memo = memo_with(FakeKube())
    runtime = runtime_of(memo)
    assert runtime is not None
    real = webhooks.default_llmdeployment
    # kopf's decorators type them as handlers; they are the async functions kopf calls with its keyword arguments
    default: Any = webhooks._default_admission
    validate: Any = webhooks._validate_admission

    async def call() -> tuple[dict[str, Any], list[str]]:
        patch, warnings = kopf.Patch(), list[str]()
        common: dict[str, Any] = {"body": kopf_body(llmd(without_slo)), "operation": "CREATE", "namespace": "team-a"}
        await default(patch=patch, warnings=warnings, memo=memo, **common, **indices(H200_NODES, (PLATFORM_DEFAULTS,)))
        await validate(dryrun=True, warnings=warnings, memo=memo, **common, **indices(H200_NODES, (PLATFORM_DEFAULTS,)))
        return dict(patch), warnings

    def spy(**kwargs: Any) -> None:
        seen.append(threading.current_thread().name)
        real(**kwargs)

    monkeypatch.setattr(webhooks, "default_llmdeployment", spy)
    try:
        patch, warnings = asyncio.run(call())
    finally:
        runtime.admission.shutdown()
    assert seen and all(name.startswith("rightsizer-admission") for name in seen)
    assert patch["spec"]["slo"] == {"ttftP95Ms": 1000.0, "itlP95Ms": 80.0}  # the policy's defaults, as before
    assert any(w.startswith("rightsizer plan:") for w in warnings)  # validated (dry run): the plan is reported
