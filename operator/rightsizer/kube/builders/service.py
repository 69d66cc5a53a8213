"""The Service in front of the replicas (OpenAI-compatible API on port `http`) and the PodDisruptionBudget."""

from __future__ import annotations

from rightsizer.kube.builders.context import BuildContext
from rightsizer.kube.builders.pod import JSON
from rightsizer.sizing.vllm_args import VLLM_PORT

LWS_WORKER_INDEX = "leaderworkerset.sigs.k8s.io/worker-index"


def service(ctx: BuildContext) -> JSON:
    selector = ctx.selector()
    if ctx.multi_node:
        selector = {**selector, LWS_WORKER_INDEX: "0"}  # only leaders serve
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": ctx.metadata(),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": VLLM_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def disruption_budget(ctx: BuildContext) -> JSON:
    """Voluntary disruptions (drains, upgrades) take at most one replica's pods at a time."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": ctx.metadata(),
        "spec": {
            "maxUnavailable": 1 if not ctx.multi_node else ctx.plan.nodes_per_replica,
            "selector": {"matchLabels": ctx.selector()},
        },
    }
