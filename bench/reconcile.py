"""The operator at scale on the local plane: 100 LLMDeployments applied at once.

    python bench/reconcile.py [--count 100] [--steady-seconds 60] [--json]

Measures, in one run:
  * apply-to-children latency: from the LLMDeployment's create returning to its Deployment existing (p50, p99), and
    to its Ready condition; baseline: the API server creating a comparable Deployment directly (the floor);
  * the operator's RSS once everything is reconciled;
  * API writes per minute in steady state (target 0), from the operator's own write counter.
Needs the local plane (`e2e/cluster/up`), best otherwise idle; applies rightsizer's CRDs (crds/, as the integration
tests do: the plane serves only LeaderWorkerSet's), adds simulated H200 nodes for the run and removes them afterwards.
The operator under test watches only the benchmark's namespace.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "operator"))

from kubernetes import client, config, watch  # noqa: E402

from e2e.cluster import localplane  # noqa: E402
from tests.integration.crds import apply_crds  # noqa: E402
from tests.integration.operator import OperatorProcess  # noqa: E402

GROUP, VERSION, PLURAL = "rightsizer.dev", "v1alpha1", "llmdeployments"
GPUS_PER_NODE = 8


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def add_nodes(core: client.CoreV1Api, count: int) -> list[str]:
    """More simulated H200 nodes, copied from the plane's first one (kwok makes them Ready)."""
    template = client.ApiClient().sanitize_for_serialization(core.read_node("h200-0"))
    names = []
    for i in range(count):
        name = f"bench-h200-{i}"
        node = copy.deepcopy(template)
        node["metadata"] = {
            "name": name,
            "labels": {**template["metadata"]["labels"], "kubernetes.io/hostname": name},
            "annotations": template["metadata"].get("annotations", {}),
        }
        core.create_node(node)
        names.append(name)
    return names


def llmd(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LLMDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": "meta-llama/Llama-3.1-8B-Instruct"},
            "serving": {"maxModelLen": 8192},
            "gpu": {"products": ["H200"], "tensorParallelSize": 1},
        },
    }


def deployment_baseline(apps: client.AppsV1Api, namespace: str, count: int) -> list[float]:
    latencies = []
    for i in range(count):
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": f"baseline-{i}"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"b": str(i)}},
                "template": {
                    "metadata": {"labels": {"b": str(i)}},
                    "spec": {"containers": [{"name": "c", "image": "x"}]},
                },
            },
        }
        start = time.perf_counter()
        apps.create_namespaced_deployment(namespace, body)
        latencies.append(time.perf_counter() - start)
    return latencies


def run(count: int, steady_seconds: float) -> dict[str, Any]:
    kubeconfig = str(localplane.STATE / "admin.kubeconfig")
    config.load_kube_config(kubeconfig)
    apply_crds(client.ApiClient())  # before the operator starts: kopf watches LLMDeployments and SizingPolicies
    core, apps, custom = client.CoreV1Api(), client.AppsV1Api(), client.CustomObjectsApi()
    nodes = add_nodes(core, max(0, -(-count // GPUS_PER_NODE) - 4 + 1))
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace}})
    log = Path(tempfile.mkdtemp()) / "operator.log"
    operator = OperatorProcess(
        kubeconfig, log, {"RIGHTSIZER_RECONCILE_INTERVAL_SECONDS": "30"}, args=("--namespace", namespace)
    )
    operator.start()
    created: dict[str, float] = {}
    children: dict[str, float] = {}
    stop = threading.Event()

    def watch_deployments() -> None:
        w = watch.Watch()
        for event in w.stream(apps.list_namespaced_deployment, namespace, timeout_seconds=600):
            name = event["object"].metadata.name
            children.setdefault(name, time.perf_counter())
            if stop.is_set() or len(children) >= count:
                w.stop()

    watcher = threading.Thread(target=watch_deployments, daemon=True)
    watcher.start()
    try:
        started = time.perf_counter()
        for i in range(count):
            name = f"m{i:03d}"
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, llmd(name))
            created[name] = time.perf_counter()
        ready: dict[str, float] = {}
        deadline = time.monotonic() + 600
        while len(ready) < count and time.monotonic() < deadline:
            for item in custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]:
                conditions = {c["type"]: c["status"] for c in (item.get("status") or {}).get("conditions") or []}
                if conditions.get("Ready") == "True":
                    ready.setdefault(item["metadata"]["name"], time.perf_counter())
            time.sleep(0.5)
        all_ready = time.perf_counter() - started
        time.sleep(5)
        rss_kib = int(
            next(
                line.split()[1]
                for line in Path(f"/proc/{operator.process.pid}/status").read_text().splitlines()
                if line.startswith("VmRSS")
            )
        )  # type: ignore[union-attr]
        writes_before = operator.metric("rightsizer_api_writes_total")
        time.sleep(steady_seconds)
        writes_after = operator.metric("rightsizer_api_writes_total")
        baseline = deployment_baseline(apps, namespace, 20)
    finally:
        stop.set()
        operator.stop()
        core.delete_namespace(namespace)
        for name in nodes:
            core.delete_node(name)
    to_children = [children[n] - created[n] for n in created if n in children]
    to_ready = [ready[n] - created[n] for n in created if n in ready]
    return {
        "count": count,
        "childrenLatencyS": {"p50": statistics.median(to_children), "p99": percentile(to_children, 0.99)},
        "readyLatencyS": {"p50": statistics.median(to_ready), "p99": percentile(to_ready, 0.99)},
        "ready": len(to_ready),
        "allReadyS": all_ready,
        "baselineCreateS": {"p50": statistics.median(baseline), "p99": percentile(baseline, 0.99)},
        "operatorRssMiB": rss_kib / 1024,
        "steadyWritesPerMinute": (writes_after - writes_before) * 60 / steady_seconds,
        "steadySeconds": steady_seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--steady-seconds", type=float, default=60.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.count, args.steady_seconds)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    c, r, b = result["childrenLatencyS"], result["readyLatencyS"], result["baselineCreateS"]
    print(
        f"{result['count']} LLMDeployments applied at once; {result['ready']} Ready after {result['allReadyS']:.1f} s"
    )
    print(
        f"apply -> Deployment exists: p50 {c['p50'] * 1000:.0f} ms, p99 {c['p99'] * 1000:.0f} ms "
        f"(baseline, the API server creating a Deployment directly: p50 {b['p50'] * 1000:.1f} ms)"
    )
    print(f"apply -> Ready condition:   p50 {r['p50']:.2f} s, p99 {r['p99']:.2f} s")
    print(f"operator RSS: {result['operatorRssMiB']:.0f} MiB")
    print(
        f"API writes per minute in steady state: {result['steadyWritesPerMinute']:.1f} "
        f"(over {result['steadySeconds']:.0f} s; target 0)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
