"""Child objects: whole-object checks of what the operator applies."""

from __future__ import annotations

from typing import Any

import pytest

from rightsizer.api.v1alpha1.common import Toleration
from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.facts.gpus import lookup
from rightsizer.kube.builders.children import desired_children
from rightsizer.kube.builders.context import BuildContext
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
