"""kopf wiring: indexes that mirror the cluster, and handlers that each call the reconciler in a line or two.

Reconciliation is level-based: any event on an LLMDeployment, on one of its children or pods, or a change of the
GPU pools marks the LLMDeployments it concerns as due in a coalescing work queue (controller.workqueue), whose
workers run the same idempotent reconcile from the indexes' latest state: a burst of events for one object costs
one reconcile. A background loop re-checks everything every RIGHTSIZER_RECONCILE_INTERVAL_SECONDS as a safety net
(no timers, so no finalizer on user objects). The event handlers are async and only enqueue, so kopf's thread pool
(index functions, probes) and the admission webhook's own threads never wait behind reconciles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import kopf
from pydantic import ValidationError

from rightsizer.adapters.files import load_pools
from rightsizer.adapters.hub import HubClient
from rightsizer.adapters.k8s import Kube, TemporaryApiError
from rightsizer.adapters.settings import OperatorSettings
from rightsizer.adapters.webhook_tls import SelfManagedTls
from rightsizer.api import constants as c
from rightsizer.api.v1alpha1.common import Condition
from rightsizer.api.v1alpha1.sizingpolicy import SizingPolicy
from rightsizer.controller import metrics, series
from rightsizer.controller.autoscaler import Autoscaler, autoscaler_from
from rightsizer.controller.observed import INDEXES, live_llmds, observed_of
from rightsizer.controller.reconcile import Reconciler
from rightsizer.controller.runtime import MEMO_KEY, PEERING_KEY, Runtime, runtime_of
from rightsizer.controller.supervision import LoopHealth, stale, supervise
from rightsizer.controller.workqueue import WorkQueue
from rightsizer.errors import validation_messages
from rightsizer.kube.status import policy_status
from rightsizer.policy import policy_problems

log = logging.getLogger("rightsizer")
LLMD = (c.GROUP, c.VERSION, c.LLMD_PLURAL)
MANAGED = {c.LABEL_MANAGED_BY: c.MANAGED_BY}
CHILD_RESOURCES = (
    ("apps", "v1", "deployments"),
    ("leaderworkerset.x-k8s.io", "v1", "leaderworkersets"),
    ("", "v1", "services"),
    ("policy", "v1", "poddisruptionbudgets"),
)

HEALTH_KEY = "loop_health"
BACKGROUND_TASKS = ("resync", "webhook_tls", "autoscale")  # memo keys of the supervised loops' tasks


def reconcile_all(runtime: Runtime | None, indices: Mapping[str, Any], namespace: str | None = None) -> dict[Any, int]:
    """Every live LLMDeployment (of one namespace) due; returns the queue's tickets (controller.workqueue.wait).
    Without a queue, reconciles them here."""
    live = live_llmds(indices, namespace)
    keys = [(str(b["metadata"]["namespace"]), str(b["metadata"]["name"])) for b in live]
    if namespace is None:  # a pass over every deployment: drop the series of those that are gone
        series.prune(keys)
    if runtime is None:
        return {}
    if runtime.queue is not None:
        return runtime.queue.enqueue_all(keys)
    for body in live:
        reconcile_one(runtime, body, indices)
    return {}


def due(runtime: Runtime | None, namespace: str, name: str, indices: Mapping[str, Any]) -> None:
    """This LLMDeployment needs a reconcile: queued (coalesced with any already due), or run here without a queue."""
    if runtime is None:
        return
    if runtime.queue is not None:
        runtime.queue.enqueue((namespace, name))
        return
    reconcile_key(runtime, (namespace, name), indices)


def reconcile_key(runtime: Runtime | None, key: tuple[str, str], indices: Mapping[str, Any]) -> None:
    """The queue's work: reconcile the LLMDeployment from the index's latest body (gone: nothing to do)."""
    for body in list(indices["llmds"].get(key, [])):
        reconcile_one(runtime, body, indices)


def reconcile_one(runtime: Runtime | None, body: Mapping[str, Any], indices: Mapping[str, Any]) -> None:
    if runtime is None or body.get("metadata", {}).get("deletionTimestamp"):
        return
    reconciler = runtime.reconciler
    namespace, name = str(body["metadata"]["namespace"]), str(body["metadata"]["name"])
    with metrics.RECONCILE_SECONDS.time():  # one at a time per object: the work queue never runs a key twice at once
        try:
            events = reconciler.reconcile(body, observed_of(namespace, name, indices))
        except TemporaryApiError as err:
            metrics.RECONCILES.labels("retry").inc()
            log.warning("reconcile of %s/%s will be retried: %s", namespace, name, err)
            return
        except Exception:
            metrics.RECONCILES.labels("error").inc()
            log.exception("reconcile of %s/%s failed; it is retried on the next event or resync", namespace, name)
            return
    metrics.RECONCILES.labels("ok").inc()
    for event in events:
        try:
            reconciler.kube.post_event(
                body, type_=event.type, reason=event.reason, message=event.message, now=reconciler.clock()
            )
        except TemporaryApiError as err:
            log.warning("event %s on %s/%s not posted: %s", event.reason, namespace, name, err)


# --- indexes: the operator's view of the cluster, kept current by watches ------------------------------------
# Async: each is a dictionary lookup, not worth a hop to kopf's thread pool per watch event.


def slim(body: Mapping[str, Any]) -> dict[str, Any]:
    """What an index keeps of an object: a compact copy of all of it but metadata.managedFields, which nothing here
    reads. Each watch event is parsed on its own, so every object would otherwise hold its own copy of every key
    ("metadata", "labels", ...) and of short repeated values ("True", "apps/v1", label values); interned, they are
    shared. Per LLMDeployment with its three children and a pod, about 180 KiB -> 43 KiB (docs/benchmarks.md,
    *Under load*), for about 50 microseconds per event."""
    meta = body.get("metadata") or {}
    kept: dict[str, Any] = _compact({**body, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}})
    return kept


def _compact(value: Any) -> Any:
    if isinstance(value, dict):
        return {sys.intern(k): _compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    if isinstance(value, str) and len(value) <= 64:
        return sys.intern(value)
    return value


@kopf.index(*LLMD)
async def llmds(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[tuple[str | None, str], dict[str, Any]]:
    return {(namespace, name): slim(body)}


async def _child_index(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
    instance = labels.get(c.LABEL_INSTANCE)
    return {(namespace, instance): slim(body)} if instance else {}


for _group, _version, _plural in CHILD_RESOURCES:
    kopf.index(_group, _version, _plural, labels=MANAGED, id="children")(_child_index)


@kopf.index("", "v1", "pods", labels=MANAGED)
async def pods(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return await _child_index(namespace, labels, body)


@kopf.index("", "v1", "nodes", labels={c.GFD_PRODUCT: kopf.PRESENT})
async def gpu_nodes(body: kopf.Body, **_: Any) -> dict[None, dict[str, Any]]:
    return {None: slim(body)}


@kopf.index(c.GROUP, c.VERSION, c.POLICY_PLURAL)
async def sizing_policies(body: kopf.Body, **_: Any) -> dict[None, SizingPolicy]:
    """Parsed once per change; a policy the schema allowed but the model rejects is logged and left out."""
    try:
        return {None: SizingPolicy.model_validate(dict(body))}
    except ValidationError as err:
        log.warning("SizingPolicy %s ignored: %s", body.get("metadata", {}).get("name"), err)
        return {}


@kopf.index("", "v1", "namespaces")
async def namespaces(name: str, labels: Mapping[str, str], **_: Any) -> dict[str, dict[str, str]]:
    return {name: dict(labels)}


# kopf retries a failed API request with these delays and then gives up; its own default (1, 1, 2, …, 21: 54 s in all)
# is shorter than an API server restart can take, and when its resource observer gives up the whole operator exits
# (tests/integration/test_supervision.py: a 60 s outage that began just before a scan stopped the operator with
# "Resource observer has failed"). These keep retrying for 174 s, 30 s apart at most.
API_ERROR_BACKOFFS = (1.0, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 30.0, 30.0, 30.0, 30.0)


# --- handlers -------------------------------------------------------------------------------------------------


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    config = OperatorSettings()
    settings.persistence.finalizer = c.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=c.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=c.GROUP)
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.reconnect_backoff = 1.0
    settings.networking.error_backoffs = API_ERROR_BACKOFFS
    kube = Kube.from_environment()
    reconciler = Reconciler(kube, config, HubClient.from_env(platform_token=False) if config.allow_hub else None)
    if config.pools_file is not None:
        reconciler.declared_pools = load_pools(Path(config.pools_file))
    runtime = Runtime(reconciler, peering=memo.get(PEERING_KEY))
    memo[MEMO_KEY] = runtime
    memo[HEALTH_KEY] = health = LoopHealth()
    if config.webhook_enabled:
        _serve_admission(settings, config, memo, kube, health)
    if config.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(config.metrics_port, addr=config.metrics_address)
        log.info("metrics on %s:%d/metrics", config.metrics_address, config.metrics_port)
    indices = {name: kwargs[name] for name in INDEXES}
    runtime.queue = WorkQueue(
        lambda key: reconcile_key(runtime, key, indices),
        workers=config.reconcile_workers,
        on_coalesced=metrics.RECONCILES_COALESCED.inc,
    )
    metrics.RECONCILE_QUEUE_DEPTH.set_function(runtime.queue.depth)
    memo["autoscaler"] = autoscaler = autoscaler_from(reconciler, config)
    for name, interval, one_pass in (
        ("resync", config.reconcile_interval_seconds, lambda: _resync_pass(runtime, indices)),
        ("autoscale", config.autoscale_interval_seconds, lambda: _autoscale_pass(runtime, autoscaler, indices)),
    ):
        memo[name] = _start_loop(name, interval, one_pass, health, config)


def _start_loop(
    name: str, interval: float, one_pass: Callable[[], Awaitable[object]], health: LoopHealth, config: OperatorSettings
) -> asyncio.Task[None]:
    """A background loop under supervision (controller.supervision): restarted after errors, watched by /healthz."""
    health.register(name, interval, config.loop_grace_seconds, time.monotonic())
    return asyncio.create_task(supervise(name, one_pass, health, clock=time.monotonic), name=f"rightsizer-{name}")


def _serve_admission(
    settings: kopf.OperatorSettings, config: OperatorSettings, memo: kopf.Memo, kube: Kube, health: LoopHealth
) -> None:
    """The admission webhook server (controller.webhooks registers the handlers) with explicit certificates, or with
    self-managed ones (adapters.webhook_tls) that a background task keeps renewed; kopf reloads changed files."""

    def path(value: Path | None) -> str | None:
        return str(value) if value is not None else None

    cert, key, ca = config.webhook_cert_file, config.webhook_key_file, config.webhook_ca_file
    if config.webhook_self_managed_tls:
        tls = SelfManagedTls(kube, config)
        files = tls.ensure()
        cert, key, ca = files.cert, files.key, files.ca
        memo["webhook_tls"] = _start_loop(
            "webhook_tls",
            config.webhook_tls_check_interval_seconds,
            lambda: asyncio.to_thread(tls.ensure),  # renews when due, picks up another replica's renewal
            health,
            config,
        )
    settings.admission.server = kopf.WebhookServer(
        addr=config.webhook_host,
        port=config.webhook_port,
        host=config.webhook_url_host or config.webhook_host,
        certfile=path(cert),
        pkeyfile=path(key),
        cafile=path(ca),
    )
    if config.webhook_manage_configuration:
        settings.admission.managed = config.webhook_configuration_name


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    runtime = runtime_of(memo)
    if runtime is not None:
        if runtime.queue is not None:
            runtime.queue.stop()
        runtime.admission.shutdown(wait=False, cancel_futures=True)
    for name in BACKGROUND_TASKS:
        task = memo.get(name)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if memo.get("autoscaler") is not None:
        await memo["autoscaler"].aclose()


@kopf.on.probe(id="loops")
def loops_probe(memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    """/healthz (the chart's liveness and readiness probe) fails while a background loop is dead or has not
    completed a pass within its deadline; otherwise it reports how long ago each loop last completed one."""
    health = memo.get(HEALTH_KEY)
    if not isinstance(health, LoopHealth):
        return {}  # before the startup handler: kopf's own start-up decides
    now = time.monotonic()
    problems = stale(health, now)
    if problems:
        # PermanentError: kopf fails the probe at once (other errors would be retried inside the request).
        raise kopf.PermanentError("; ".join(problems))
    return {name: {"lastPassSecondsAgo": round(now - r.since, 1)} for name, r in sorted(health.loops.items())}


async def _resync_pass(runtime: Runtime, indices: Mapping[str, Any]) -> None:
    """Re-check every LLMDeployment: retries after transient errors, picks up Hub recoveries. Only while no peer
    outranks this process; an unreadable peering state fails the pass (supervise retries it)."""
    if await asyncio.to_thread(runtime.paused):
        return
    tickets = reconcile_all(runtime, indices)
    if runtime.queue is not None:  # the pass completes once each was reconciled (a stuck worker stalls the loop)
        await asyncio.to_thread(runtime.queue.wait, tickets)


async def _autoscale_pass(runtime: Runtime, autoscaler: Autoscaler, indices: Mapping[str, Any]) -> None:
    """The SLO autoscaler's pass (controller.autoscaler); like the resync, only while no peer outranks us."""
    if await asyncio.to_thread(runtime.paused):
        autoscaler.reset()
        return
    deployments = [
        (body, observed_of(str(body["metadata"]["namespace"]), str(body["metadata"]["name"]), indices))
        for body in live_llmds(indices)
    ]
    await autoscaler.run_once(deployments)


@kopf.on.event(*LLMD)
async def llmd_changed(type: str, body: kopf.Body, memo: kopf.Memo, **indices: Any) -> None:  # kopf names it `type`
    runtime = runtime_of(memo)
    if runtime is None:
        return
    meta = body.get("metadata", {})
    if type == "DELETED":
        runtime.reconciler.forget(str(meta.get("uid")))
        return
    due(runtime, str(meta["namespace"]), str(meta["name"]), indices)


async def _owner_changed(namespace: str | None, labels: Mapping[str, str], memo: kopf.Memo, **indices: Any) -> None:
    owner = labels.get(c.LABEL_INSTANCE)
    if namespace is not None and owner and indices["llmds"].get((namespace, owner)):
        due(runtime_of(memo), namespace, owner, indices)


for _group, _version, _plural in (*CHILD_RESOURCES, ("", "v1", "pods")):
    kopf.on.event(_group, _version, _plural, labels=MANAGED, id=f"owner-of-{_plural}")(_owner_changed)


@kopf.on.event("", "v1", "nodes", labels={c.GFD_PRODUCT: kopf.PRESENT})
async def gpu_node_changed(memo: kopf.Memo, **indices: Any) -> None:
    """A GPU node appeared, left or changed: if the pools changed, every LLMDeployment may need a new plan."""
    runtime = runtime_of(memo)
    if runtime is None:
        return
    pools = await asyncio.to_thread(runtime.reconciler.pools, list(indices["gpu_nodes"].get(None, [])))
    fingerprint = repr([(p.name, p.product, p.gpus_per_node, p.max_nodes) for p in pools])
    if fingerprint == runtime.pools_fingerprint:
        return
    runtime.pools_fingerprint = fingerprint
    reconcile_all(runtime, indices)


@kopf.on.event(c.GROUP, c.VERSION, c.POLICY_PLURAL)
async def policy_changed(type: str, body: kopf.Body, memo: kopf.Memo, **indices: Any) -> None:  # kopf: `type`
    """A policy changed: its Accepted condition is refreshed, and every LLMDeployment it might select is judged
    again (running replicas stay)."""
    runtime = runtime_of(memo)
    if type != "DELETED" and runtime is not None and not await asyncio.to_thread(runtime.paused):
        await asyncio.to_thread(_write_policy_status, runtime.reconciler, body)
    reconcile_all(runtime, indices)


def _write_policy_status(reconciler: Reconciler, body: kopf.Body) -> None:
    try:
        policy = SizingPolicy.model_validate(dict(body))
    except ValidationError as err:
        problems = validation_messages(err)
        generation = int(body.get("metadata", {}).get("generation", 0))
    else:
        problems = policy_problems(policy.spec)
        generation = int(policy.metadata.get("generation", 0))
    previous = body.get("status") or {}
    old = [Condition.model_validate(x) for x in previous.get("conditions") or []]
    status = policy_status(generation, problems, old, reconciler.clock())
    if all(previous.get(k) == v for k, v in status.items()):
        return
    try:
        reconciler.kube.patch_status(c.API_VERSION, c.POLICY_KIND, None, str(body["metadata"]["name"]), status)
    except TemporaryApiError as err:
        log.warning("status of SizingPolicy %s not written: %s", body["metadata"]["name"], err)


@kopf.on.event("", "v1", "namespaces")
async def namespace_labels_changed(name: str, memo: kopf.Memo, **indices: Any) -> None:
    """Namespace labels decide which policies apply."""
    reconcile_all(runtime_of(memo), indices, namespace=name)
