"""The vLLM pod: container, resources, probes, volumes, node placement, security context. Shared by Deployment and
LeaderWorkerSet.

Hardened to the restricted Pod Security Standard (docs/security.md): no service-account token (vLLM and Ray never
call the Kubernetes API), the runtime's default seccomp profile, no privilege escalation, every capability
dropped, a non-root user (BuildOptions.run_as_user), and every writable volume size-limited.

The upstream image (vllm/vllm-openai) declares no user and keeps its caches under /root, which a non-root user
cannot enter; vLLM runs under any user id when HOME is writable and USER is set (torch's inductor calls
getpass.getuser(), which looks at USER before /etc/passwd, where the id has no entry). So HOME and /tmp are
emptyDirs and the Hugging Face cache is mounted outside /root.
"""

from __future__ import annotations

import math
from typing import Any

from rightsizer.api import constants as c
from rightsizer.kube.builders.context import BuildContext
from rightsizer.sizing.vllm_args import VLLM_PORT

JSON = dict[str, Any]
HF_CACHE = "/cache/huggingface"
HOME = "/home/vllm"
USER = "vllm"
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
    variables: list[JSON] = [
        {"name": "HF_HOME", "value": HF_CACHE},
        {"name": "HOME", "value": HOME},
        {"name": "USER", "value": USER},
    ]
    ref = ctx.spec.serving.hf_token_secret_ref
    if ref is not None:
        variables.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    return variables


def model_cache_limit(ctx: BuildContext) -> str:
    """Room for the whole checkpoint, which every pod downloads (pipeline stages too): twice the planned weights of
    a replica (a 16-bit checkpoint quantized to fp8 on load is twice its weights in memory) plus 10 GiB for
    tokenizer, configs and partial downloads. A pod that writes more is evicted instead of filling the node."""
    weights_gib = ctx.plan.memory.weights_gib_per_gpu * ctx.plan.gpus_per_replica
    return f"{math.ceil(2 * weights_gib + 10)}Gi"


def volumes(ctx: BuildContext) -> tuple[list[JSON], list[JSON]]:
    claim = ctx.spec.serving.model_cache_claim
    cache: JSON = (
        {"persistentVolumeClaim": {"claimName": claim}}
        if claim
        else {"emptyDir": {"sizeLimit": model_cache_limit(ctx)}}
    )
    scratch = {"emptyDir": {"sizeLimit": ctx.options.scratch_size}}
    vols = [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": ctx.options.shm_size}},
        {"name": "model-cache", **cache},
        {"name": "home", **scratch},
        {"name": "tmp", **scratch},
    ]
    mounts = [
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "model-cache", "mountPath": HF_CACHE},
        {"name": "home", "mountPath": HOME},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    return vols, mounts


def pod_security(ctx: BuildContext) -> JSON:
    """The pod's securityContext: the runtime's default seccomp profile; a non-root user unless run_as_user is 0,
    with its group owning the volumes (OnRootMismatch: a warm model cache is not re-chowned at every start)."""
    context: JSON = {"seccompProfile": {"type": "RuntimeDefault"}}
    user = ctx.options.run_as_user
    if user:
        context.update(
            runAsNonRoot=True, runAsUser=user, runAsGroup=user, fsGroup=user, fsGroupChangePolicy="OnRootMismatch"
        )
    return context


CONTAINER_SECURITY: JSON = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def vllm_container(ctx: BuildContext, *, command: list[str] | None = None, args: list[str] | None = None) -> JSON:
    _, mounts = volumes(ctx)
    container: JSON = {
        "name": "vllm",
        "image": ctx.image,
        "ports": [{"name": "http", "containerPort": VLLM_PORT, "protocol": "TCP"}],
        "env": env(ctx),
        "resources": resources(ctx),
        "volumeMounts": mounts,
        "securityContext": dict(CONTAINER_SECURITY),
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
        # vLLM and Ray never call the Kubernetes API: no token to steal from a compromised model server.
        "automountServiceAccountToken": False,
        # No Docker-link variables: a Service named "vllm" in the namespace would set VLLM_PORT=tcp://..., which
        # vLLM reads as its own port setting and refuses to start.
        "enableServiceLinks": False,
        "securityContext": pod_security(ctx),
        "containers": [container],
        "volumes": vols,
        "terminationGracePeriodSeconds": 60,
    }
