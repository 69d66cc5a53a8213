"""What an LLMDeployment's name must be for every object and pod derived from it to be valid, as CEL rules for the
CRD (so the API server enforces them with the webhook down) and the same rule in Python (pinned to the CEL by
tests/unit/test_names.py).

Every child takes the LLMDeployment's name (kube/builders): the Deployment, the PodDisruptionBudget, the
LeaderWorkerSet and the Service. Kubernetes then derives, from these names (sources: kubernetes v1.35 and
sigs.k8s.io/lws v0.9.0):

- Service `<name>`: a DNS-1035 label (a letter first, at most 63 characters) - the strictest format of all, so it
  is the format the name must have.
- Every child and pod carries the label app.kubernetes.io/instance=<name>: a label value, at most 63 characters.
- Deployment: ReplicaSet `<name>-<pod-template-hash>`, pods generated from it (the generator truncates the base,
  pkg/controller/deployment, apiserver names.SimpleNameGenerator): no tighter limit.
- LeaderWorkerSet (a replica spanning nodes): the leader StatefulSet `<name>` with pods `<name>-<group>`; one
  worker StatefulSet per group, `<name>-<group>`, with pods `<name>-<group>-<worker>`; headless Services
  `<name>-<group>` (subdomainPolicy UniquePerReplica; lws pkg/controllers/pod_controller.go). The StatefulSet
  controller labels each pod controller-revision-hash=<StatefulSet name>-<hash>, the hash being an FNV-32 sum
  printed in decimal (at most 10 characters; kubernetes pkg/controller/history ControllerRevisionName,
  HashControllerRevision), and a label value is at most 63 characters. The worker pods' label is the longest:
  len(name) + 1 + digits(group) + 1 + 10 <= 63. Pod names (host names, at most 63) are shorter than that label
  for any group of fewer than 10^10 nodes.

Whether a replica will span nodes is only known once it is sized (and a change of GPU pools can change it), so the
name must satisfy the LeaderWorkerSet limit from the start: at most 51 - digits(highest group index) characters,
the highest group index being spec.replicas.max - 1 (or min - 1): 50 characters up to 10 replicas, 49 up to 100.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Final

LABEL_VALUE_MAX: Final = 63  # a label value, and a DNS label (Service name, host name)
REVISION_HASH_MAX: Final = 10  # decimal digits of a uint32, the StatefulSet controller's revision hash
# len(name) + len("-") + digits(group) + len("-") + REVISION_HASH_MAX <= LABEL_VALUE_MAX
NAME_BUDGET: Final = LABEL_VALUE_MAX - REVISION_HASH_MAX - 2
DNS1035_LABEL: Final = "^[a-z]([-a-z0-9]*[a-z0-9])?$"


def highest_group_index(replicas: int) -> int:
    return max(replicas - 1, 0)


def max_name_length(replicas: int) -> int:
    """The longest LLMDeployment name whose children and pods are all valid with up to `replicas` replicas."""
    return NAME_BUDGET - len(str(highest_group_index(replicas)))


def name_problem(name: str, replicas: int) -> str | None:
    """Why `name` cannot name an LLMDeployment of up to `replicas` replicas (the CEL rules' messages), or None."""
    if not re.fullmatch(DNS1035_LABEL, name):
        return FORMAT_MESSAGE
    limit = max_name_length(replicas)
    if len(name) > limit:
        return length_message(len(str(highest_group_index(replicas))))
    return None


def overflow_workload_name(name: str, pool: str, replicas: int) -> str:
    """The overflow workload's name, `<name>-<pool>`, within the same limit as the name itself (the workload may be
    a LeaderWorkerSet, whose derived names are the tightest): too long, the end gives way to a hash of the whole,
    so two pools never share a name. A pool name that is not a lowercase label is folded into one, and one of
    digits only is prefixed with "pool-" (`<name>-<digits>` is a LeaderWorkerSet group's StatefulSet and Service)."""
    suffix = re.sub("[^a-z0-9-]+", "-", pool.lower()).strip("-") or "pool"
    if suffix.isdigit():
        suffix = f"pool-{suffix}"
    full = f"{name}-{suffix}"
    limit = max_name_length(replicas)
    if len(full) <= limit:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full[: limit - len(digest) - 1].rstrip('-')}-{digest}"


FORMAT_MESSAGE: Final = (
    "metadata.name must be a DNS-1035 label: lowercase letters, digits and '-', starting with a letter and ending "
    "with a letter or digit (it names the Service rightsizer creates, which Kubernetes requires to be one)"
)


_LENGTH_REASON: Final = (
    ": a replica spanning nodes is a LeaderWorkerSet group whose worker pods carry the label "
    "controller-revision-hash=<name>-<group>-<hash of 10 characters>, and a label value is at most 63 characters"
)


def length_message(digits: int) -> str:
    """The refusal for a name too long for replica counts whose highest group index has `digits` digits."""
    low, high = (0 if digits == 1 else 10 ** (digits - 1)), 10**digits
    return (
        f"metadata.name must be at most {NAME_BUDGET - digits} characters when spec.replicas allows "
        f"{low + 1:,} to {high:,} replicas{_LENGTH_REASON}"
    )


# --- the same rules in CEL, at the root of the CRD schema (only there may a rule read metadata.name) ------------

_REPLICAS = "(has(self.spec.replicas) && has(self.spec.replicas.{0}))"
# The most replicas the spec allows (Replicas.upper): max, else min, else the default of 1. A nullable field set to
# null counts as absent in Kubernetes CEL.
_UPPER = (
    f"({_REPLICAS.format('max')} ? self.spec.replicas.max : ({_REPLICAS.format('min')} ? self.spec.replicas.min : 1))"
)
_HIGHEST = f"({_UPPER} > 1 ? {_UPPER} - 1 : 0)"  # the highest LeaderWorkerSet group index
MAX_GROUP_DIGITS: Final = 10  # spec.replicas is an int32: its highest group index has at most 10 digits


def _length_rule(digits: int) -> dict[str, Any]:
    """The length limit for the replica counts whose highest group index has `digits` digits. One static rule per
    digit count: a messageExpression that prints the limit costs the API server's CEL estimator over 100x its
    budget (it prices string concatenation at the largest strings possible), so each limit gets its own message."""
    low, high = (0 if digits == 1 else 10 ** (digits - 1)), 10**digits
    guard = f"{_HIGHEST} < {low} || " if low else ""
    return {
        "rule": f"{guard}{_HIGHEST} >= {high} || size(self.metadata.name) <= {NAME_BUDGET - digits}",
        "message": length_message(digits),
    }


def cel_rules() -> tuple[dict[str, Any], ...]:
    """x-kubernetes-validations for the root of the LLMDeployment schema."""
    return (
        {"rule": f"self.metadata.name.matches('{DNS1035_LABEL}')", "message": FORMAT_MESSAGE},
        *(_length_rule(digits) for digits in range(1, MAX_GROUP_DIGITS + 1)),
    )


# The name's own bound in the schema: it bounds the CEL rules' estimated cost (an unbounded string would be costed
# at the largest request) and answers a name of 64+ characters before any rule runs.
METADATA_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": LABEL_VALUE_MAX},
        "generateName": {"type": "string"},
    },
}
