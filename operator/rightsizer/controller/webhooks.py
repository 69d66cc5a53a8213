"""Admission webhooks for LLMDeployment: defaulting from policy, and validation against policy and quota.

Only policy refuses an apply. A spec that cannot be sized (no pool holds it, the Hub is down) is admitted with a
warning, and its Sized condition explains what to change.

Registered only when RIGHTSIZER_WEBHOOK_ENABLED is true (kopf refuses admission handlers without a server). The
handlers call the same assessment the reconciler uses, so `kubectl apply` is refused for exactly the reasons the
reconciler would refuse to act. Failure policy is Fail (docs/policy.md): while the webhook is down, creates and
spec changes of LLMDeployments are refused; deletes and status updates are not intercepted.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from rightsizer.adapters.kube_api import KubeApi
from rightsizer.api import constants as c
from rightsizer.api.v1alpha1.llmdeployment import LLMDeployment, LLMDeploymentSpec
from rightsizer.controller.observed import observed_of
from rightsizer.controller.runtime import runtime_of
from rightsizer.errors import RightsizerError, validation_message
from rightsizer.policy import (
    AdmissionRequest,
    admit,
    apply_defaults,
    charge_of,
    decode_ledger,
    encode_ledger,
    needs_evaluation,
)
from rightsizer.policy.assessment import Assessment, effective_policy

log = logging.getLogger("rightsizer.controller.webhooks")
LLMD = (c.GROUP, c.VERSION, c.LLMD_PLURAL)
LEDGER = ("coordination.k8s.io/v1", "Lease", c.QUOTA_LEDGER_NAME)
LEDGER_ANNOTATION = c.ANNOTATION_GPU_RESERVATIONS
CAS_ATTEMPTS = 5
_namespace_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)


def _spec(body: Mapping[str, Any]) -> LLMDeploymentSpec:
    try:
        return LLMDeployment.model_validate(dict(body)).spec
    except ValidationError as err:
        raise kopf.AdmissionError(validation_message(err), code=422) from None


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


@kopf.on.mutate(*LLMD, id="default-llmdeployment", operations=["CREATE", "UPDATE"], side_effects=False)
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
        facts = runtime.reconciler.resolve_model(namespace, spec).facts
    except RightsizerError:
        facts = None  # defaults that depend on the model wait for the reconciler's retry
    defaulting = apply_defaults(spec, effective, facts)
    spec_patch: dict[str, Any] = {}
    for applied in defaulting.applied:
        _set(spec_patch, applied.path, applied.value)
        warnings.append(f"rightsizer: {applied.one_line()}")
    if spec_patch:
        patch["spec"] = spec_patch


@kopf.on.validate(*LLMD, id="validate-llmdeployment", operations=["CREATE", "UPDATE"], side_effects=True)
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
        assessment = runtime.reconciler.assess(namespace, name, spec, observed)
    except RightsizerError as err:
        # Not a policy matter: the object is admitted and its Sized condition says what to fix (pools may appear,
        # the Hub may come back); refusing here would hide the explanation from status.
        warnings.append(f"rightsizer: cannot be sized yet: {err.one_line()}")
        return
    decision = assessment.decision
    if not decision.allowed or assessment.plan is None:
        raise kopf.AdmissionError(decision.message(), code=403)
    warnings.extend(f"rightsizer: {w}" for w in decision.warnings)
    _check_quota(
        runtime.reconciler.kube, namespace, body, assessment, observed.neighbours, dryrun=dryrun, warnings=warnings
    )
    if dryrun:
        p = assessment.plan
        warnings.append(
            f"rightsizer plan: {p.gpus_per_replica} × {p.gpu_product} per replica on pool {p.pool} "
            f"(TP {p.tensor_parallel_size}, PP {p.pipeline_parallel_size}), max-num-seqs {p.max_num_seqs}, "
            f"max-model-len {p.max_model_len}, {p.kv_cache_tokens} KV tokens, {p.replicas} replica(s)"
        )


def _check_quota(
    kube: KubeApi,
    namespace: str,
    body: Mapping[str, Any],
    assessment: Assessment,
    neighbours: list[Any],
    *,
    dryrun: bool,
    warnings: list[str],
) -> None:
    """The namespace quota under concurrency: read the reservation ledger, decide, write it back only if nobody
    wrote in between (compare-and-swap on the Lease's resourceVersion); on a conflict, read and decide again."""
    plan = assessment.plan
    if plan is None or not assessment.effective.quota_for(plan.gpu_product):
        return
    meta = body["metadata"]
    request = AdmissionRequest(
        namespace,
        str(meta.get("name")),
        str(meta.get("uid", "")),
        int(meta.get("generation") or 1),
        assessment.spec,
        plan,
    )
    charges = [charge_of(LLMDeployment.model_validate(dict(b))) for b in neighbours]
    with _namespace_locks[namespace]:
        for _ in range(CAS_ATTEMPTS):
            text, version = kube.read_annotation(LEDGER[0], LEDGER[1], namespace, LEDGER[2], LEDGER_ANNOTATION)
            try:
                ledger = decode_ledger(text)
            except ValueError as err:
                raise kopf.AdmissionError(str(err), code=500) from None
            outcome = admit(request, assessment.effective, charges, ledger, datetime.now(UTC))
            if not outcome.check.decision.allowed:
                raise kopf.AdmissionError(outcome.check.decision.message(), code=403)
            warnings.extend(f"rightsizer: {w}" for w in outcome.check.decision.warnings)
            if outcome.ledger is None or dryrun:
                return
            if kube.compare_and_swap_annotation(
                LEDGER[0],
                LEDGER[1],
                namespace,
                LEDGER[2],
                key=LEDGER_ANNOTATION,
                value=encode_ledger(outcome.ledger),
                resource_version=version,
            ):
                return
            log.info("quota ledger of %s changed while admitting %s; deciding again", namespace, request.name)
    raise kopf.AdmissionError(f"namespace {namespace} quota ledger is too busy; retry the apply", code=409)
