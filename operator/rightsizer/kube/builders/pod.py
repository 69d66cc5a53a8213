"""The vLLM pod: container, resources, probes, volumes, node placement. Shared by Deployment and LeaderWorkerSet."""

from __future__ import annotations

import math
from typing import Any

from rightsizer.api import constants as c
from rightsizer.kube.builders.context import BuildContext
from rightsizer.sizing.vllm_args import VLLM_PORT

JSON = dict[str, Any]
HF_CACHE = "/root/.cache/huggingface"
PROBE_PERIOD_SECONDS = 10


def node_placement(ctx: BuildContext) -> JSON:
    """nodeSelector and tolerations of the chosen pool; GPU pools carry the nvidia.com/gpu taint by convention."""
    pool = ctx.pool
    selector = dict(pool.node_selector) or {c.GFD_PRODUCT: pool.product}
    tolerations = [t.to_wire() for t in pool.tolerations] or [
        {"key": c.GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
    ]
    return {"nodeSelector": dict(sorted(selector.items())), "tolerations": tolerations}


def spread_replicas(ctx: BuildContext) -> JSON:
    """Prefer one replica per node, so losing a node loses one replica."""
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": {"matchLabels": ctx.selector()},
                        "topologyKey": "kubernetes.io/hostname",
                    },
                }
            ]
        }
    }


def resources(ctx: BuildContext) -> JSON:
    """GPUs exactly as planned; host memory for loading weights, the CPU swap space vLLM reserves (4 GiB/GPU) and
    the process itself."""
    gpus = ctx.gpus_per_pod
    weights = ctx.plan.memory.weights_gib_per_gpu * gpus
    memory_gib = math.ceil(weights * 1.2 + 4 * gpus + 8)
    cpu = 2 * gpus + 2
    return {
        "requests": {"cpu": str(cpu), "memory": f"{memory_gib}Gi", c.GPU_RESOURCE: str(gpus)},
        "limits": {"memory": f"{memory_gib}Gi", c.GPU_RESOURCE: str(gpus)},
    }


def probes(ctx: BuildContext) -> JSON:
    health = {"path": "/health", "port": "http"}
    budget = ctx.startup_budget_seconds()
    return {
        "startupProbe": {
            "httpGet": health,
            "periodSeconds": PROBE_PERIOD_SECONDS,
            "failureThreshold": budget // PROBE_PERIOD_SECONDS,
        },
        "readinessProbe": {"httpGet": health, "periodSeconds": PROBE_PERIOD_SECONDS, "failureThreshold": 3},
        "livenessProbe": {"httpGet": health, "periodSeconds": 30, "failureThreshold": 5, "timeoutSeconds": 10},
    }


def env(ctx: BuildContext) -> list[JSON]:
    variables: list[JSON] = [{"name": "HF_HOME", "value": HF_CACHE}]
    ref = ctx.spec.serving.hf_token_secret_ref
    if ref is not None:
        variables.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    return variables


def volumes(ctx: BuildContext) -> tuple[list[JSON], list[JSON]]:
    claim = ctx.spec.serving.model_cache_claim
    cache: JSON = {"persistentVolumeClaim": {"claimName": claim}} if claim else {"emptyDir": {}}
    vols = [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": ctx.options.shm_size}},
        {"name": "model-cache", **cache},
    ]
    mounts = [{"name": "dshm", "mountPath": "/dev/shm"}, {"name": "model-cache", "mountPath": HF_CACHE}]
    return vols, mounts


def vllm_container(ctx: BuildContext, *, command: list[str] | None = None, args: list[str] | None = None) -> JSON:
    _, mounts = volumes(ctx)
    container: JSON = {
        "name": "vllm",
        "image": ctx.image,
        "ports": [{"name": "http", "containerPort": VLLM_PORT, "protocol": "TCP"}],
        "env": env(ctx),
        "resources": resources(ctx),
        "volumeMounts": mounts,
        **probes(ctx),
    }
    if command is not None:
        container["command"] = command
    container["args"] = list(ctx.plan.vllm_args) if args is None else args
    return container


def pod_spec(ctx: BuildContext, container: JSON) -> JSON:
    vols, _ = volumes(ctx)
    return {
        **node_placement(ctx),
        "affinity": spread_replicas(ctx),
        "containers": [container],
        "volumes": vols,
        "terminationGracePeriodSeconds": 60,
    }
