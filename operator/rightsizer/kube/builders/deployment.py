"""A Deployment of vLLM pods, for plans where one replica fits on one node."""

from __future__ import annotations

from rightsizer.kube.builders.context import BuildContext
from rightsizer.kube.builders.pod import JSON, pod_spec, vllm_container


def deployment(ctx: BuildContext) -> JSON:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": ctx.workload_metadata(),
        "spec": {
            "replicas": ctx.replicas,
            "selector": {"matchLabels": ctx.workload_selector()},
            # GPU pools rarely have a spare node: replace pods one at a time instead of surging.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": ctx.labels()},
                "spec": pod_spec(ctx, vllm_container(ctx)),
            },
        },
    }
