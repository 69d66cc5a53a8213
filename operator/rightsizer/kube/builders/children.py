"""The complete set of children an LLMDeployment should have, each stamped with a hash of its own content."""

from __future__ import annotations

import hashlib
import json

from rightsizer.api import constants as c
from rightsizer.kube.builders.context import BuildContext
from rightsizer.kube.builders.deployment import deployment
from rightsizer.kube.builders.lws import leader_worker_set
from rightsizer.kube.builders.pod import JSON
from rightsizer.kube.builders.service import disruption_budget, service

# Every kind rightsizer may create for an LLMDeployment: (apiVersion, kind). Children of these kinds that carry the
# instance's labels but are not desired are deleted (e.g. the Deployment after a switch to a LeaderWorkerSet).
MANAGED_KINDS: tuple[tuple[str, str], ...] = (
    ("apps/v1", "Deployment"),
    ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"),
    ("v1", "Service"),
    ("policy/v1", "PodDisruptionBudget"),
)


def content_hash(obj: JSON) -> str:
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def stamped(obj: JSON) -> JSON:
    """The object with a hash of its desired content in an annotation, to tell "already applied" at a glance."""
    digest = content_hash(obj)
    metadata = dict(obj["metadata"])
    metadata["annotations"] = {**metadata.get("annotations", {}), c.ANNOTATION_SPEC_HASH: digest}
    return {**obj, "metadata": metadata}


def workload(ctx: BuildContext) -> JSON:
    return leader_worker_set(ctx) if ctx.multi_node else deployment(ctx)


def desired_children(ctx: BuildContext, overflow: BuildContext | None = None) -> list[JSON]:
    """The primary workload, the overflow workload when it runs replicas (kube/placement.py), and one Service and
    one PodDisruptionBudget over both: they select the instance's labels, which every pod of either carries."""
    workloads = [workload(ctx)]
    if overflow is not None and overflow.replicas > 0:
        workloads.append(workload(overflow))
    return [stamped(obj) for obj in (*workloads, service(ctx), disruption_budget(ctx))]
