"""kopf wiring: indexes that mirror the cluster, and handlers that each call the reconciler in a line or two.

Reconciliation is level-based: any event on an LLMDeployment, on one of its children or pods, or a change of the
GPU pools triggers the same idempotent reconcile; a background loop re-checks everything every
RIGHTSIZER_RECONCILE_INTERVAL_SECONDS as a safety net (no timers, so no finalizer on user objects).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf
from pydantic import ValidationError

from rightsizer import metrics
from rightsizer.api import constants as c
from rightsizer.api.v1alpha1.common import Condition
from rightsizer.api.v1alpha1.sizingpolicy import SizingPolicy
from rightsizer.autoscaler import Autoscaler, autoscaler_from
from rightsizer.ha import (
    CLUSTER_PEERING_KIND,
    NAMESPACED_PEERING_KIND,
    PEERING_GROUP,
    PEERING_VERSION,
    Peering,
    should_pause,
)
from rightsizer.hub import HubClient
from rightsizer.k8s import Kube, TemporaryApiError
from rightsizer.policy import policy_problems
from rightsizer.reconcile import Observed, Reconciler
from rightsizer.settings import OperatorSettings
from rightsizer.status import policy_status

log = logging.getLogger("rightsizer")
LLMD = (c.GROUP, c.VERSION, c.LLMD_PLURAL)
MANAGED = {c.LABEL_MANAGED_BY: c.MANAGED_BY}
CHILD_RESOURCES = (
    ("apps", "v1", "deployments"),
    ("leaderworkerset.x-k8s.io", "v1", "leaderworkersets"),
    ("", "v1", "services"),
    ("policy", "v1", "poddisruptionbudgets"),
)

INDEXES = ("llmds", "children", "pods", "gpu_nodes", "sizing_policies", "namespaces")
_locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)


class State:
    """The process-wide reconciler, created at startup, and this process's peering (None: standalone)."""

    reconciler: Reconciler | None = None
    pools_fingerprint: str = ""
    peering: Peering | None = None


def paused() -> bool:
    """Whether a peer with a higher or equal priority is alive, so this process must not act (see rightsizer.ha)."""
    reconciler, peering = State.reconciler, State.peering
    if reconciler is None or peering is None:
        return False
    api_version, now = PEERING_GROUP + "/" + PEERING_VERSION, datetime.now(UTC)
    if not peering.namespaces:
        peers = reconciler.kube.read_status(api_version, CLUSTER_PEERING_KIND, peering.name)
        return should_pause(peers or {}, peering, now)
    # kopf pauses everything while any namespace's peering says so (one toggle per namespace, paused if any is on).
    return any(
        should_pause(
            reconciler.kube.read_status(api_version, NAMESPACED_PEERING_KIND, peering.name, ns) or {}, peering, now
        )
        for ns in peering.namespaces
    )


def _observed(namespace: str, name: str, indices: Mapping[str, Any]) -> Observed:
    key = (namespace, name)
    children = {}
    for body in indices["children"].get(key, []):
        children[(str(body["kind"]), str(body["metadata"]["name"]))] = body
    neighbours = [
        body
        for (ns, other), bodies in list(indices["llmds"].items())
        if ns == namespace and other != name
        for body in bodies
    ]
    return Observed(
        children=children,
        pods=list(indices["pods"].get(key, [])),
        nodes=list(indices["gpu_nodes"].get(None, [])),
        policies=list(indices["sizing_policies"].get(None, [])),
        namespace_labels=dict(next(iter(indices["namespaces"].get(namespace, [])), {})),
        neighbours=neighbours,
    )


def live_llmds(indices: Mapping[str, Any], namespace: str | None = None) -> list[kopf.Body]:
    """The indexed LLMDeployments (of one namespace, or all) whose namespace still exists.

    When a namespace is deleted, kopf stops watching it (with a namespace pattern) before the deletion events of its
    objects arrive, so their index entries stay behind; a periodic pass over them would patch 404s forever."""
    existing = indices["namespaces"]
    return [
        body
        for (ns, _), bodies in list(indices["llmds"].items())
        if (namespace is None or ns == namespace) and ns in existing
        for body in list(bodies)
    ]


def reconcile_all(indices: Mapping[str, Any], namespace: str | None = None) -> None:
    for body in live_llmds(indices, namespace):
        reconcile_one(body, indices)


def reconcile_one(body: kopf.Body, indices: Mapping[str, Any]) -> None:
    reconciler = State.reconciler
    if reconciler is None or body.get("metadata", {}).get("deletionTimestamp"):
        return
    namespace, name = str(body["metadata"]["namespace"]), str(body["metadata"]["name"])
    with _locks[(namespace, name)], metrics.RECONCILE_SECONDS.time():
        try:
            events = reconciler.reconcile(body, _observed(namespace, name, indices))
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


@kopf.index(*LLMD)
def llmds(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[tuple[str | None, str], kopf.Body]:
    return {(namespace, name): body}


def _child_index(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
    instance = labels.get(c.LABEL_INSTANCE)
    return {(namespace, instance): body} if instance else {}


for _group, _version, _plural in CHILD_RESOURCES:
    kopf.index(_group, _version, _plural, labels=MANAGED, id="children")(_child_index)


@kopf.index("", "v1", "pods", labels=MANAGED)
def pods(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return _child_index(namespace, labels, body)


@kopf.index("", "v1", "nodes", labels={c.GFD_PRODUCT: kopf.PRESENT})
def gpu_nodes(body: kopf.Body, **_: Any) -> dict[None, kopf.Body]:
    return {None: body}


@kopf.index(c.GROUP, c.VERSION, c.POLICY_PLURAL)
def sizing_policies(body: kopf.Body, **_: Any) -> dict[None, SizingPolicy]:
    """Parsed once per change; a policy the schema allowed but the model rejects is logged and left out."""
    try:
        return {None: SizingPolicy.model_validate(dict(body))}
    except ValidationError as err:
        log.warning("SizingPolicy %s ignored: %s", body.get("metadata", {}).get("name"), err)
        return {}


@kopf.index("", "v1", "namespaces")
def namespaces(name: str, labels: Mapping[str, str], **_: Any) -> dict[str, dict[str, str]]:
    return {name: dict(labels)}


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
    reconciler = Reconciler(Kube.from_environment(), config, HubClient.from_env() if config.allow_hub else None)
    if config.pools_file is not None:
        from rightsizer.cli import load_pools

        reconciler.declared_pools = load_pools(Path(config.pools_file))
    State.reconciler = reconciler
    if config.webhook_enabled:
        _serve_admission(settings, config, memo)
    if config.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(config.metrics_port, addr=config.metrics_address)
        log.info("metrics on %s:%d/metrics", config.metrics_address, config.metrics_port)
    indices = {name: kwargs[name] for name in INDEXES}
    memo["resync"] = asyncio.create_task(_resync_forever(config.reconcile_interval_seconds, indices))
    memo["autoscaler"] = autoscaler = autoscaler_from(reconciler, config)
    memo["autoscale"] = asyncio.create_task(_autoscale_forever(autoscaler, config.autoscale_interval_seconds, indices))


def _serve_admission(settings: kopf.OperatorSettings, config: OperatorSettings, memo: kopf.Memo) -> None:
    """The admission webhook server (rightsizer.webhooks registers the handlers) with explicit certificates, or with
    self-managed ones (rightsizer.webhook_tls) that a background task keeps renewed; kopf reloads changed files."""

    def path(value: Path | None) -> str | None:
        return str(value) if value is not None else None

    cert, key, ca = config.webhook_cert_file, config.webhook_key_file, config.webhook_ca_file
    if config.webhook_self_managed_tls and State.reconciler is not None:
        from rightsizer.webhook_tls import SelfManagedTls

        tls = SelfManagedTls(State.reconciler.kube, config)
        files = tls.ensure()
        cert, key, ca = files.cert, files.key, files.ca
        memo["webhook_tls"] = asyncio.create_task(tls.renew_forever())
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
    for name in ("resync", "webhook_tls", "autoscale"):
        task = memo.get(name)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if memo.get("autoscaler") is not None:
        await memo["autoscaler"].aclose()


async def _resync_forever(interval: float, indices: Mapping[str, Any]) -> None:
    """Re-check every LLMDeployment periodically: retries after transient errors, picks up Hub recoveries."""
    while True:
        await asyncio.sleep(interval)
        try:
            if await asyncio.to_thread(paused):
                continue
        except TemporaryApiError as err:
            log.warning("resync skipped: cannot read the peering state: %s", err)
            continue
        try:
            await asyncio.to_thread(reconcile_all, indices)
        except Exception:  # the loop is the safety net: it must outlive any one bad pass
            log.exception("resync pass failed; the next one runs in %.0f s", interval)


async def _autoscale_forever(autoscaler: Autoscaler, interval: float, indices: Mapping[str, Any]) -> None:
    """The SLO autoscaler's passes (rightsizer.autoscaler); like the resync, only while no peer outranks us."""
    while True:
        await asyncio.sleep(interval)
        try:
            if await asyncio.to_thread(paused):
                autoscaler.reset()
                continue
        except TemporaryApiError as err:
            log.warning("autoscaling skipped: cannot read the peering state: %s", err)
            continue
        deployments = [
            (body, _observed(str(body["metadata"]["namespace"]), str(body["metadata"]["name"]), indices))
            for body in live_llmds(indices)
        ]
        try:
            await autoscaler.run_once(deployments)
        except Exception:  # like the resync: no single bad pass may end the loop
            log.exception("autoscaling pass failed; the next one runs in %.0f s", interval)


@kopf.on.event(*LLMD)
def llmd_changed(type: str, body: kopf.Body, **indices: Any) -> None:  # kopf passes the event type as `type`
    if type != "DELETED":
        reconcile_one(body, indices)


def _owner_changed(namespace: str | None, labels: Mapping[str, str], **indices: Any) -> None:
    owner = labels.get(c.LABEL_INSTANCE)
    for body in indices["llmds"].get((namespace, owner), []):
        reconcile_one(body, indices)


for _group, _version, _plural in (*CHILD_RESOURCES, ("", "v1", "pods")):
    kopf.on.event(_group, _version, _plural, labels=MANAGED, id=f"owner-of-{_plural}")(_owner_changed)


@kopf.on.event("", "v1", "nodes", labels={c.GFD_PRODUCT: kopf.PRESENT})
def gpu_node_changed(**indices: Any) -> None:
    """A GPU node appeared, left or changed: if the pools changed, every LLMDeployment may need a new plan."""
    reconciler = State.reconciler
    if reconciler is None:
        return
    pools = reconciler.pools(list(indices["gpu_nodes"].get(None, [])))
    fingerprint = repr([(p.name, p.product, p.gpus_per_node, p.max_nodes) for p in pools])
    if fingerprint == State.pools_fingerprint:
        return
    State.pools_fingerprint = fingerprint
    reconcile_all(indices)


@kopf.on.event(c.GROUP, c.VERSION, c.POLICY_PLURAL)
def policy_changed(type: str, body: kopf.Body, **indices: Any) -> None:  # kopf names the event type `type`
    """A policy changed: its Accepted condition is refreshed, and every LLMDeployment it might select is judged
    again (running replicas stay)."""
    if type != "DELETED" and State.reconciler is not None and not paused():
        _write_policy_status(body)
    reconcile_all(indices)


def _write_policy_status(body: kopf.Body) -> None:
    reconciler = State.reconciler
    assert reconciler is not None
    try:
        policy = SizingPolicy.model_validate(dict(body))
    except ValidationError as err:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()]
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
def namespace_labels_changed(name: str, **indices: Any) -> None:
    """Namespace labels decide which policies apply."""
    reconcile_all(indices, namespace=name)
