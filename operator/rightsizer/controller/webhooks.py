"""Admission webhooks for LLMDeployment: defaulting from policy, and validation against policy and quota.

Only policy refuses an apply. A spec that cannot be sized (no pool holds it, the Hub is down) is admitted with a
warning, and its Sized condition explains what to change.

The handlers run on two threads of their own (Runtime.admission), never behind reconciles or kopf's other handlers.
Registered only when RIGHTSIZER_WEBHOOK_ENABLED is true (kopf refuses admission handlers without a server). The
handlers call the same assessment the reconciler uses, so `kubectl apply` is refused for exactly the reasons the
reconciler would refuse to act. Failure policy is Fail (docs/policy.md): while the webhook is down, creates and
spec changes of LLMDeployments are refused; deletes and status updates are not intercepted.

An AdmissionReview proves nothing about who sent it: any pod that reaches the webhook port can post one, for any
namespace (docs/security.md). So both handlers are free of side effects in the cluster: they write nothing, read
no ConfigMap or Secret (a model from a ConfigMap or a gated Hub repository is judged on what the spec states, and
sized once the object exists), ask the Hub without a token, and keep GPU reservations only in this process's
memory, where one that no real object backs expires (controller.reservations).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from rightsizer.api import constants as c
from rightsizer.api.v1alpha1.llmdeployment import LLMDeployment, LLMDeploymentSpec
from rightsizer.controller.observed import observed_of
from rightsizer.controller.reconcile import Observed, Reconciler
from rightsizer.controller.runtime import Runtime, runtime_of
from rightsizer.errors import RightsizerError, validation_message
from rightsizer.policy import (
    AdmissionRequest,
    apply_defaults,
    evaluate,
    needs_evaluation,
    overflow_of,
    starting_replicas,
)
from rightsizer.policy.assessment import Assessment, effective_policy

log = logging.getLogger("rightsizer.controller.webhooks")
LLMD = (c.GROUP, c.VERSION, c.LLMD_PLURAL)


def _spec(body: Mapping[str, Any]) -> LLMDeploymentSpec:
    try:
        return LLMDeployment.model_validate(dict(body)).spec
    except ValidationError as err:
        raise kopf.AdmissionError(validation_message(err), code=422) from None


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


async def _on_admission_threads(handler: Callable[..., None], kwargs: dict[str, Any]) -> None:
    """Run a handler on the Runtime's admission threads: kopf would run a synchronous handler in its own thread
    pool, and a queue of index functions or a burst of anything else there would delay every `kubectl apply`
    (docs/benchmarks.md, *Under load*). Before the startup handler (no Runtime) the handler returns at once."""
    runtime = runtime_of(kwargs["memo"])
    if runtime is None:
        handler(**kwargs)
        return
    call = functools.partial(contextvars.copy_context().run, functools.partial(handler, **kwargs))
    await asyncio.get_running_loop().run_in_executor(runtime.admission, call)


@kopf.on.mutate(*LLMD, id="default-llmdeployment", operations=["CREATE", "UPDATE"], side_effects=False)
async def _default_admission(**kwargs: Any) -> None:
    await _on_admission_threads(default_llmdeployment, kwargs)


@kopf.on.validate(*LLMD, id="validate-llmdeployment", operations=["CREATE", "UPDATE"], side_effects=False)
async def _validate_admission(**kwargs: Any) -> None:
    await _on_admission_threads(validate_llmdeployment, kwargs)


def default_llmdeployment(
    *,
    body: kopf.Body,
    old: Any = None,
    operation: str = "",
    patch: kopf.Patch,
    warnings: list[str],
    namespace: str | None,
    memo: kopf.Memo,
    **indices: Any,
) -> None:
    """Fill unset fields from the selecting policies' defaults (engine version and image, SLOs, utilisation)."""
    runtime = runtime_of(memo)
    if runtime is None or namespace is None or not needs_evaluation(operation, body, old):
        return
    spec = _spec(body)
    observed = observed_of(namespace, str(body["metadata"].get("name", "")), indices)
    effective = effective_policy(namespace, observed.policies, observed.namespace_labels)
    if not effective.applies:
        return
    try:
        facts = runtime.reconciler.resolve_model(namespace, spec, reads=False).facts
    except RightsizerError:
        facts = None  # defaults that depend on the model wait for the reconciler's retry
    defaulting = apply_defaults(spec, effective, facts)
    spec_patch: dict[str, Any] = {}
    for applied in defaulting.applied:
        _set(spec_patch, applied.path, applied.value)
        warnings.append(f"rightsizer: {applied.one_line()}")
    if spec_patch:
        patch["spec"] = spec_patch


def validate_llmdeployment(
    *,
    body: kopf.Body,
    old: Any = None,
    operation: str = "",
    dryrun: bool,
    warnings: list[str],
    namespace: str | None,
    memo: kopf.Memo,
    **indices: Any,
) -> None:
    """Refuse what policy forbids, what cannot be sized, and what the namespace's GPU quota cannot hold."""
    runtime = runtime_of(memo)
    if runtime is None or namespace is None or not needs_evaluation(operation, body, old):
        return
    spec = _spec(body)
    name = str(body["metadata"].get("name", ""))
    observed = observed_of(namespace, name, indices)
    try:
        assessment = runtime.reconciler.assess(namespace, name, spec, observed, reads=False)
    except RightsizerError as err:
        # Not sized here (a ConfigMap or gated model is read only once the object exists; pools may appear, the Hub
        # may come back): what the spec states is still judged; the rest is the Sized condition's to explain.
        _check_stated(runtime.reconciler, namespace, spec, observed, warnings)
        warnings.append(f"rightsizer: cannot be sized yet: {err.one_line()}")
        return
    decision = assessment.decision
    if not decision.allowed or assessment.plan is None:
        raise kopf.AdmissionError(decision.message(), code=403)
    warnings.extend(f"rightsizer: {w}" for w in decision.warnings)
    _check_quota(
        runtime,
        namespace,
        body,
        assessment,
        observed.neighbours,
        dryrun=dryrun,
        warnings=warnings,
    )
    if dryrun:
        p = assessment.plan
        warnings.append(
            f"rightsizer plan: {p.gpus_per_replica} × {p.gpu_product} per replica on pool {p.pool} "
            f"(TP {p.tensor_parallel_size}, PP {p.pipeline_parallel_size}), max-num-seqs {p.max_num_seqs}, "
            f"max-model-len {p.max_model_len}, {p.kv_cache_tokens} KV tokens, {p.replicas} replica(s)"
        )


def _check_stated(
    reconciler: Reconciler, namespace: str, spec: LLMDeploymentSpec, observed: Observed, warnings: list[str]
) -> None:
    """Without a plan, refuse what the spec itself states against the policy (a product, an image, a pin)."""
    effective = effective_policy(namespace, observed.policies, observed.namespace_labels)
    decision = evaluate(
        apply_defaults(spec, effective, None).spec, None, effective, reconciler.settings.image_repository
    )
    if not decision.allowed:
        raise kopf.AdmissionError(decision.message(), code=403)


def _check_quota(
    runtime: Runtime,
    namespace: str,
    body: Mapping[str, Any],
    assessment: Assessment,
    neighbours: list[Any],
    *,
    dryrun: bool,
    warnings: list[str],
) -> None:
    """The namespace quota next to its real LLMDeployments (kopf's index) and the live reservations of this
    process; a real (not dry-run) admission that fits keeps a reservation in memory until its status shows it. An
    object whose replicas overflow onto the next pool (its status.placement) is charged for them at that pool's
    product and GPUs per replica, as the re-assessed plans size that pool."""
    plan = assessment.plan
    if plan is None:
        return
    placement = LLMDeployment.model_validate(dict(body)).status
    overflow = overflow_of(
        placement.placement if placement else None,
        [r.entry for r in assessment.ranked],
        starting_replicas(assessment.spec, plan),
    )
    products = [plan.gpu_product, *([overflow.product] if overflow else [])]
    if not any(assessment.effective.quota_for(product) for product in products):
        return
    meta = body["metadata"]
    request = AdmissionRequest(
        namespace,
        str(meta.get("name")),
        str(meta.get("uid", "")),
        int(meta.get("generation") or 1),
        assessment.spec,
        plan,
        overflow,
    )
    charges = runtime.reconciler.charges(neighbours)
    outcome = runtime.reservations.admit(request, assessment.effective, charges, datetime.now(UTC), record=not dryrun)
    if not outcome.check.decision.allowed:
        raise kopf.AdmissionError(outcome.check.decision.message(), code=403)
    warnings.extend(f"rightsizer: {w}" for w in outcome.check.decision.warnings)
