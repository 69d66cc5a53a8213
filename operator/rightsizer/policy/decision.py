"""What policy evaluation returns: violations a person can act on, warnings, and the combined verdict."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from rightsizer.api.conditions import Reason


class ViolationKind(StrEnum):
    """Why a spec or plan breaks policy; CamelCase, so it doubles as the reason of PolicyCompliant=False (the first
    violation's). One sentence each: docs/operator.md's table is generated from them (hack/conditions_table.py)."""

    NO_ALLOWED_POOL = "NoAllowedPool"
    """No GPU pool the cluster knows is among the products and pools the policies allow."""

    GPU_PRODUCT = "GpuProductNotAllowed"
    """The plan's GPU product, or every product spec.gpu.products asks for, is outside allowed.gpuProducts."""

    POOL = "PoolNotAllowed"
    """The plan's pool is outside allowed.pools."""

    GPUS_PER_REPLICA = "TooManyGpusPerReplica"
    """The plan, or the pinned parallelism, needs more GPUs per replica than limits.maxGpusPerReplica."""

    REPLICAS = "TooManyReplicas"
    """spec.replicas asks for more replicas than limits.maxReplicas."""

    MAX_MODEL_LEN = "MaxModelLenTooLong"
    """The context length is longer than limits.maxModelLen."""

    QUANTIZATION = "QuantizationNotAllowed"
    """The weight format, stated or resolved from the checkpoint, is outside allowed.quantizations."""

    DTYPE = "DTypeNotAllowed"
    """The compute dtype, stated or resolved, is outside allowed.dtypes."""

    ENGINE_IMAGE = "EngineImageNotAllowed"
    """The vLLM image (spec.serving.engine.image, or the default) is under no prefix of allowed.engineImages."""

    TRUST_REMOTE_CODE = "TrustRemoteCodeNotAllowed"
    """spec.serving.engine.extraArgs passes --trust-remote-code and no selecting policy allows it
    (allowed.trustRemoteCode), or one forbids it."""

    HF_TOKEN_SECRET = "HfTokenSecretNotAllowed"
    """spec.serving.hfTokenSecretRef names a Secret that matches no pattern of allowed.hfTokenSecrets."""

    MODEL_CACHE_CLAIM = "ModelCacheClaimNotAllowed"
    """spec.serving.modelCacheClaim names a PersistentVolumeClaim that matches no pattern of
    allowed.modelCacheClaims."""

    REQUIRED_FIELD = "RequiredFieldMissing"
    """A field the policies require (required.slo) is unset."""

    QUOTA = "NamespaceQuotaExceeded"
    """spec.replicas.min would take the namespace's GPUs beyond limits.namespaceQuota."""


def policies_phrase(policies: Sequence[str]) -> str:
    """`SizingPolicy a`, `SizingPolicies a and b`, `SizingPolicies a, b and c`."""
    if len(policies) == 1:
        return f"SizingPolicy {policies[0]}"
    return f"SizingPolicies {', '.join(policies[:-1])} and {policies[-1]}"


def allow_phrase(policies: Sequence[str]) -> str:
    """`SizingPolicy a allows` or `SizingPolicies a and b allow`."""
    return policies_phrase(policies) + (" allows" if len(policies) == 1 else " allow")


@dataclass(frozen=True)
class Violation:
    """One broken rule: what was asked or computed, which policy forbids it, and the policy field holding the limit.

    `field` is the LLMDeployment path to change (camelCase, usable as an admission response cause's field);
    `limit` the SizingPolicy spec path; `message` one line naming the policy, the limit and the computed value.
    """

    kind: ViolationKind
    field: str
    limit: str
    policies: tuple[str, ...]
    message: str

    def one_line(self) -> str:
        return f"{self.message} ({self.limit})"


@dataclass(frozen=True)
class Decision:
    """Allowed when nothing is violated; warnings never deny."""

    violations: tuple[Violation, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return not self.violations

    @property
    def reason(self) -> str:
        """A condition reason: `Compliant`, or the first violation's kind."""
        return Reason.COMPLIANT if self.allowed else self.violations[0].kind.value

    def message(self) -> str:
        """One line for an admission response or a condition."""
        if self.allowed:
            return "; ".join(("complies with policy", *self.warnings))
        if len(self.violations) == 1:
            return self.violations[0].one_line()
        numbered = "; ".join(f"({i}) {v.one_line()}" for i, v in enumerate(self.violations, 1))
        return f"{len(self.violations)} policy violations: {numbered}"

    def plus(self, other: Decision) -> Decision:
        return Decision(self.violations + other.violations, _unique(self.warnings + other.warnings))


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
