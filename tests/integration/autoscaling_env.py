"""The end-to-end autoscaling rig: an operator watching one namespace, an LLMDeployment whose pods are simulated vLLM
processes (e2e/fleet.py), a load generator replaying the Azure conversation trace, and a sampler recording how the
replica count moves. Used by tests/integration/test_autoscaling.py.

The model: Llama 3.1 70B with FP8 weights on one H200 per replica, sized for the conversation trace's mean lengths (1155
prompt + 211 output tokens) within TTFT p95 2 s and ITL p95 100 ms (max-num-seqs 11). One replica serves about 1.31
req/s within that SLO (the performance model, at its slow edge), and each request lasts ~5 s, so the load is a few
requests per second: light enough for two CPU cores, slow enough to show queueing. The targets sit well above what an
idle replica achieves on this trace (its long prompts put p95 TTFT near 0.6 s even without load), so the latency signal
speaks only when load does.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import math
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from e2e.cluster import localplane
from e2e.fleet import Fleet
from e2e.loadgen import Phase, Report, arrivals, load_trace, replay
from tests.integration.conftest import NAMESPACE_LABEL, webhook_env
from tests.integration.kube import gone, wait_for
from tests.integration.objects import custom_object, typed
from tests.integration.operator import OperatorProcess

REPO = Path(__file__).resolve().parents[2]
_SHARED_TRACE = REPO.parent / "shared" / "data" / "traces" / "azure-llm-2023-conv.csv"
# A copy lives in tests/data for checkouts without ../shared (tests/data/README.md).
TRACE = _SHARED_TRACE if _SHARED_TRACE.exists() else REPO / "tests" / "data" / "azure-llm-2023-conv.csv"
GROUP, VERSION, PLURAL = "rightsizer.dev", "v1alpha1", "llmdeployments"
NAME = "chat"
MODEL = "meta-llama/Llama-3.1-70B-Instruct"
MAX_MODEL_LEN = 32768
INTERVAL_S = 2.0  # RIGHTSIZER_AUTOSCALE_INTERVAL_SECONDS
WINDOW_S = 15.0  # RIGHTSIZER_AUTOSCALE_WINDOW_SECONDS: 15 scrapes at Prometheus' 1 s interval
STATUS_REFRESH_S = 10.0
NAMESPACE_PREFIX = "as-"
SLICE_S = 5.0  # load phases are played in slices this long (Rig.load)


SLO = {"ttftP95Ms": 2000, "itlP95Ms": 100}


def llmd(replicas: dict[str, Any], autoscaling: dict[str, Any], slo: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LLMDeployment",
        "metadata": {"name": NAME},
        "spec": {
            "model": {"name": MODEL, "quantization": "fp8"},
            "serving": {"maxModelLen": MAX_MODEL_LEN},
            "workload": {"inputTokens": 1155, "outputTokens": 211},
            "slo": slo or SLO,
            "gpu": {"products": ["H200"]},
            "replicas": replicas,
            "autoscaling": autoscaling,
        },
    }


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def operator_for(
    kubeconfig: str,
    namespace: str,
    log_path: Path,
    *,
    prometheus_url: str | None,
    targets_dir: Path,
    extra_env: dict[str, str] | None = None,
    verbose: bool = False,
) -> OperatorProcess:
    """An operator that acts on `namespace` only, deciding every INTERVAL_S over WINDOW_S of metrics, from
    Prometheus or (prometheus_url None) by scraping the simulators the targets directory lists. It serves the
    admission webhook only when no other operator on this machine does (the plane's webhook configuration sends
    every LLMDeployment create to 127.0.0.1:9444 and fails closed)."""
    env = {
        "RIGHTSIZER_AUTOSCALE_INTERVAL_SECONDS": str(INTERVAL_S),
        "RIGHTSIZER_AUTOSCALE_WINDOW_SECONDS": str(WINDOW_S),
        "RIGHTSIZER_AUTOSCALE_STATUS_REFRESH_SECONDS": str(STATUS_REFRESH_S),
        **(webhook_env() if port_free(localplane.RIGHTSIZER_WEBHOOK_PORT) else {}),
        **(extra_env or {}),
    }
    if prometheus_url:
        env["RIGHTSIZER_PROMETHEUS_URL"] = prometheus_url
    else:
        env["RIGHTSIZER_SCRAPE_TARGETS_DIR"] = str(targets_dir)
    return OperatorProcess(kubeconfig, log_path, env, args=("--namespace", namespace, *(("-v",) if verbose else ())))


def namespaced_operator(
    kubeconfig: str, namespace: str, log_path: Path, env: dict[str, str] | None = None
) -> OperatorProcess:
    """An operator for `namespace` only, serving the admission webhook when no other operator on this machine does
    (the plane's webhook configuration sends every LLMDeployment create to 127.0.0.1:9444 and fails closed)."""
    webhook = webhook_env() if port_free(localplane.RIGHTSIZER_WEBHOOK_PORT) else {}
    return OperatorProcess(kubeconfig, log_path, {**webhook, **(env or {})}, args=("--namespace", namespace))


@contextmanager
def scratch_namespace(core: client.CoreV1Api, prefix: str = NAMESPACE_PREFIX) -> Iterator[str]:
    """A namespace outside the session operator's it-* prefix (see conftest.py), deleted afterwards."""
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    core.create_namespace(typed(client.V1Namespace, {"metadata": {"name": name, "labels": {NAMESPACE_LABEL: "true"}}}))
    wait_for(lambda: core.read_namespaced_service_account("default", name), 30, f"ServiceAccount {name}/default")
    try:
        yield name
    finally:
        try:
            core.delete_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise
        wait_for(lambda: gone(lambda: core.read_namespace(name)), 120, f"namespace {name} to be deleted")


@dataclass
class Sample:
    t: float  # seconds since the rig started
    desired: int | None  # spec.replicas.desired
    replicas: int | None  # status.replicas
    ready: int | None  # status.readyReplicas
    reason: str | None  # status.autoscaling.reason


@dataclass
class Rig:
    """One LLMDeployment under load, observed every half second."""

    custom: client.CustomObjectsApi
    core: client.CoreV1Api
    apps: client.AppsV1Api
    namespace: str
    workdir: Path
    sd_dir: Path
    fleet: Fleet | None = None
    samples: list[Sample] = field(default_factory=list)
    origin: float = field(default_factory=time.monotonic)
    reports: list[Report] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    # -- setup -----------------------------------------------------------------------------------------------------

    def deploy(
        self,
        replicas: dict[str, Any],
        autoscaling: dict[str, Any],
        *,
        model_error: tuple[float, float] = (1.0, 1.0),
        slo: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Create the LLMDeployment, wait until it is Ready with its pods, start one simulator per pod (running
        `model_error` times the model's step time: e2e/vllm_sim --model-error)."""
        body = llmd(replicas, autoscaling, slo)
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, copy.deepcopy(body))
        expected = replicas.get("desired", replicas.get("min", 1))
        obj = wait_for(lambda: self._ready(expected), 90, f"{self.namespace}/{NAME} Ready with {expected} replicas")
        llmd_file, plan_file = self.workdir / "llmd.yaml", self.workdir / "plan.json"
        llmd_file.write_text(yaml.safe_dump(body))
        plan_file.write_text(json.dumps(obj["status"]["plan"]))
        self.fleet = Fleet(
            self.core,
            self.namespace,
            NAME,
            llmd_file=llmd_file,
            plan_file=plan_file,
            sd_dir=self.sd_dir,
            log_dir=self.workdir / "simulators",
            model_error=model_error,
        ).start()
        self.fleet.wait_healthy(expected)
        self._spawn(self._sample_forever)
        return obj

    def _ready(self, replicas: int) -> dict[str, Any] | None:
        obj = self.get()
        status = obj.get("status") or {}
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])
        return obj if ready and status.get("readyReplicas") == replicas else None

    def set_autoscaling(self, enabled: bool) -> None:
        """Switch the autoscaler on or off for the deployment (spec.autoscaling.enabled)."""
        patch = {"spec": {"autoscaling": {"enabled": enabled}}}
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, NAME, patch)

    def sleep_until(self, t: float) -> None:
        time.sleep(max(0.0, t - self.now()))

    def get(self) -> dict[str, Any]:
        return custom_object(self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, NAME))

    def now(self) -> float:
        return time.monotonic() - self.origin

    # -- load ------------------------------------------------------------------------------------------------------

    def load(self, phases: list[Phase], seed: int = 1) -> float:
        """Start replaying the trace in `phases` (rates in requests/s); returns the rig time it starts at.

        Each phase is played in slices of SLICE_S seconds at the phase's rate: the trace's burstiness within a
        slice is kept, but not its drift over minutes (its first minutes run at a third of the rate of the next
        ones), which would turn a "steady" phase into a ramp. Lengths are the whole trace's mix (loadgen)."""
        assert self.fleet is not None
        trace = load_trace(TRACE, MAX_MODEL_LEN)
        sliced = [
            Phase(min(SLICE_S, p.seconds - i * SLICE_S), rate=p.rate)
            for p in phases
            for i in range(math.ceil(p.seconds / SLICE_S))
        ]
        schedule = arrivals(trace, sliced, seed=seed, mixed_lengths=True)
        duration = sum(p.seconds for p in phases)
        fleet = self.fleet

        def run() -> None:
            report = asyncio.run(replay(schedule, fleet.endpoints, MODEL, duration=duration, drain=20.0))
            self.reports.append(report)

        started = self.now()
        self._spawn(run)
        return started

    def wait_load(self, timeout: float = 300.0) -> Report:
        deadline = time.monotonic() + timeout
        while not self.reports and time.monotonic() < deadline:
            time.sleep(0.2)
        assert self.reports, "the load generator did not finish"
        return self.reports[-1]

    # -- observation -----------------------------------------------------------------------------------------------

    def _sample_forever(self) -> None:
        while not self._stop.is_set():
            try:
                obj = self.get()
            except ApiException:
                obj = None
            if obj is not None:
                spec, status = obj.get("spec") or {}, obj.get("status") or {}
                self.samples.append(
                    Sample(
                        self.now(),
                        (spec.get("replicas") or {}).get("desired"),
                        status.get("replicas"),
                        status.get("readyReplicas"),
                        (status.get("autoscaling") or {}).get("reason"),
                    )
                )
            self._stop.wait(0.5)

    def desired_changes(self, since: float = 0.0) -> list[tuple[float, int | None, int | None]]:
        """(time, from, to) of every change of spec.replicas.desired seen after `since`."""
        changes = []
        seen = [s for s in self.samples if s.t >= since]
        for before, after in itertools.pairwise(seen):
            if after.desired != before.desired:
                changes.append((after.t, before.desired, after.desired))
        return changes

    def first_time(self, predicate: Any, since: float = 0.0) -> float | None:
        return next((s.t for s in self.samples if s.t >= since and predicate(s)), None)

    def wait_until(self, predicate: Any, timeout: float, what: str) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.samples and predicate(self.samples[-1]):
                return self.samples[-1].t
            time.sleep(0.25)
        last = self.samples[-1] if self.samples else None
        raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}; last sample {last}")

    def events(self) -> list[Any]:
        return list(self.core.list_namespaced_event(self.namespace).items)

    # -- teardown --------------------------------------------------------------------------------------------------

    def _spawn(self, target: Any) -> None:
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        self._threads.append(thread)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        if self.fleet is not None:
            self.fleet.stop()
