"""Checking an LLMDeployment spec, and the plan computed for it, against the effective policy.

The same function serves the validating webhook (spec + the plan the object would get), reconciliation (a policy
tightened after admission makes PolicyCompliant False) and `rightsizer plan --policy`. Without a plan (the model's
facts could not be read) only what the spec itself states is checked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rightsizer.api import constants as c
from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec, ModelDType, Quantization
from rightsizer.api.v1alpha1.plan import Plan
from rightsizer.errors import RightsizerError, SizingError
from rightsizer.policy.decision import Decision, Violation, ViolationKind, allow_phrase, policies_phrase
from rightsizer.policy.effective import EffectivePolicy, Sourced, product_key
from rightsizer.policy.images import default_image, image_allowed, normalise_image
from rightsizer.policy.name_patterns import any_matches
from rightsizer.sizing.extra_args import FIELD as EXTRA_ARGS
from rightsizer.sizing.extra_args import read_extra_args


@dataclass(frozen=True)
class Rule:
    """What a check reports: its kind, the LLMDeployment field to change and the SizingPolicy field it enforces."""

    kind: ViolationKind
    field: str
    limit: str


PLAN_PRODUCT = Rule(ViolationKind.GPU_PRODUCT, "spec.gpu.products", "allowed.gpuProducts")
PLAN_POOL = Rule(ViolationKind.POOL, "spec.gpu", "allowed.pools")
PLAN_GPUS = Rule(ViolationKind.GPUS_PER_REPLICA, "spec.gpu", "limits.maxGpusPerReplica")
MODEL_LEN = Rule(ViolationKind.MAX_MODEL_LEN, "spec.serving.maxModelLen", "limits.maxModelLen")
QUANTIZATION = Rule(ViolationKind.QUANTIZATION, "spec.model.quantization", "allowed.quantizations")
DTYPE = Rule(ViolationKind.DTYPE, "spec.model.dtype", "allowed.dtypes")
IMAGE = Rule(ViolationKind.ENGINE_IMAGE, "spec.serving.engine.image", "allowed.engineImages")
TRUST_REMOTE_CODE = Rule(ViolationKind.TRUST_REMOTE_CODE, EXTRA_ARGS, "allowed.trustRemoteCode")
HF_TOKEN_SECRET = Rule(ViolationKind.HF_TOKEN_SECRET, "spec.serving.hfTokenSecretRef.name", "allowed.hfTokenSecrets")
MODEL_CACHE_CLAIM = Rule(ViolationKind.MODEL_CACHE_CLAIM, "spec.serving.modelCacheClaim", "allowed.modelCacheClaims")


def listing(values: Iterable[str]) -> str:
    items = sorted(values)
    return ", ".join(items) if items else "none"


def _not_in(rule: Rule, what: str, value: str, allowed: Sourced[frozenset[str]] | None) -> list[Violation]:
    if allowed is None or value in allowed.value:
        return []
    message = f"{what} {value}; {allow_phrase(allowed.policies)} {listing(allowed.value)}"
    return [Violation(rule.kind, rule.field, rule.limit, allowed.policies, message)]


def _over(rule: Rule, what: str, value: int, bound: Sourced[int] | None) -> list[Violation]:
    if bound is None or value <= bound.value:
        return []
    message = f"{what}; {allow_phrase(bound.policies)} {bound.value:,}"
    return [Violation(rule.kind, rule.field, rule.limit, bound.policies, message)]


def engine_image(spec: LLMDeploymentSpec, image_repository: str = c.VLLM_IMAGE_REPOSITORY) -> str:
    """The image the operator will run: spec.serving.engine.image, else `image_repository` tagged v<version>."""
    engine = spec.serving.engine
    return engine.image or default_image(image_repository, engine.version)


# --- what the spec states -----------------------------------------------------------------------------------------


def _required(spec: LLMDeploymentSpec, effective: EffectivePolicy) -> list[Violation]:
    values = {"ttftP95Ms": spec.slo.ttft_p95_ms, "itlP95Ms": spec.slo.itl_p95_ms}
    return [
        Violation(
            ViolationKind.REQUIRED_FIELD,
            f"spec.slo.{req.value.value}",
            "required.slo",
            req.policies,
            f"spec.slo.{req.value.value} is unset; {policies_phrase(req.policies)} "
            + ("requires it" if len(req.policies) == 1 else "require it"),
        )
        for req in effective.required_slo
        if values[req.value.value] is None
    ]


def _replicas(spec: LLMDeploymentSpec, effective: EffectivePolicy) -> list[Violation]:
    field = "spec.replicas.max" if spec.replicas.max is not None else "spec.replicas.min"
    rule = Rule(ViolationKind.REPLICAS, field, "limits.maxReplicas")
    return _over(rule, f"{field} is {spec.replicas.upper:,}", spec.replicas.upper, effective.max_replicas)


def _image(spec: LLMDeploymentSpec, effective: EffectivePolicy, image_repository: str) -> list[Violation]:
    prefixes = effective.engine_images
    image = engine_image(spec, image_repository)
    if prefixes is None or image_allowed(image, prefixes.value):
        return []
    unset = "" if spec.serving.engine.image else " (the default: spec.serving.engine.image is unset)"
    message = (
        f"engine image {normalise_image(image)}{unset} is under no approved prefix; "
        f"{allow_phrase(prefixes.policies)} {listing(prefixes.value)}"
    )
    return [Violation(IMAGE.kind, IMAGE.field, IMAGE.limit, prefixes.policies, message)]


def _pins(spec: LLMDeploymentSpec, effective: EffectivePolicy) -> list[Violation]:
    pins = spec.gpu
    out = []
    if pins.tensor_parallel_size is not None or pins.pipeline_parallel_size is not None:
        gpus = (pins.tensor_parallel_size or 1) * (pins.pipeline_parallel_size or 1)
        field = "spec.gpu.tensorParallelSize" if pins.tensor_parallel_size else "spec.gpu.pipelineParallelSize"
        rule = Rule(ViolationKind.GPUS_PER_REPLICA, field, PLAN_GPUS.limit)
        out += _over(
            rule, f"the pinned parallelism needs {gpus} GPUs per replica", gpus, effective.max_gpus_per_replica
        )
    allowed = effective.gpu_products
    if pins.products and allowed is not None and not {product_key(p) for p in pins.products} & allowed.value:
        message = (
            f"spec.gpu.products asks for {', '.join(pins.products)}; {allow_phrase(allowed.policies)} "
            f"{listing(allowed.value)}"
        )
        out.append(Violation(PLAN_PRODUCT.kind, PLAN_PRODUCT.field, PLAN_PRODUCT.limit, allowed.policies, message))
    return out


def _trust_remote_code(spec: LLMDeploymentSpec, effective: EffectivePolicy) -> list[Violation]:
    """--trust-remote-code makes vLLM import and run Python files from the model's repository in the pod, with the
    pod's GPUs, network and token: refused unless a selecting policy allows it and none forbids it."""
    engine = spec.serving.engine
    try:
        switch = read_extra_args(engine.version, engine.extra_args).trust_remote_code
    except RightsizerError:
        return []  # sizing refuses unreadable extraArgs, naming the argument: no pod is built from them
    setting = effective.trust_remote_code
    if switch is None or (setting is not None and setting.value):
        return []
    if setting is not None:
        policies = setting.policies
        verdict = f"{policies_phrase(policies)} {'forbids' if len(policies) == 1 else 'forbid'} it"
    elif effective.applies:
        policies = effective.policies
        verdict = f"{policies_phrase(policies)} {'does' if len(policies) == 1 else 'do'} not allow it"
    else:
        policies, verdict = (), f"no SizingPolicy selects namespace {effective.namespace} to allow it"
    field = f"{EXTRA_ARGS}[{switch.index}]"
    read_as = "" if switch.written == switch.matched else f" (vLLM reads it as {switch.matched})"
    message = (
        f"{field} is {switch.written}{read_as}, which makes vLLM run Python code from the model's repository in the "
        f"pod; {verdict}: remove it, or ask the platform team for allowed.trustRemoteCode: true"
    )
    return [Violation(TRUST_REMOTE_CODE.kind, field, TRUST_REMOTE_CODE.limit, policies, message)]


def _shown(name: str) -> str:
    """A tenant's name as a message quotes it: whole, unless it is longer than any Kubernetes name."""
    return name if len(name) <= 253 else f"{name[:40]}... ({len(name):,} characters)"


def _unmatched(rule: Rule, kind: str, name: str, listed: Iterable[Sourced[tuple[str, ...]]]) -> list[Violation]:
    return [
        Violation(
            rule.kind,
            rule.field,
            rule.limit,
            patterns.policies,
            f"{rule.field} names {kind} {_shown(name)}; {allow_phrase(patterns.policies)} only "
            f"{', '.join(patterns.value)}: name one that matches",
        )
        for patterns in listed
        if not any_matches(patterns.value, name)
    ]


def unreadable_token_secret(spec: LLMDeploymentSpec, effective: EffectivePolicy) -> SizingError | None:
    """The error to raise instead of reading spec.serving.hfTokenSecretRef when the policies do not allow that
    Secret: the operator does not read, on a tenant's behalf, a Secret the tenant may not name."""
    ref = spec.serving.hf_token_secret_ref
    if ref is None:
        return None
    for patterns in effective.hf_token_secrets:
        if not any_matches(patterns.value, ref.name):
            return SizingError(
                HF_TOKEN_SECRET.field,
                f"Secret {_shown(ref.name)} is not read: {allow_phrase(patterns.policies)} only "
                f"{', '.join(patterns.value)} ({HF_TOKEN_SECRET.limit})",
                "name a Secret that matches",
            )
    return None


def _mounted_objects(spec: LLMDeploymentSpec, effective: EffectivePolicy) -> list[Violation]:
    """The Secret and the claim the vLLM pods would mount: the kubelet mounts whatever the pod names, so a tenant
    allowed to write LLMDeployments but not to read Secrets must not be able to name any Secret of its namespace."""
    serving = spec.serving
    out = []
    if serving.hf_token_secret_ref is not None:
        out += _unmatched(HF_TOKEN_SECRET, "Secret", serving.hf_token_secret_ref.name, effective.hf_token_secrets)
    if serving.model_cache_claim is not None:
        out += _unmatched(
            MODEL_CACHE_CLAIM, "PersistentVolumeClaim", serving.model_cache_claim, effective.model_cache_claims
        )
    return out


def _stated_formats(spec: LLMDeploymentSpec, effective: EffectivePolicy) -> list[Violation]:
    """Formats and context the spec states outright; `auto` depends on the checkpoint, so only a plan tells."""
    out = []
    if spec.model.quantization != Quantization.AUTO:
        out += _not_in(
            QUANTIZATION, "spec.model.quantization is", spec.model.quantization.value, effective.quantizations
        )
    if spec.model.dtype != ModelDType.AUTO:
        out += _not_in(DTYPE, "spec.model.dtype is", spec.model.dtype.value, effective.dtypes)
    requested = spec.serving.max_model_len
    if requested is not None:
        out += _over(MODEL_LEN, f"spec.serving.maxModelLen is {requested:,} tokens", requested, effective.max_model_len)
    return out


# --- what the plan computes ---------------------------------------------------------------------------------------


def plan_violations(plan: Plan, effective: EffectivePolicy) -> list[Violation]:
    """What a computed plan breaks: where it runs, the GPUs a replica takes, its context length and formats."""
    return [
        *_not_in(PLAN_PRODUCT, "plan runs on", plan.gpu_product, effective.gpu_products),
        *_not_in(PLAN_POOL, "plan runs on pool", plan.pool, effective.pool_names),
        *_over(
            PLAN_GPUS,
            f"plan needs {plan.gpus_per_replica} × {plan.gpu_product} per replica",
            plan.gpus_per_replica,
            effective.max_gpus_per_replica,
        ),
        *_over(
            MODEL_LEN,
            f"plan serves maxModelLen {plan.max_model_len:,} tokens",
            plan.max_model_len,
            effective.max_model_len,
        ),
        *_not_in(QUANTIZATION, "plan loads weights as", plan.quantization, effective.quantizations),
        *_not_in(DTYPE, "plan computes in", plan.dtype, effective.dtypes),
    ]


def evaluate(
    spec: LLMDeploymentSpec,
    plan: Plan | None,
    effective: EffectivePolicy,
    image_repository: str = c.VLLM_IMAGE_REPOSITORY,
) -> Decision:
    """Allowed, or denied with every violation. Evaluate the spec *after* apply_defaults, as the API server stores
    it after the defaulting webhook. `image_repository` is the operator's default for unset images. Where no policy
    applies only --trust-remote-code is refused (allowed.trustRemoteCode defaults to false).

    Quota is not checked here: it depends on the namespace's other deployments (see policy.quota)."""
    trusted = _trust_remote_code(spec, effective)  # refused by default: also where no policy applies
    if not effective.applies:
        return Decision(tuple(trusted))
    found = _required(spec, effective) + _replicas(spec, effective) + _image(spec, effective, image_repository)
    found += _pins(spec, effective) + trusted + _mounted_objects(spec, effective)
    if plan is None:
        found += _stated_formats(spec, effective)
    else:
        found += [v for v in plan_violations(plan, effective) if not _duplicate(v, found)]
    return Decision(tuple(found), tuple(_warnings(spec, plan, effective)))


def _duplicate(candidate: Violation, found: list[Violation]) -> bool:
    """A spec-level finding (products asked for, pinned parallelism) already explains the plan's."""
    return any(v.kind == candidate.kind for v in found)


def _warnings(spec: LLMDeploymentSpec, plan: Plan | None, effective: EffectivePolicy) -> list[str]:
    warnings = list(effective.conflicts)
    allowed = effective.gpu_products
    if allowed is not None and spec.gpu.products:
        ignored = [p for p in spec.gpu.products if product_key(p) not in allowed.value]
        if ignored and len(ignored) < len(spec.gpu.products):
            warnings.append(
                f"spec.gpu.products {', '.join(ignored)} not used: {allow_phrase(allowed.policies)} "
                f"{listing(allowed.value)}"
            )
    if plan is None:
        warnings.append("checked without a plan: GPUs per replica, pool and resolved formats were not checked")
    return warnings
