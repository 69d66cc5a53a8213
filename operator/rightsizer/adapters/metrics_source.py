"""Where the autoscaler reads vLLM's metrics: a Prometheus server, or the pods' /metrics scraped directly. HTTP only.

Both answer `window(deployment)` with the same WindowStats (rightsizer.scaling.window), or None when they have
nothing to go on (no pod reporting): the autoscaler then decides nothing.

* PrometheusSource (RIGHTSIZER_PROMETHEUS_URL set): the instant queries of scaling.promql, over the pods in the
  operator's index, selected by the namespace and pod labels the scrape attaches.
* ScrapeSource (the default): every ready serving pod's http://<pod IP>:8000/metrics once per autoscaler pass,
  keeping the samples of the last window in memory; quantiles come from bucket deltas between samples. Each scrape
  has a total deadline (connect to last byte: httpx's timeouts bound each read, so a pod that trickles a byte at a
  time would otherwise hold the pass indefinitely), and at most `concurrency` scrapes run at once.
* Both keep counting, for one window, the pods that left it (deleted, crashed, scaled away): their requests
  happened in the window, and dropping them would read a dead replica as a drop in load.
  Pods on simulated nodes (kwok's `kwok.x-k8s.io/node: fake` annotation) have fictional IPs and are never dialled.
  RIGHTSIZER_SCRAPE_TARGETS_DIR replaces pod IPs by the addresses listed in Prometheus file_sd files
  (`[{"targets": ["host:port"], "labels": {"namespace": …, "pod": …}}]`); pods not listed there are not scraped.
  It exists for the local test plane, whose pods run as simulator processes on loopback (docs/autoscaling.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import httpx

from rightsizer.scaling.promql import Selector, queries, scalar, stats
from rightsizer.scaling.window import PodSample, WindowStats, parse_sample, window_stats

log = logging.getLogger(__name__)
JSON = Mapping[str, Any]
SIMULATED_NODE_ANNOTATION = "kwok.x-k8s.io/node"  # kwok manages (and fakes the network of) nodes annotated "fake"
LWS_WORKER_INDEX = "leaderworkerset.sigs.k8s.io/worker-index"
PodKey = tuple[str, str]


class MetricsUnavailableError(Exception):
    """The metrics backend could not be asked (Prometheus down, a query refused)."""


class MetricsSource(Protocol):
    async def window(
        self, namespace: str, name: str, pods: Sequence[JSON], nodes: Sequence[JSON], version: str
    ) -> WindowStats:
        """Deployment `name`'s replicas over the last window (stats.pods == 0: no replica reports). `pods` are the
        deployment's pods now; pods it had earlier in the window still count."""
        ...

    async def aclose(self) -> None: ...


# --- which pods serve ----------------------------------------------------------------------------------------------


def _ready(pod: JSON) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def serving_pods(pods: Sequence[JSON]) -> list[JSON]:
    """Pods that serve the API: not being deleted, and for a LeaderWorkerSet only the leaders (workers run no
    server; the Service selects leaders the same way)."""
    return [
        p
        for p in pods
        if not (p.get("metadata") or {}).get("deletionTimestamp")
        and ((p.get("metadata") or {}).get("labels") or {}).get(LWS_WORKER_INDEX, "0") == "0"
    ]


def _pod_key(pod: JSON) -> PodKey:
    meta = pod.get("metadata") or {}
    return str(meta.get("namespace")), str(meta.get("name"))


def scrape_address(
    pod: JSON, nodes: Mapping[str, JSON], port: int, overrides: Mapping[PodKey, str] | None
) -> str | None:
    """host:port of a pod's /metrics, or None when it must not or cannot be scraped. Pure."""
    if overrides is not None:
        return overrides.get(_pod_key(pod))
    ip = (pod.get("status") or {}).get("podIP")
    if not ip or not _ready(pod):
        return None
    node = nodes.get(str((pod.get("spec") or {}).get("nodeName")))
    annotations = ((node or {}).get("metadata") or {}).get("annotations") or {}
    if annotations.get(SIMULATED_NODE_ANNOTATION) == "fake":
        return None  # a kwok node: its pods' IPs lead nowhere
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def targets_from_file_sd(documents: Sequence[Any]) -> dict[PodKey, str]:
    """namespace/pod -> host:port from Prometheus file_sd documents (lists of {targets, labels}). Pure."""
    out: dict[PodKey, str] = {}
    for document in documents:
        for group in document if isinstance(document, list) else []:
            labels = group.get("labels") or {}
            targets = group.get("targets") or []
            if "namespace" in labels and "pod" in labels and targets:
                out[(str(labels["namespace"]), str(labels["pod"]))] = str(targets[0])
    return out


def read_targets_dir(directory: Path) -> dict[PodKey, str]:
    documents = []
    for path in sorted(directory.glob("*.json")):
        try:
            documents.append(json.loads(path.read_text()))
        except (OSError, ValueError) as err:  # being rewritten, or removed meanwhile
            log.debug("skipping %s: %s", path, err)
    return targets_from_file_sd(documents)


class Recent:
    """The pods each deployment had over the last window, current or gone: what served in the window still counts
    (a pod that died keeps its requests in the window's rate, as PromQL's `rate` over its series keeps them)."""

    def __init__(self, window_seconds: float) -> None:
        self.window_seconds = window_seconds
        self.seen: dict[tuple[str, str], dict[str, float]] = {}

    def update(self, deployment: tuple[str, str], current: Iterable[str], now: float) -> set[str]:
        members = self.seen.setdefault(deployment, {})
        for pod in current:
            members[pod] = now
        for pod in [p for p, t in members.items() if now - t > self.window_seconds]:
            del members[pod]
        return set(members)


# --- the embedded scraper ------------------------------------------------------------------------------------------


class ScrapeSource:
    def __init__(
        self,
        window_seconds: float,
        port: int,
        timeout_seconds: float,
        *,
        concurrency: int = 32,
        targets_dir: Path | None = None,
        clock: Callable[[], float] | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.window_seconds = window_seconds
        self.port = port
        self.timeout_seconds = timeout_seconds
        self.targets_dir = targets_dir
        self.clock = clock or time.monotonic
        self.client = client or httpx.AsyncClient(timeout=timeout_seconds)
        self.slots = asyncio.Semaphore(concurrency)
        self.samples: dict[PodKey, deque[PodSample]] = {}
        self.recent = Recent(window_seconds)

    async def _fetch(self, address: str) -> str:
        response = await self.client.get(f"http://{address}/metrics")
        response.raise_for_status()
        return response.text

    async def _scrape(self, key: PodKey, address: str, version: str) -> None:
        async with self.slots:  # the deadline starts once a slot is free: waiting for one is not the pod's fault
            try:
                async with asyncio.timeout(self.timeout_seconds):
                    text = await self._fetch(address)
                sample = parse_sample(text, self.clock(), version)
            except TimeoutError:
                log.info(
                    "scrape of %s/%s at %s took over %.1f s; skipped this pass", *key, address, self.timeout_seconds
                )
                return
            except (httpx.HTTPError, ValueError) as err:
                log.debug("scrape of %s/%s at %s failed: %s", *key, address, err)
                return
        self.samples.setdefault(key, deque()).append(sample)

    async def window(
        self, namespace: str, name: str, pods: Sequence[JSON], nodes: Sequence[JSON], version: str
    ) -> WindowStats:
        overrides = read_targets_dir(self.targets_dir) if self.targets_dir is not None else None
        by_node = {str((n.get("metadata") or {}).get("name")): n for n in nodes}
        addresses = {}
        for pod in serving_pods(pods):
            address = scrape_address(pod, by_node, self.port, overrides)
            if address is not None:
                addresses[_pod_key(pod)] = address
        await asyncio.gather(*(self._scrape(key, address, version) for key, address in addresses.items()))
        now = self.clock()
        members = self.recent.update((namespace, name), (pod for _, pod in addresses), now)
        for key, history in list(self.samples.items()):
            while history and history[0].time < now - 2 * self.window_seconds:
                history.popleft()
            if not history:
                del self.samples[key]
        mine = {pod: list(self.samples[(namespace, pod)]) for pod in members if (namespace, pod) in self.samples}
        live = {pod for _, pod in addresses}
        return window_stats(mine, now, self.window_seconds, live=live)

    async def aclose(self) -> None:
        await self.client.aclose()


# --- Prometheus -------------------------------------------------------------------------------------------------------


class PrometheusSource:
    def __init__(
        self,
        url: str,
        window_seconds: float,
        timeout_seconds: float,
        *,
        namespace_label: str = "namespace",
        pod_label: str = "pod",
        clock: Callable[[], float] | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.window_seconds = window_seconds
        self.namespace_label, self.pod_label = namespace_label, pod_label
        self.clock = clock or time.monotonic
        self.client = client or httpx.AsyncClient(timeout=timeout_seconds)
        self.recent = Recent(window_seconds)

    async def _query(self, promql: str) -> float | None:
        try:
            response = await self.client.get(f"{self.url}/api/v1/query", params={"query": promql})
            answer = response.json()
        except (httpx.HTTPError, ValueError) as err:
            raise MetricsUnavailableError(f"Prometheus at {self.url}: {err}") from None
        try:
            return scalar(answer)
        except ValueError as err:
            raise MetricsUnavailableError(str(err)) from None

    async def window(
        self, namespace: str, name: str, pods: Sequence[JSON], nodes: Sequence[JSON], version: str
    ) -> WindowStats:
        current = [_pod_key(p)[1] for p in serving_pods(pods)]
        names = tuple(sorted(self.recent.update((namespace, name), current, self.clock())))
        if not names:
            return stats({})
        selector = Selector(namespace, names, self.namespace_label, self.pod_label)
        named = queries(selector, version, self.window_seconds)
        values = await asyncio.gather(*(self._query(q) for q in named.values()))
        return stats(dict(zip(named, values, strict=True)))

    async def aclose(self) -> None:
        await self.client.aclose()
