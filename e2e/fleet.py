"""Simulated vLLM replicas for the pods of one LLMDeployment on the local plane.

kwok runs no containers: its pods become Running and Ready with fictional IPs (10.244.0.0/16) that lead nowhere. A
Fleet watches the deployment's pods and runs one simulator process (e2e/vllm_sim) per pod on 127.0.0.1 at a port of
its own, and publishes the mapping pod -> 127.0.0.1:port as a Prometheus file_sd file (`<namespace>.json`, labels
`namespace` and `pod`). That one file is what both metric paths read: the test Prometheus scrapes its targets, and
the operator's embedded scraper takes it as RIGHTSIZER_SCRAPE_TARGETS_DIR (pods it does not list are never scraped,
so no pod IP is ever dialled). The load generator sends requests round-robin to the healthy simulators: the
Service's endpoints.

A pod that gets a deletionTimestamp leaves the endpoints and the file at once; its simulator is stopped gracefully
(SIGTERM: it stops listening and lets its open requests finish). A new pod gets a new simulator, with fresh counters,
as a restarted vLLM would have.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
from kubernetes import client

from e2e.prometheus import free_port

REPO = Path(__file__).resolve().parents[1]
INSTANCE_LABEL = "app.kubernetes.io/instance"
LOOPBACK = "127.0.0.1"
log = logging.getLogger(__name__)


@dataclass
class Simulator:
    pod: str
    port: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    started: float = field(default_factory=time.monotonic)
    healthy: bool = False

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"


class Fleet:
    def __init__(
        self,
        core: client.CoreV1Api,
        namespace: str,
        name: str,
        *,
        llmd_file: Path,
        plan_file: Path,
        sd_dir: Path,
        log_dir: Path,
        poll_seconds: float = 0.3,
        model_error: tuple[float, float] = (1.0, 1.0),
    ) -> None:
        self.core, self.namespace, self.name = core, namespace, name
        self.llmd_file, self.plan_file = llmd_file, plan_file
        self.sd_file = sd_dir / f"{namespace}.json"
        self.log_dir = log_dir
        self.poll_seconds = poll_seconds
        self.model_error = model_error  # the simulators' speed over the model's (e2e/vllm_sim --model-error)
        self.simulators: dict[str, Simulator] = {}
        self.retired: list[Simulator] = []
        self.started_pods: list[str] = []  # every pod a simulator was started for, in order
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http = httpx.Client(timeout=0.5)

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def start(self) -> Fleet:
        self.sd_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._write_targets()
        self._thread = threading.Thread(target=self._loop, name=f"fleet-{self.namespace}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            everyone = [*self.simulators.values(), *self.retired]
            self.simulators.clear()
            self.retired.clear()
        for sim in everyone:
            self._terminate(sim)
        for sim in everyone:
            self._reap(sim, wait=10)
        with contextlib.suppress(FileNotFoundError):
            self.sd_file.unlink()
        self._http.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception:  # the API server restarting, a transient error: try again next round
                log.exception("fleet sync of %s/%s failed", self.namespace, self.name)
            self._stop.wait(self.poll_seconds)

    # -- one round -----------------------------------------------------------------------------------------------

    def sync(self) -> None:
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"{INSTANCE_LABEL}={self.name}").items
        live = {p.metadata.name for p in pods if p.metadata.deletion_timestamp is None and p.spec.node_name}
        changed = False
        with self._lock:
            for pod in sorted(live - set(self.simulators)):
                self.simulators[pod] = self._spawn(pod)
                self.started_pods.append(pod)
                changed = True
            for pod in sorted(set(self.simulators) - live):
                sim = self.simulators.pop(pod)
                self._terminate(sim)
                self.retired.append(sim)
                changed = True
            pending = [s for s in self.simulators.values() if not s.healthy]
        for sim in pending:
            sim.healthy = self._healthy(sim)
        for sim in list(self.retired):
            if self._reap(sim, wait=0):
                with self._lock:
                    self.retired.remove(sim)
        if changed:
            self._write_targets()

    def _spawn(self, pod: str) -> Simulator:
        port = free_port()
        out = (self.log_dir / f"{pod}.log").open("ab")
        command = [
            sys.executable,
            "-m",
            "e2e.vllm_sim",
            "--llmd",
            str(self.llmd_file),
            "--plan",
            str(self.plan_file),
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--model-error",
            ",".join(f"{f:g}" for f in self.model_error),
        ]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "operator"), str(REPO)])}
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=out)
        return Simulator(pod, port, process, out)

    def _healthy(self, sim: Simulator) -> bool:
        try:
            return self._http.get(f"http://{sim.address}/health").status_code == 200
        except httpx.HTTPError:
            return False

    @staticmethod
    def _terminate(sim: Simulator) -> None:
        if sim.process.poll() is None:
            sim.process.send_signal(signal.SIGTERM)

    @staticmethod
    def _reap(sim: Simulator, wait: float) -> bool:
        try:
            sim.process.wait(timeout=wait) if wait else None
        except subprocess.TimeoutExpired:
            sim.process.kill()
            sim.process.wait()
        if sim.process.poll() is None:
            return False
        sim.log.close()
        return True

    def _write_targets(self) -> None:
        with self._lock:
            groups: list[dict[str, Any]] = [
                {"targets": [sim.address], "labels": {"namespace": self.namespace, "pod": sim.pod}}
                for sim in self.simulators.values()
            ]
        temporary = self.sd_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(groups))
        os.replace(temporary, self.sd_file)  # Prometheus and the operator never see half a file

    # -- views ---------------------------------------------------------------------------------------------------

    def endpoints(self) -> list[str]:
        """Base URLs of the simulators that serve: the Service's ready endpoints."""
        with self._lock:
            return [f"http://{s.address}" for s in self.simulators.values() if s.healthy]

    def wait_healthy(self, count: int, timeout: float = 60.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = self.endpoints()
            if len(ready) == count:
                return ready
            time.sleep(0.2)
        raise TimeoutError(f"{count} healthy simulators expected, have {self.endpoints()}")
