"""A LeaderWorkerSet for plans where one replica spans nodes: vLLM's multi-node recipe on Ray.

The leader starts the Ray head, waits until every worker of its group has joined, then runs `vllm serve` with the
planned TP × PP and the Ray executor; workers join the leader's Ray cluster and block. LWS restarts the whole group
when any pod fails (RecreateGroupOnPodRestart), which is what a pipeline-parallel engine needs.
"""

from __future__ import annotations

from rightsizer.kube.builders.context import BuildContext
from rightsizer.kube.builders.pod import JSON, pod_spec, vllm_container

LWS_API_VERSION = "leaderworkerset.x-k8s.io/v1"
RAY_PORT = 6379
JOIN_TIMEOUT_SECONDS = 1200


def _leader_script(ctx: BuildContext) -> str:
    import shlex

    nodes = ctx.plan.nodes_per_replica
    serve = " ".join(
        shlex.quote(a) for a in ["vllm", "serve", *ctx.plan.vllm_args, "--distributed-executor-backend", "ray"]
    )
    return "\n".join(
        [
            "set -eu",
            f"ray start --head --port={RAY_PORT}",
            f"deadline=$(( $(date +%s) + {JOIN_TIMEOUT_SECONDS} ))",
            f'until [ "$(ray list nodes --filter state=ALIVE --format json 2>/dev/null | grep -c node_id)" '
            f"-ge {nodes} ]; do",
            '  [ "$(date +%s)" -lt "$deadline" ] || { echo "workers did not join in time" >&2; exit 1; }',
            "  sleep 5",
            "done",
            f"exec {serve}",
        ]
    )


def _worker_script() -> str:
    return f"set -eu\nexec ray start --address=$LWS_LEADER_ADDRESS:{RAY_PORT} --block"


def leader_worker_set(ctx: BuildContext) -> JSON:
    leader = vllm_container(ctx, command=["/bin/bash", "-c"], args=[_leader_script(ctx)])
    worker = vllm_container(ctx, command=["/bin/bash", "-c"], args=[_worker_script()])
    # Only the leader serves HTTP; workers are healthy while their Ray process runs.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        worker.pop(probe)
    worker.pop("ports")
    return {
        "apiVersion": LWS_API_VERSION,
        "kind": "LeaderWorkerSet",
        "metadata": ctx.workload_metadata(),
        "spec": {
            "replicas": ctx.replicas,
            "startupPolicy": "LeaderCreated",
            # One headless Service per group ("<name>-<index>"): the default Shared policy names it "<name>", which
            # is the name of rightsizer's own Service.
            "networkConfig": {"subdomainPolicy": "UniquePerReplica"},
            "rolloutStrategy": {
                "type": "RollingUpdate",
                "rollingUpdateConfiguration": {"maxSurge": 0, "maxUnavailable": 1},
            },
            "leaderWorkerTemplate": {
                "size": ctx.plan.nodes_per_replica,
                "restartPolicy": "RecreateGroupOnPodRestart",
                "leaderTemplate": {"metadata": {"labels": ctx.labels()}, "spec": pod_spec(ctx, leader)},
                "workerTemplate": {"metadata": {"labels": ctx.labels()}, "spec": pod_spec(ctx, worker)},
            },
        },
    }
