"""The operator at scale on the local plane, each figure beside a baseline measured in the same run.

    python bench/reconcile.py [--counts 100 1000] [--steady-seconds 60] [--webhook-requests 200] [--json]

For each count N (default 100 and 1,000), with a fresh operator process watching a fresh namespace:
  * apply -> children: N LLMDeployments created at once (16 client threads), from each create returning to its
    Deployment appearing in a watch (p50, p99); baseline: N plain Deployments created at once the same way in another
    namespace, from each create returning to kube-controller-manager's ReplicaSet for it appearing (its own
    controller's latency under the same burst; target: the operator's p99 within 2x of it);
  * apply -> Ready condition (informational: includes scheduling and kwok marking the pods Ready);
  * the operator's RSS once every child exists and the burst has been reconciled (target < 300 MiB at 1,000);
  * API writes per minute in steady state (target 0), from the operator's own write counter.
Once, with the first operator: the latency of a warm LLMDeployment create (server-side dry run, one request after
the other, as `kubectl apply` sends it) through the admission webhook, with a SizingPolicy selecting the namespace
(the webhook's full path: defaulting, policy, sizing, quota) and without one (the handlers return early); baseline:
the same requests with no webhook registered (target: the webhook adds < 50 ms at p99).

Needs the local plane (`e2e/cluster/up`), otherwise idle; applies rightsizer's CRDs (crds/), adds simulated H200 nodes
for the run and removes them afterwards. The operator serves its webhook with the plane's certificate on 127.0.0.1
and manages the webhook configuration; the script deletes that configuration before the no-webhook baseline.
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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "operator"))

from kubernetes import client, config, watch  # noqa: E402

from e2e.cluster import localplane  # noqa: E402
from tests.integration.conftest import webhook_env  # noqa: E402
from tests.integration.crds import apply_crds  # noqa: E402
from tests.integration.operator import OperatorProcess  # noqa: E402

GROUP, VERSION, PLURAL = "rightsizer.dev", "v1alpha1", "llmdeployments"
GPUS_PER_NODE = 8


WEBHOOK_CONFIGURATION = "rightsizer.dev"  # RIGHTSIZER_WEBHOOK_CONFIGURATION_NAME's default
CLIENT_THREADS = 16  # "applied at once": what a GitOps sync or a script with a worker pool sends


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(values), "p99": percentile(values, 0.99), "n": len(values)}


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


def deployment(name: str) -> dict[str, Any]:
    """The baseline object: no replicas (kube-controller-manager still creates its ReplicaSet), so the burst of
    pods the LLMDeployments bring is not part of the baseline's work."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"b": name}},
            "template": {"metadata": {"labels": {"b": name}}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
        },
    }


class FirstSeen:
    """Watches a namespaced list and records when each key first appears (a thread; started before the burst)."""

    def __init__(self, list_fn: Callable[..., Any], namespace: str, key: Callable[[Any], str | None], count: int):
        self.seen: dict[str, float] = {}
        self.count = count
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(list_fn, namespace, key), daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self, list_fn: Callable[..., Any], namespace: str, key: Callable[[Any], str | None]) -> None:
        version = list_fn(namespace).metadata.resource_version
        self._ready.set()
        w = watch.Watch()
        for event in w.stream(list_fn, namespace, resource_version=version, timeout_seconds=900):
            name = key(event["object"])
            if name is not None:
                self.seen.setdefault(name, time.perf_counter())
            if self._stop.is_set() or len(self.seen) >= self.count:
                w.stop()

    def wait(self, timeout: float) -> None:
        self._thread.join(timeout)
        self._stop.set()


def create_at_once(create: Callable[[str], Any], names: list[str]) -> dict[str, float]:
    """Creates every name from CLIENT_THREADS threads; returns when each create returned."""
    returned: dict[str, float] = {}

    def one(name: str) -> None:
        create(name)
        returned[name] = time.perf_counter()

    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        list(pool.map(one, names))
    return returned


def latencies(created: dict[str, float], seen: dict[str, float]) -> list[float]:
    return [seen[n] - created[n] for n in created if n in seen]


def new_namespace(core: client.CoreV1Api, prefix: str, labels: dict[str, str] | None = None) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name, "labels": labels or {}}})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the ServiceAccount admission plugin refuses pods until `default` exists
        try:
            core.read_namespaced_service_account("default", name)
            break
        except client.ApiException:
            time.sleep(0.2)
    return name


def controller_manager_baseline(core: client.CoreV1Api, apps: client.AppsV1Api, count: int) -> dict[str, float]:
    namespace = new_namespace(core, "bench-base")
    try:
        watcher = FirstSeen(
            apps.list_namespaced_replica_set,
            namespace,
            lambda rs: (rs.metadata.owner_references or [None])[0].name if rs.metadata.owner_references else None,
            count,
        )
        created = create_at_once(
            lambda n: apps.create_namespaced_deployment(namespace, deployment(n)), [f"d{i:04d}" for i in range(count)]
        )
        watcher.wait(300)
        return summary(latencies(created, watcher.seen))
    finally:
        delete_namespace(core, namespace)


def delete_namespace(core: client.CoreV1Api, namespace: str, timeout: float = 300) -> None:
    """Delete and wait until it is gone, so its garbage collection does not load the next measurement."""
    core.delete_namespace(namespace)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            core.read_namespace(namespace)
        except client.ApiException as err:
            if err.status == 404:
                return
        time.sleep(1)


def webhook_latency(
    custom: client.CustomObjectsApi, namespace: str, requests: int, warmup: int = 10
) -> dict[str, float]:
    """Warm sequential creates of one LLMDeployment, dry run (nothing is stored, nothing reconciled)."""
    out, refused = [], 0
    for i in range(requests + warmup):
        start = time.perf_counter()
        try:
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, llmd(f"w{i:04d}"), dry_run="All")
        except client.ApiException:
            refused += 1  # counted: a refusal is a measurement of the wrong path
        if i >= warmup:
            out.append(time.perf_counter() - start)
    return {**summary(out), "refused": refused}


def wait_for_webhook_configuration(timeout: float = 60) -> None:
    admission = client.AdmissionregistrationV1Api()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            admission.read_validating_webhook_configuration(WEBHOOK_CONFIGURATION)
            return
        except client.ApiException:
            time.sleep(0.5)
    raise TimeoutError(f"the operator did not register ValidatingWebhookConfiguration {WEBHOOK_CONFIGURATION}")


def sizing_policy(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SizingPolicy",
        "metadata": {"name": f"bench-{namespace}"},
        "spec": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "limits": {"maxGpusPerReplica": 8, "namespaceQuota": [{"maxGpus": 100000}]},
        },
    }


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return int(next(line.split()[1] for line in status if line.startswith("VmRSS"))) / 1024


def wait_quiet(operator: OperatorProcess, seconds: float = 10, timeout: float = 300) -> None:
    """Until the operator's write counter has not moved for `seconds` (the burst fully reconciled)."""
    deadline, last, since = time.monotonic() + timeout, -1.0, time.monotonic()
    while time.monotonic() < deadline:
        writes = operator.metric("rightsizer_api_writes_total")
        if writes != last:
            last, since = writes, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return
        time.sleep(1)


def operator_run(
    kubeconfig: str, count: int, steady_seconds: float, webhook_requests: int, core: Any, custom: Any, apps: Any
) -> dict[str, Any]:
    namespace = new_namespace(core, "bench")
    log = Path(tempfile.mkdtemp()) / "operator.log"
    env = {**webhook_env(), "RIGHTSIZER_RECONCILE_INTERVAL_SECONDS": "30"}
    operator = OperatorProcess(kubeconfig, log, env, args=("--namespace", namespace))
    result: dict[str, Any] = {"count": count}
    if webhook_requests:  # first, on the idle plane: no webhook registered, no operator
        result["noWebhookS"] = no_webhook_baseline(custom, namespace, webhook_requests)
    operator.start()
    try:
        if webhook_requests:
            wait_for_webhook_configuration()
            result["webhookNoPolicyS"] = webhook_latency(custom, namespace, webhook_requests)
            custom.create_cluster_custom_object(GROUP, VERSION, "sizingpolicies", sizing_policy(namespace))
            time.sleep(2)  # into the operator's index
            result["webhookWithPolicyS"] = webhook_latency(custom, namespace, webhook_requests)
            custom.delete_cluster_custom_object(GROUP, VERSION, "sizingpolicies", f"bench-{namespace}")
        watcher = FirstSeen(apps.list_namespaced_deployment, namespace, lambda d: d.metadata.name, count)
        started = time.perf_counter()
        created = create_at_once(
            lambda n: custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, llmd(n)),
            [f"m{i:04d}" for i in range(count)],
        )
        result["createBurstS"] = time.perf_counter() - started
        watcher.wait(300)
        result["childrenLatencyS"] = summary(latencies(created, watcher.seen))
        result["allChildrenS"] = max(watcher.seen.values(), default=started) - started
        ready: dict[str, float] = {}
        deadline = time.monotonic() + 300
        while len(ready) < count and time.monotonic() < deadline:
            for item in custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]:
                conditions = {c["type"]: c["status"] for c in (item.get("status") or {}).get("conditions") or []}
                if conditions.get("Ready") == "True":
                    ready.setdefault(item["metadata"]["name"], time.perf_counter())
            time.sleep(1)
        result["readyLatencyS"] = summary(latencies(created, ready)) if ready else None
        wait_quiet(operator)
        assert operator.process is not None
        result["operatorRssMiB"] = rss_mib(operator.process.pid)
        writes_before = operator.metric("rightsizer_api_writes_total")
        time.sleep(steady_seconds)
        writes_after = operator.metric("rightsizer_api_writes_total")
        result["steadyWritesPerMinute"] = (writes_after - writes_before) * 60 / steady_seconds
        result["steadySeconds"] = steady_seconds
        result["operatorRssAfterSteadyMiB"] = rss_mib(operator.process.pid)
    finally:
        operator.stop()
        delete_namespace(core, namespace)
    return result


def no_webhook_baseline(custom: Any, namespace: str, requests: int) -> dict[str, float]:
    """The same dry-run creates with no admission webhook registered (before the operator that registers it runs;
    one an earlier operator left behind is deleted)."""
    admission = client.AdmissionregistrationV1Api()
    for delete in (
        admission.delete_validating_webhook_configuration,
        admission.delete_mutating_webhook_configuration,
    ):
        try:
            delete(WEBHOOK_CONFIGURATION)
        except client.ApiException as err:
            if err.status != 404:
                raise
    return webhook_latency(custom, namespace, requests)


def run(counts: list[int], steady_seconds: float, webhook_requests: int, save: Path | None = None) -> dict[str, Any]:
    kubeconfig = str(localplane.STATE / "admin.kubeconfig")
    config.load_kube_config(kubeconfig)
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = CLIENT_THREADS * 2  # one connection per client thread, and the watches
    client.Configuration.set_default(configuration)
    apply_crds(client.ApiClient())  # before the operator starts: kopf watches LLMDeployments and SizingPolicies
    core, apps, custom = client.CoreV1Api(), client.AppsV1Api(), client.CustomObjectsApi()
    nodes = add_nodes(core, max(0, -(-max(counts) // GPUS_PER_NODE) - 4 + 1))
    runs = []
    webhook: dict[str, Any] = {}
    try:
        for i, count in enumerate(counts):
            baseline = controller_manager_baseline(core, apps, count)
            requests = webhook_requests if i == 0 else 0
            measured = operator_run(kubeconfig, count, steady_seconds, requests, core, custom, apps)
            measured["baselineReplicaSetLatencyS"] = baseline
            for key in ("noWebhookS", "webhookNoPolicyS", "webhookWithPolicyS"):
                if key in measured:
                    webhook[key] = measured.pop(key)
            runs.append(measured)
            if save is not None:  # after each count: a later count that runs out of time keeps the earlier ones
                save.write_text(json.dumps({"runs": runs, "webhook": webhook}, indent=2))
    finally:
        for name in nodes:
            core.delete_node(name)
    return {"runs": runs, "webhook": webhook}


def ms(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"


def print_table(result: dict[str, Any]) -> None:
    print(
        "| LLMDeployments at once | apply -> Deployment p50 / p99 | kube-controller-manager Deployment -> ReplicaSet "
        "p50 / p99 (same count) | p99 ratio (target <= 2) | apply -> Ready p50 / p99 | operator RSS | "
        "steady writes/min |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in result["runs"]:
        c, b, rd = r["childrenLatencyS"], r["baselineReplicaSetLatencyS"], r["readyLatencyS"]
        ready = f"{ms(rd['p50'])} / {ms(rd['p99'])} ({rd['n']} Ready)" if rd else "none Ready"
        print(
            f"| {r['count']} (creates took {r['createBurstS']:.1f} s) | {ms(c['p50'])} / {ms(c['p99'])} "
            f"({c['n']} seen) | {ms(b['p50'])} / {ms(b['p99'])} | {c['p99'] / b['p99']:.2f} | {ready} | "
            f"{r['operatorRssMiB']:.0f} MiB | {r['steadyWritesPerMinute']:.1f} over {r['steadySeconds']:.0f} s |"
        )
    w = result["webhook"]
    if w:
        print()
        print(
            "| LLMDeployment create (dry run, warm, sequential) | p50 | p99 "
            "| added p99 vs no webhook (target < 50 ms) |"
        )
        print("|---|---|---|---|")
        base = w["noWebhookS"]["p99"]
        for label, key in (
            ("no webhook registered (baseline)", "noWebhookS"),
            ("webhook, no SizingPolicy selects the namespace", "webhookNoPolicyS"),
            ("webhook, a SizingPolicy selects the namespace", "webhookWithPolicyS"),
        ):
            v = w[key]
            print(
                f"| {label} | {v['p50'] * 1000:.1f} ms | {v['p99'] * 1000:.1f} ms "
                f"| {(v['p99'] - base) * 1000:+.1f} ms |"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--steady-seconds", type=float, default=60.0)
    parser.add_argument("--webhook-requests", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save", type=Path, help="also write the JSON result to this file")
    args = parser.parse_args()
    result = run(args.counts, args.steady_seconds, args.webhook_requests, args.save)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
