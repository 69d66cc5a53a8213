"""Small helpers for tests against a real API server: bounded waits and readable views of pods and nodes."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.integration.objects import labels, meta, pod_spec, pod_status

T = TypeVar("T")

POOL_LABEL = "rightsizer.dev/pool"  # set on every simulated node by e2e/cluster/up (see e2e/cluster/pools.yaml)
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

# Contexts that look like throw-away test clusters; anything else needs RIGHTSIZER_ALLOW_CONTEXT=<context name>.
TEST_CONTEXT_PREFIXES = ("rightsizer-local", "kind-", "kwok-", "k3d-", "minikube", "envtest")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.25) -> T:
    """Calls `check` until it returns a truthy value, which is returned; fails the test after `timeout` seconds.

    The last value `check` returned (or raised) goes into the failure message, so a timeout says what was seen.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except ApiException as exc:  # e.g. 404 before the object exists
            last = f"{exc.status} {exc.reason}"
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}; last seen: {last!r}")
        time.sleep(interval)


def looks_like_test_cluster(context_name: str, server: str) -> bool:
    """A local API server or a context named like a disposable cluster."""
    return context_name.startswith(TEST_CONTEXT_PREFIXES) or urlparse(server).hostname in LOOPBACK_HOSTS


def current_context(kubeconfig: str) -> tuple[str, str]:
    """(context name, API server URL) of the current context; KUBECONFIG may list several files (first wins)."""
    merged: dict[str, Any] = {"contexts": [], "clusters": []}
    for path in filter(None, kubeconfig.split(os.pathsep)):
        data = yaml.safe_load(Path(path).read_text()) or {}
        merged.setdefault("current-context", data.get("current-context"))
        merged["contexts"] += data.get("contexts") or []
        merged["clusters"] += data.get("clusters") or []
    name = merged.get("current-context") or ""
    context = next((c["context"] for c in merged["contexts"] if c["name"] == name), None)
    if context is None:
        raise ValueError(f"{kubeconfig}: no current context")
    cluster = next(c["cluster"] for c in merged["clusters"] if c["name"] == context["cluster"])
    return name, cluster["server"]


def condition(pod: client.V1Pod, kind: str) -> client.V1PodCondition | None:
    """The pod's condition of type `kind`, if any."""
    return next((c for c in (pod_status(pod).conditions or []) if c.type == kind), None)


def is_ready(pod: client.V1Pod) -> bool:
    ready = condition(pod, "Ready")
    return pod_status(pod).phase == "Running" and ready is not None and ready.status == "True"


def pods(core: client.CoreV1Api, namespace: str, selector: str = "") -> list[client.V1Pod]:
    return core.list_namespaced_pod(namespace, label_selector=selector).items


def ready_pods(core: client.CoreV1Api, namespace: str, selector: str, count: int) -> list[client.V1Pod] | None:
    """The pods matching `selector` once exactly `count` of them exist and all are Ready."""
    found = pods(core, namespace, selector)
    return found if len(found) == count and all(map(is_ready, found)) else None


def unschedulable_message(core: client.CoreV1Api, namespace: str, name: str) -> str | None:
    """The scheduler's explanation once it has marked the pod unschedulable."""
    pod = core.read_namespaced_pod(name, namespace)
    scheduled = condition(pod, "PodScheduled")
    if scheduled is not None and scheduled.status == "False" and scheduled.reason == "Unschedulable":
        return scheduled.message
    return None


def node_pool(core: client.CoreV1Api, node_name: str) -> str | None:
    return labels(core.read_node(node_name)).get(POOL_LABEL)


def gone(read: Callable[[], Any]) -> bool:
    """True once `read` raises 404."""
    try:
        read()
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def describe_pods(core: client.CoreV1Api, namespace: str) -> str:
    """One line per pod (phase, node, conditions) for assertion messages."""
    lines = []
    for pod in pods(core, namespace):
        status = pod_status(pod)
        conditions = ", ".join(
            f"{c.type}={c.status}" + (f" ({c.message})" if c.status == "False" and c.message else "")
            for c in status.conditions or []
        )
        lines.append(f"{meta(pod).name}: {status.phase} on {pod_spec(pod).node_name or '-'} [{conditions}]")
    return "\n".join(lines) or "(no pods)"


def gpu_container(gpus: int, name: str = "vllm") -> dict[str, Any]:
    """A container asking for `gpus` NVIDIA GPUs (extended resources go in limits; requests default to them).

    The image is never pulled: kwok marks pods Running without a kubelet.
    """
    return {
        "name": name,
        "image": "registry.invalid/vllm-openai:test",
        "resources": {"limits": {"nvidia.com/gpu": str(gpus), "cpu": "4", "memory": "64Gi"}},
    }


def gpu_tenants(core: client.CoreV1Api) -> list[str]:
    """Every pod bound to a GPU node, in any namespace, as `namespace/name on node (N GPUs, phase)`: what a test that
    needs whole GPU nodes finds left over by another (a namespace being deleted, a leaked object)."""
    gpu_nodes = {meta(n).name for n in core.list_node().items if labels(n).get(GPU_PRODUCT_LABEL)}
    tenants = []
    for pod in core.list_pod_for_all_namespaces().items:
        node = pod_spec(pod).node_name
        if node not in gpu_nodes:
            continue
        gpus = sum(
            int((c.resources.limits or {}).get("nvidia.com/gpu", 0)) for c in pod_spec(pod).containers if c.resources
        )
        deleting = " deleting" if meta(pod).deletion_timestamp else ""
        tenants.append(
            f"{meta(pod).namespace}/{meta(pod).name} on {node} ({gpus} GPUs, {pod_status(pod).phase}{deleting})"
        )
    return sorted(tenants)


def wait_for_empty_gpu_nodes(core: client.CoreV1Api, timeout: float = 120) -> None:
    """Waits until no pod holds a GPU node (the last test's namespace may still be terminating); fails naming the
    pods that stay, so a test that needs whole nodes never fails as "timed out" on another test's leftovers."""
    deadline = time.monotonic() + timeout
    while tenants := gpu_tenants(core):
        if time.monotonic() >= deadline:
            raise AssertionError(f"GPU nodes still hold other pods after {timeout:.0f}s: {'; '.join(tenants[:12])}")
        time.sleep(1)


def gpu_nodes_report(core: client.CoreV1Api) -> str:
    """Each GPU node's readiness, taints and the pods on it: what a scheduling timeout message needs."""
    lines = []
    for node in core.list_node().items:
        if not labels(node).get(GPU_PRODUCT_LABEL):
            continue
        status = node.status
        ready = next((c.status for c in (status.conditions or []) if c.type == "Ready"), "?") if status else "?"
        taints = ",".join(f"{t.key}:{t.effect}" for t in (node.spec.taints or [])) if node.spec else ""
        lines.append(f"{meta(node).name}: Ready={ready} taints=[{taints}]")
    return "; ".join(lines + gpu_tenants(core))
