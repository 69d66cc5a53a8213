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
    """Voluntary disruptions (drains, upgrades) take down at most one replica at a time: one pod, for single-node
    and multi-node replicas alike.

    A multi-node replica is a LeaderWorkerSet group: a leader and its workers, all carrying the same selector
    labels, and the group serves only while every one of its pods does (RecreateGroupOnPodRestart restarts the
    whole group when one pod goes). A drain asks to evict every pod of its nodes at once, and the eviction API
    grants as many as maxUnavailable before any group has restarted (each grant decrements disruptionsAllowed in the
    write that admits it): a budget of nodes-per-replica pods let a drain take one pod of group A and one of group B,
    two replicas down. With one pod, the first eviction takes its group down, and the group's pods are then
    unhealthy until it is back, which holds every further eviction off meanwhile."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": ctx.metadata(),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": ctx.selector()}},
    }
