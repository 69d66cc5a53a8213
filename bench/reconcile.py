"""The operator at scale on the local plane, each figure beside a baseline measured in the same run.

    python bench/reconcile.py [--counts 100 1000] [--steady-seconds 60] [--webhook-requests 200] [--save FILE]
                              [--json] [--profile DIR [--tracemalloc]]

Once, with the first operator, on the otherwise idle plane: the latency of a warm LLMDeployment create (server-side
dry run, sequential, as `kubectl apply` sends it) with the admission webhook and without it, interleaved in rounds
(the script deletes the operator's webhook configurations and registers them again) so that the machine's other load
falls on both alike; first with no SizingPolicy selecting the namespace (the handlers size the spec and judge it),
then with one (defaulting, policy, quota). Target: the webhook adds < 50 ms at p99.

For each count N (default 100 and 1,000), with a fresh operator process watching a fresh namespace:
  * baseline: N plain Deployments created at once (16 client threads) in another namespace, from each create
    returning to kube-controller-manager's ReplicaSet for it appearing in a watch: its own controller's latency
    under the same burst;
  * apply -> children: N LLMDeployments (Llama 3.1 8B from the built-in catalog, TP 1 pinned, H200: sizing is real
    and offline) created at once the same way, from each create returning to its Deployment appearing in a watch
    (p50, p99; target: p99 within 2x of the baseline's); also each create's own latency through the webhook under
    the burst, beside the plain Deployment creates';
  * apply -> Ready condition (informational: includes scheduling and kwok marking the pods Ready);
  * the operator's RSS once everything is Ready and its write counter has not moved for 10 s, and its peak during
    the burst (target < 300 MiB at 1,000);
  * steady state (target: zero writes) over --steady-seconds after that: the operator's own write counter, and what
    the API server shows changed: LLMDeployments' resourceVersions, rightsizer's managedFields entries on the
    children, Events from rightsizer or kopf.
Progress goes to stderr; the tables (markdown) to stdout.

--profile DIR: the operator samples every thread's stack (bench/profiling/sitecustomize.py; py-spy cannot attach
on the shared machines) into DIR/stacks-<pid>.txt; --tracemalloc adds its largest allocation sites
(DIR/memory-<pid>.txt, and slows it down). Not for the figures.

Needs the local plane (`e2e/cluster/up`); on a shared plane run it under `flock /tmp/plane.lock`. It applies
rightsizer's CRDs (crds/), adds simulated H200 nodes for the run and removes them and its namespaces afterwards. The
operator serves its webhook with the plane's certificate on 127.0.0.1 and manages the webhook configuration.
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


T0 = time.monotonic()


def progress(message: str) -> None:
    """A progress line on stderr (the table goes to stdout)."""
    print(f"[{time.monotonic() - T0:7.1f} s] {message}", file=sys.stderr, flush=True)


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

    def wait(self, timeout: float, what: str = "seen") -> None:
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and time.monotonic() < deadline:
            self._thread.join(min(10.0, max(0.0, deadline - time.monotonic())))
            if self._thread.is_alive():
                progress(f"  {len(self.seen)}/{self.count} {what}")
        self._stop.set()


class Burst:
    """Every name created from CLIENT_THREADS threads: when each create returned, how long each took, which failed."""

    def __init__(self, what: str, create: Callable[[str], Any], names: list[str], seen: FirstSeen | None = None):
        self.returned: dict[str, float] = {}
        self.took: list[float] = []
        self.failed: dict[str, str] = {}
        started = time.perf_counter()
        done = threading.Event()

        def one(name: str) -> None:
            start = time.perf_counter()
            try:
                create(name)
            except client.ApiException as err:  # counted and reported: a 504 from the webhook is a figure too
                self.failed[name] = f"{err.status} {err.reason}"
                return
            self.returned[name] = time.perf_counter()
            self.took.append(self.returned[name] - start)

        def report() -> None:
            while not done.wait(10):
                children = f", {len(seen.seen)} children seen" if seen is not None else ""
                progress(f"  {what}: {len(self.returned)}/{len(names)} created, {len(self.failed)} failed{children}")

        reporter = threading.Thread(target=report, daemon=True)
        reporter.start()
        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            list(pool.map(one, names))
        done.set()
        self.seconds = time.perf_counter() - started
        progress(
            f"  {what}: {len(self.returned)} created in {self.seconds:.1f} s"
            + (f", {len(self.failed)} failed ({sorted(set(self.failed.values()))})" if self.failed else "")
        )


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


def controller_manager_baseline(core: client.CoreV1Api, apps: client.AppsV1Api, count: int) -> dict[str, Any]:
    progress(f"baseline: {count} plain Deployments at once, kube-controller-manager's ReplicaSet for each")
    namespace = new_namespace(core, "bench-base")
    try:
        watcher = FirstSeen(
            apps.list_namespaced_replica_set,
            namespace,
            lambda rs: (rs.metadata.owner_references or [None])[0].name if rs.metadata.owner_references else None,
            count,
        )
        burst = Burst(
            "Deployments",
            lambda n: apps.create_namespaced_deployment(namespace, deployment(n)),
            [f"d{i:04d}" for i in range(count)],
            watcher,
        )
        watcher.wait(600, "ReplicaSets seen")
        result = {
            "childLatencyS": summary(latencies(burst.returned, watcher.seen)),
            "createLatencyS": summary(burst.took),
            "createBurstS": burst.seconds,
            "failed": len(burst.failed),
        }
        progress(f"  ReplicaSets seen for {len(watcher.seen)}: p99 {ms(result['childLatencyS']['p99'])}")
        return result
    finally:
        delete_namespace(core, namespace)


def delete_namespace(core: client.CoreV1Api, namespace: str, timeout: float = 600) -> None:
    """Delete and wait until it is gone, so its garbage collection does not load the next measurement."""
    progress(f"deleting namespace {namespace}")
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
    custom: client.CustomObjectsApi, namespace: str, requests: int, warmup: int = 5
) -> tuple[list[float], int]:
    """Warm sequential creates of one LLMDeployment, dry run (nothing is stored, nothing reconciled): the seconds
    each took, and how many were refused (a refusal is a measurement of the wrong path)."""
    out, refused = [], 0
    for i in range(requests + warmup):
        start = time.perf_counter()
        try:
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, llmd(f"w{i:04d}"), dry_run="All")
        except client.ApiException:
            refused += 1
        if i >= warmup:
            out.append(time.perf_counter() - start)
    return out, refused


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


def profile_env(profile: Path | None, tracemalloc: bool) -> dict[str, str]:
    """The operator samples its own stacks (bench/profiling/sitecustomize.py) into `profile`."""
    if profile is None:
        return {}
    return {
        "PYTHONPATH": f"{REPO / 'bench' / 'profiling'}:{REPO / 'operator'}",
        "RIGHTSIZER_PROFILE_DIR": str(profile),
        **({"RIGHTSIZER_PROFILE_TRACEMALLOC": "1"} if tracemalloc else {}),
    }


def operator_run(
    kubeconfig: str,
    count: int,
    steady_seconds: float,
    webhook_requests: int,
    core: Any,
    custom: Any,
    apps: Any,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    namespace = new_namespace(core, "bench")
    log = Path(tempfile.mkdtemp()) / "operator.log"
    env = {**webhook_env(), "RIGHTSIZER_RECONCILE_INTERVAL_SECONDS": "30", **(extra_env or {})}
    operator = OperatorProcess(kubeconfig, log, env, args=("--namespace", namespace))
    result: dict[str, Any] = {"count": count, "operatorLog": str(log)}
    progress(f"operator for {count} LLMDeployments in {namespace} (log: {log})")
    operator.start()
    rss = RssSampler(operator)
    try:
        wait_for_webhook_configuration()
        if webhook_requests:
            result["webhook"] = webhook_rounds(custom, namespace, webhook_requests)
        watcher = FirstSeen(apps.list_namespaced_deployment, namespace, lambda d: d.metadata.name, count)
        progress(f"{count} LLMDeployments at once ({CLIENT_THREADS} client threads), until each has its Deployment")
        rss.peak = 0.0
        burst = Burst(
            "LLMDeployments",
            lambda n: custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, llmd(n)),
            [f"m{i:04d}" for i in range(count)],
            watcher,
        )
        watcher.wait(600, "Deployments seen")
        result["createBurstS"] = burst.seconds
        result["createLatencyS"] = summary(burst.took)
        result["createFailed"] = len(burst.failed)
        result["childrenLatencyS"] = summary(latencies(burst.returned, watcher.seen))
        progress(f"  Deployments seen for {len(watcher.seen)}: p99 {ms(result['childrenLatencyS']['p99'])}")
        ready: dict[str, float] = {}
        deadline = time.monotonic() + 600
        last_report = time.monotonic()
        while len(ready) < len(burst.returned) and time.monotonic() < deadline:
            for item in custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]:
                conditions = {c["type"]: c["status"] for c in (item.get("status") or {}).get("conditions") or []}
                if conditions.get("Ready") == "True":
                    ready.setdefault(item["metadata"]["name"], time.perf_counter())
            if time.monotonic() - last_report > 10:
                progress(f"  {len(ready)}/{len(burst.returned)} Ready")
                last_report = time.monotonic()
            time.sleep(1)
        result["readyLatencyS"] = summary(latencies(burst.returned, ready)) if ready else None
        progress(f"  {len(ready)} Ready; waiting until the operator has written nothing for 10 s")
        wait_quiet(operator)
        result["operatorRssMiB"] = rss.now()
        result["operatorRssPeakMiB"] = max(rss.peak, result["operatorRssMiB"])
        result["reconciles"] = operator.metric("rightsizer_reconciles_total")
        result["coalesced"] = operator.metric("rightsizer_reconciles_coalesced_total")
        progress(
            f"  settled: RSS {result['operatorRssMiB']:.0f} MiB (peak {rss.peak:.0f}); quiet for {steady_seconds:.0f} s"
        )
        writes_before = operator.metric("rightsizer_api_writes_total")
        seen_before = written_state(core, apps, custom, namespace)
        time.sleep(steady_seconds)
        seen_after = written_state(core, apps, custom, namespace)
        writes_after = operator.metric("rightsizer_api_writes_total")
        result["steadyWritesPerMinute"] = (writes_after - writes_before) * 60 / steady_seconds
        result["steadyWritesSeen"] = changed(seen_before, seen_after)
        result["steadySeconds"] = steady_seconds
        result["operatorRssAfterSteadyMiB"] = rss.now()
        progress(
            f"  steady: {writes_after - writes_before:.0f} writes counted by the operator, "
            f"{len(result['steadyWritesSeen'])} seen at the API server"
        )
    finally:
        rss.stop()
        operator.stop()
        delete_namespace(core, namespace)
    return result


class RssSampler:
    """The operator's resident memory, sampled every second (the peak of the burst) and on demand."""

    def __init__(self, operator: OperatorProcess) -> None:
        assert operator.process is not None
        self.pid = operator.process.pid
        self.peak = 0.0
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def now(self) -> float:
        return rss_mib(self.pid)

    def _run(self) -> None:
        while not self._stop.wait(1):
            try:
                self.peak = max(self.peak, self.now())
            except (OSError, StopIteration):
                return

    def stop(self) -> None:
        self._stop.set()


OPERATOR_COMPONENTS = ("rightsizer", "kopf")  # Event sources that are the operator (its own poster and kopf's)


def written_state(core: Any, apps: Any, custom: Any, namespace: str) -> dict[str, str]:
    """What the operator may have written in the namespace, as the API server has it: each LLMDeployment's
    resourceVersion (only the operator writes them once created), each child's field-manager entries of rightsizer
    (a server-side apply that changed nothing leaves them alone) and the operator's Events with their counts."""
    state: dict[str, str] = {}
    for item in custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]:
        state[f"LLMDeployment/{item['metadata']['name']}"] = item["metadata"]["resourceVersion"]
    policy = client.PolicyV1Api()
    for kind, items in (
        ("Deployment", apps.list_namespaced_deployment(namespace).items),
        ("Service", core.list_namespaced_service(namespace).items),
        ("PodDisruptionBudget", policy.list_namespaced_pod_disruption_budget(namespace).items),
    ):
        for obj in items:
            mine = [
                (m.operation, m.subresource, str(m.time), json.dumps(m.fields_v1, sort_keys=True))
                for m in obj.metadata.managed_fields or []
                if m.manager == "rightsizer"
            ]
            if mine:
                state[f"{kind}/{obj.metadata.name}"] = json.dumps(mine)
    for event in core.list_namespaced_event(namespace).items:
        if (event.source and event.source.component in OPERATOR_COMPONENTS) or (
            event.reporting_component in OPERATOR_COMPONENTS
        ):
            state[f"Event/{event.metadata.name}"] = f"{event.count}/{event.metadata.resource_version}"
    return state


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def set_webhook(saved: list[tuple[str, Any]], on: bool) -> None:
    """Registers the operator's webhook configurations again (from `saved`: (kind, object)) or deletes them; waits
    for the API server's informer to notice (it refreshes within a second on this plane)."""
    admission = client.AdmissionregistrationV1Api()
    calls = {
        "validating": (
            admission.create_validating_webhook_configuration,
            admission.delete_validating_webhook_configuration,
        ),
        "mutating": (admission.create_mutating_webhook_configuration, admission.delete_mutating_webhook_configuration),
    }
    for kind, body in saved:
        create, delete = calls[kind]
        try:
            if on:
                body.metadata.resource_version = None
                body.metadata.uid = None
                create(body)
            else:
                delete(body.metadata.name)
        except client.ApiException as err:
            if err.status not in (404, 409):
                raise
    time.sleep(2)
    present = registered()
    if present != ({kind for kind, _ in saved} if on else set()):
        raise RuntimeError(f"webhook configurations {sorted(present)} registered, expected {'all' if on else 'none'}")


def registered() -> set[str]:
    """Which of the operator's webhook configurations exist."""
    admission = client.AdmissionregistrationV1Api()
    present = set()
    for kind, read in (
        ("validating", admission.read_validating_webhook_configuration),
        ("mutating", admission.read_mutating_webhook_configuration),
    ):
        try:
            read(WEBHOOK_CONFIGURATION)
            present.add(kind)
        except client.ApiException as err:
            if err.status != 404:
                raise
    return present


def webhook_rounds(custom: Any, namespace: str, requests: int, rounds: int = 4) -> dict[str, Any]:
    """Warm dry-run creates of one LLMDeployment (sequential, as `kubectl apply` sends them) with and without the
    admission webhook, interleaved in `rounds` so that the machine's other load falls on both alike: first with no
    SizingPolicy selecting the namespace, then with one (the webhook's full path: defaulting, policy, quota)."""
    admission = client.AdmissionregistrationV1Api()
    saved: list[tuple[str, Any]] = []
    for kind, read in (
        ("validating", admission.read_validating_webhook_configuration),
        ("mutating", admission.read_mutating_webhook_configuration),
    ):
        try:
            saved.append((kind, read(WEBHOOK_CONFIGURATION)))
        except client.ApiException as err:
            if err.status != 404:
                raise
    per_round = max(1, requests // rounds)
    samples: dict[str, list[float]] = {"noWebhookS": [], "webhookNoPolicyS": [], "webhookWithPolicyS": []}
    refused: dict[str, int] = dict.fromkeys(samples, 0)
    for policy in (False, True):
        key = "webhookWithPolicyS" if policy else "webhookNoPolicyS"
        if policy:
            custom.create_cluster_custom_object(GROUP, VERSION, "sizingpolicies", sizing_policy(namespace))
            time.sleep(2)  # into the operator's index
        progress(f"webhook latency, {'a' if policy else 'no'} SizingPolicy selecting the namespace: {rounds} rounds")
        for _ in range(rounds):
            for on in (True, False):
                set_webhook(saved, on)
                which = key if on else "noWebhookS"
                out, failed = webhook_latency(custom, namespace, per_round)
                samples[which] += out
                refused[which] += failed
        if policy:
            custom.delete_cluster_custom_object(GROUP, VERSION, "sizingpolicies", f"bench-{namespace}")
        set_webhook(saved, True)
    result: dict[str, Any] = {k: {**summary(v), "refused": refused[k]} for k, v in samples.items()}
    progress(
        "  p99: no webhook {:.1f} ms, webhook {:.1f} ms, webhook + policy {:.1f} ms".format(
            *(result[k]["p99"] * 1000 for k in ("noWebhookS", "webhookNoPolicyS", "webhookWithPolicyS"))
        )
    )
    return result


def run(
    counts: list[int],
    steady_seconds: float,
    webhook_requests: int,
    save: Path | None = None,
    profile: Path | None = None,
    tracemalloc: bool = False,
    with_baseline: bool = True,
) -> dict[str, Any]:
    kubeconfig = str(localplane.STATE / "admin.kubeconfig")
    config.load_kube_config(kubeconfig)
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = CLIENT_THREADS * 2  # one connection per client thread, and the watches
    client.Configuration.set_default(configuration)
    apply_crds(client.ApiClient())  # before the operator starts: kopf watches LLMDeployments and SizingPolicies
    core, apps, custom = client.CoreV1Api(), client.AppsV1Api(), client.CustomObjectsApi()
    nodes = add_nodes(core, max(0, -(-max(counts) // GPUS_PER_NODE) - 4 + 1))
    progress(f"added {len(nodes)} simulated H200 nodes")
    runs = []
    webhook: dict[str, Any] = {}
    try:
        for i, count in enumerate(counts):
            baseline = controller_manager_baseline(core, apps, count) if with_baseline else None
            requests = webhook_requests if i == 0 else 0
            measured = operator_run(
                kubeconfig, count, steady_seconds, requests, core, custom, apps, profile_env(profile, tracemalloc)
            )
            measured["baseline"] = baseline
            if "webhook" in measured:
                webhook = measured.pop("webhook")
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
        "| LLMDeployments at once | apply -> Deployment p50 / p99 | baseline: Deployment -> ReplicaSet p50 / p99 "
        "(kube-controller-manager, same count) | p99 ratio (target <= 2) | create p50 / p99 (baseline: Deployment "
        "create) | apply -> Ready p50 / p99 | reconciles (coalesced events) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in result["runs"]:
        c, b, rd = r["childrenLatencyS"], r["baseline"]["childLatencyS"], r["readyLatencyS"]
        cr, bc = r["createLatencyS"], r["baseline"]["createLatencyS"]
        ready = f"{ms(rd['p50'])} / {ms(rd['p99'])} ({rd['n']} Ready)" if rd else "none Ready"
        failed = f", {r['createFailed']} failed" if r["createFailed"] else ""
        print(
            f"| {r['count']} (creates took {r['createBurstS']:.1f} s{failed}; baseline "
            f"{r['baseline']['createBurstS']:.1f} s) | {ms(c['p50'])} / {ms(c['p99'])} ({c['n']} seen) "
            f"| {ms(b['p50'])} / {ms(b['p99'])} | **{c['p99'] / b['p99']:.2f}** | {ms(cr['p50'])} / {ms(cr['p99'])} "
            f"({ms(bc['p50'])} / {ms(bc['p99'])}; p99 ×{cr['p99'] / bc['p99']:.1f}) | {ready} "
            f"| {r['reconciles']:.0f} ({r['coalesced']:.0f}) |"
        )
    print()
    print(
        "| LLMDeployments | operator RSS settled (peak during the burst) | target | "
        "steady state: writes the operator counted / changes seen at the API server |"
    )
    print("|---|---|---|---|")
    for r in result["runs"]:
        seen = r["steadyWritesSeen"]
        print(
            f"| {r['count']} | {r['operatorRssMiB']:.0f} MiB ({r['operatorRssPeakMiB']:.0f} MiB) | < 300 MiB at 1,000 "
            f"| {r['steadyWritesPerMinute'] * r['steadySeconds'] / 60:.0f} / {len(seen)} over "
            f"{r['steadySeconds']:.0f} s{(' (' + ', '.join(seen[:5]) + ')') if seen else ''} |"
        )
    w = result["webhook"]
    if w:
        print()
        print(
            "| LLMDeployment create (dry run, warm, sequential, interleaved rounds) | p50 | p99 "
            "| added p99 vs no webhook (target < 50 ms) | p99 ratio |"
        )
        print("|---|---|---|---|---|")
        base = w["noWebhookS"]["p99"]
        for label, key in (
            ("no webhook registered (baseline)", "noWebhookS"),
            ("webhook, no SizingPolicy selects the namespace", "webhookNoPolicyS"),
            ("webhook, a SizingPolicy selects the namespace", "webhookWithPolicyS"),
        ):
            v = w[key]
            refused = f" ({v['refused']} refused)" if v.get("refused") else ""
            print(
                f"| {label}{refused} | {v['p50'] * 1000:.1f} ms | {v['p99'] * 1000:.1f} ms "
                f"| {(v['p99'] - base) * 1000:+.1f} ms | {v['p99'] / base:.2f} |"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--steady-seconds", type=float, default=60.0)
    parser.add_argument("--webhook-requests", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save", type=Path, help="also write the JSON result to this file")
    parser.add_argument("--profile", type=Path, help="the operator samples its stacks into this folder")
    parser.add_argument("--tracemalloc", action="store_true", help="with --profile: also its allocation sites")
    parser.add_argument("--no-baseline", action="store_true", help="diagnostics only: no table")
    args = parser.parse_args()
    result = run(
        args.counts,
        args.steady_seconds,
        args.webhook_requests,
        args.save,
        args.profile,
        args.tracemalloc,
        not args.no_baseline,
    )
    if args.json or args.no_baseline:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
