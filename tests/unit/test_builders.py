"""Child objects: whole-object checks of what the operator applies."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from rightsizer.api.v1alpha1.common import Toleration
from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.facts.gpus import lookup
from rightsizer.kube.builders.children import desired_children
from rightsizer.kube.builders.context import BuildContext, BuildOptions
from rightsizer.sizing import SizingRequest, plan
from rightsizer.sizing.pools import GpuPool
from tests.unit.helpers import facts_of

H200 = GpuPool(
    "h200",
    lookup("H200"),
    8,
    4,
    node_selector={"rightsizer.dev/pool": "h200"},
    tolerations=(Toleration(key="nvidia.com/gpu", operator="Equal", value="present", effect="NoSchedule"),),
)
H100 = GpuPool("h100", lookup("H100"), 8, 2)


def context(model: str, pool: GpuPool, replicas: int = 2, **spec: Any) -> BuildContext:
    spec.setdefault("model", {"name": model})
    parsed = LLMDeploymentSpec.model_validate(spec)
    planned = plan(SizingRequest(parsed, facts_of(model), [pool]), model)
    return BuildContext("chat", "team-a", "uid-1", parsed, planned, pool, replicas)


def by_kind(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objs}


def test_single_node_plan_gives_deployment_service_and_pdb() -> None:
    objs = by_kind(desired_children(context("meta-llama/Llama-3.1-8B-Instruct", H200)))
    assert set(objs) == {"Deployment", "Service", "PodDisruptionBudget"}
    for obj in objs.values():
        meta = obj["metadata"]
        assert meta["namespace"] == "team-a" and meta["name"] == "chat"
        assert meta["labels"]["app.kubernetes.io/name"] == "vllm"
        assert meta["labels"]["app.kubernetes.io/instance"] == "chat"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "rightsizer"
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "rightsizer.dev/v1alpha1",
                "kind": "LLMDeployment",
                "name": "chat",
                "uid": "uid-1",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert "rightsizer.dev/spec-hash" in meta["annotations"]


def test_vllm_container_follows_the_plan() -> None:
    ctx = context("meta-llama/Llama-3.1-70B-Instruct", H200)
    deployment = by_kind(desired_children(ctx))["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert deployment["spec"]["replicas"] == 2
    assert container["args"] == ctx.plan.vllm_args
    assert container["image"] == "vllm/vllm-openai:v0.19.0"
    gpus = str(ctx.plan.gpus_per_replica)
    assert container["resources"]["requests"]["nvidia.com/gpu"] == gpus
    assert container["resources"]["limits"]["nvidia.com/gpu"] == gpus
    assert pod["nodeSelector"] == {"rightsizer.dev/pool": "h200"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
    ]
    assert container["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    # 70B bf16 on two GPUs: 131 GiB of weights need more than the 300 s base budget.
    assert container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"] > 600
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"]["medium"] == "Memory"
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"


def test_discovered_pool_without_selector_selects_the_gpu_product() -> None:
    pod = by_kind(desired_children(context("meta-llama/Llama-3.1-8B-Instruct", H100)))["Deployment"]
    spec = pod["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_hf_token_and_model_cache() -> None:
    ctx = context(
        "meta-llama/Llama-3.1-8B-Instruct",
        H200,
        serving={"hfTokenSecretRef": {"name": "hf"}, "modelCacheClaim": "models"},
    )
    pod = by_kind(desired_children(ctx))["Deployment"]["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["HF_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "hf", "key": "token"}}
    cache = next(v for v in pod["volumes"] if v["name"] == "model-cache")
    assert cache["persistentVolumeClaim"] == {"claimName": "models"}


def test_multi_node_plan_gives_a_leader_worker_set() -> None:
    ctx = context("meta-llama/Llama-3.1-405B-Instruct", H100, replicas=1)
    objs = by_kind(desired_children(ctx))
    assert set(objs) == {"LeaderWorkerSet", "Service", "PodDisruptionBudget"}
    lws = objs["LeaderWorkerSet"]
    template = lws["spec"]["leaderWorkerTemplate"]
    assert template["size"] == 2
    leader = template["leaderTemplate"]["spec"]["containers"][0]
    worker = template["workerTemplate"]["spec"]["containers"][0]
    assert leader["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "8"
    script = leader["args"][0]
    assert "--tensor-parallel-size 8" in script and "--pipeline-parallel-size 2" in script
    assert "--distributed-executor-backend ray" in script and "exec vllm serve" in script
    assert "LWS_LEADER_ADDRESS" in worker["args"][0]
    assert "readinessProbe" in leader and "readinessProbe" not in worker
    assert objs["Service"]["spec"]["selector"]["leaderworkerset.sigs.k8s.io/worker-index"] == "0"


def test_children_are_deterministic_and_the_hash_tracks_content() -> None:
    first = desired_children(context("meta-llama/Llama-3.1-8B-Instruct", H200))
    again = desired_children(context("meta-llama/Llama-3.1-8B-Instruct", H200))
    assert first == again
    scaled = desired_children(context("meta-llama/Llama-3.1-8B-Instruct", H200, replicas=3))
    hashes = [o["metadata"]["annotations"]["rightsizer.dev/spec-hash"] for o in (first[0], scaled[0])]
    assert hashes[0] != hashes[1]


@pytest.mark.parametrize("replicas", [0, 1, 5])
def test_replica_count_is_passed_through(replicas: int) -> None:
    objs = by_kind(desired_children(context("meta-llama/Llama-3.1-8B-Instruct", H200, replicas=replicas)))
    assert objs["Deployment"]["spec"]["replicas"] == replicas


# --- hardened pods: the restricted Pod Security Standard --------------------------------------------------------

# The restricted profile's checks (k8s.io/pod-security-admission v0.35 policy/check_*.go), for what a vLLM pod
# can set; the baseline checks it could fail (host namespaces, privileged, hostPath, host ports) too.
RESTRICTED_VOLUME_SOURCES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"
}  # fmt: skip


def container_violations(container: dict[str, Any], pod_sc: dict[str, Any]) -> list[str]:
    sc, name = container.get("securityContext", {}), container["name"]
    capabilities = sc.get("capabilities", {})
    seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
    checks = {
        "privileged": sc.get("privileged") is True,
        "allowPrivilegeEscalation != false": sc.get("allowPrivilegeEscalation") is not False,
        "unrestricted capabilities": "ALL" not in capabilities.get("drop", []),
        "added capabilities": bool(set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}),
        "runAsNonRoot != true": sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True,
        "runAsUser=0": sc.get("runAsUser") == 0,
        "seccompProfile": seccomp not in ("RuntimeDefault", "Localhost"),
        "hostPort": any(p.get("hostPort") for p in container.get("ports", [])),
    }
    return [f"{name}: {check}" for check, failed in checks.items() if failed]


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    pod_sc = pod.get("securityContext", {})
    problems = [key for key in ("hostNetwork", "hostPID", "hostIPC") if pod.get(key)]
    problems += [f"volume {v['name']}" for v in pod.get("volumes", []) if set(v) - {"name"} - RESTRICTED_VOLUME_SOURCES]
    if pod_sc.get("runAsUser") == 0:
        problems.append("runAsUser=0")
    for container in pod["containers"]:
        problems += container_violations(container, pod_sc)
    return problems


def pod_specs(ctx: BuildContext) -> list[dict[str, Any]]:
    workload = by_kind(desired_children(ctx)).get("Deployment") or by_kind(desired_children(ctx))["LeaderWorkerSet"]
    if workload["kind"] == "Deployment":
        return [workload["spec"]["template"]["spec"]]
    template = workload["spec"]["leaderWorkerTemplate"]
    return [template["leaderTemplate"]["spec"], template["workerTemplate"]["spec"]]


HARDENING_CASES = {
    "single node": context("meta-llama/Llama-3.1-8B-Instruct", H200),
    "multi-node (leader and worker)": context("meta-llama/Llama-3.1-405B-Instruct", H100, replicas=1),
}


@pytest.mark.parametrize("ctx", HARDENING_CASES.values(), ids=HARDENING_CASES.keys())
def test_vllm_pods_pass_the_restricted_pod_security_standard(ctx: BuildContext) -> None:
    """Before: no securityContext at all, so a namespace enforcing `restricted` refused every vLLM pod."""
    for pod in pod_specs(ctx):
        assert restricted_violations(pod) == []
        assert pod["automountServiceAccountToken"] is False
        assert pod["enableServiceLinks"] is False
        assert pod["securityContext"] == {
            "seccompProfile": {"type": "RuntimeDefault"},
            "runAsNonRoot": True,
            "runAsUser": 2000,
            "runAsGroup": 2000,
            "fsGroup": 2000,
            "fsGroupChangePolicy": "OnRootMismatch",
        }
        [container] = pod["containers"]
        assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert (env["HOME"], env["USER"], env["HF_HOME"]) == ("/home/vllm", "vllm", "/cache/huggingface")
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/home/vllm", "/tmp", "/cache/huggingface", "/dev/shm"} <= mounts
        assert not any(path.startswith("/root") for path in mounts)  # a non-root user cannot enter /root


@pytest.mark.parametrize("ctx", HARDENING_CASES.values(), ids=HARDENING_CASES.keys())
def test_every_writable_volume_is_size_limited(ctx: BuildContext) -> None:
    for pod in pod_specs(ctx):
        for volume in pod["volumes"]:
            assert "sizeLimit" in volume["emptyDir"], volume["name"]


def test_the_model_cache_holds_twice_the_planned_weights() -> None:
    ctx = context("meta-llama/Llama-3.1-8B-Instruct", H200)
    [pod] = pod_specs(ctx)
    cache = next(v for v in pod["volumes"] if v["name"] == "model-cache")
    weights = ctx.plan.memory.weights_gib_per_gpu * ctx.plan.gpus_per_replica  # about 15 GiB of bf16 weights
    assert 14 < weights < 16
    assert cache["emptyDir"]["sizeLimit"] == f"{math.ceil(2 * weights + 10)}Gi"


def test_run_as_user_zero_runs_as_root_as_the_upstream_image_does() -> None:
    base = context("meta-llama/Llama-3.1-8B-Instruct", H200)
    ctx = dataclasses.replace(base, options=BuildOptions(run_as_user=0))
    [pod] = pod_specs(ctx)
    assert pod["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert "runAsNonRoot != true" in restricted_violations(pod)[0]
    assert pod["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}


# --- the disruption budget of multi-node replicas ---------------------------------------------------------------


def groups_down_after_evicting(pods: list[tuple[int, int]], max_unavailable: int, groups: int = 2) -> set[int]:
    """LeaderWorkerSet groups (of two pods) a drain takes down when it asks the eviction API for `pods`
    (group, index) at once, as kubectl drain does (one request per pod, concurrently).

    Each granted eviction decrements the budget's disruptionsAllowed in the same write that admits it (kubernetes
    pkg/registry/core/pod/storage/eviction.go), before LeaderWorkerSet has restarted the evicted pod's group
    (RecreateGroupOnPodRestart), so the burst is bounded by maxUnavailable pods, not by groups. Afterwards the whole
    group is unhealthy, which only lowers disruptionsAllowed further (healthy - (expected - maxUnavailable))."""
    expected = 2 * groups
    allowed = expected - (expected - max_unavailable)  # all pods healthy when the drain starts
    down: set[int] = set()
    for group, _ in pods:
        if group in down or allowed > 0:
            allowed -= 1
            down.add(group)
    return down


def test_one_drain_never_takes_two_multi_node_replicas_down() -> None:
    """Two groups of two nodes; a drain of two nodes that hold one pod of each group. Before, maxUnavailable was
    nodes-per-replica (2): both evictions passed and both replicas went down."""
    ctx = context("meta-llama/Llama-3.1-405B-Instruct", H100, replicas=2)
    assert ctx.plan.nodes_per_replica == 2
    budget = by_kind(desired_children(ctx))["PodDisruptionBudget"]["spec"]
    assert budget["selector"]["matchLabels"] == ctx.selector()  # leaders and workers of every group
    drain = [(0, 0), (1, 1)]  # group 0's leader and group 1's worker
    assert groups_down_after_evicting(drain, budget["maxUnavailable"]) == {0}
    assert groups_down_after_evicting(drain, ctx.plan.nodes_per_replica) == {0, 1}  # the old budget
