"""A throw-away Prometheus server for end-to-end tests: Debian's `prometheus` binary with a generated configuration,
listening on 127.0.0.1, scraping the targets listed in file_sd JSON files (e2e/fleet.py writes one per namespace).

Not the packaged systemd service: `apt-get install -y prometheus` provides the binary; this runs it in a temporary
directory (configuration, TSDB, log) and stops it again. Targets carry the labels `namespace` and `pod` — the ones
kube-prometheus' PodMonitor and the usual kubernetes_sd relabeling attach — so the operator's PromQL is the one it
runs against a real cluster's Prometheus.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Any

import httpx
import yaml

BINARY = "prometheus"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def available() -> bool:
    return shutil.which(BINARY) is not None


def config(sd_dir: Path, scrape_interval_s: float) -> dict[str, Any]:
    interval = f"{scrape_interval_s:g}s"
    return {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": "1m"},
        "scrape_configs": [
            {
                "job_name": "vllm",
                "file_sd_configs": [{"files": [str(sd_dir / "*.json")], "refresh_interval": "5s"}],
            }
        ],
    }


class Prometheus:
    def __init__(self, workdir: Path, sd_dir: Path, scrape_interval_s: float = 1.0) -> None:
        self.workdir, self.sd_dir = workdir, sd_dir
        self.scrape_interval_s = scrape_interval_s
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    def start(self, timeout: float = 30.0) -> None:
        binary = shutil.which(BINARY)
        if binary is None:
            raise FileNotFoundError("prometheus is not installed (apt-get install -y prometheus)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.sd_dir.mkdir(parents=True, exist_ok=True)
        config_file = self.workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config(self.sd_dir, self.scrape_interval_s)))
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=self._log,
            cwd=self.workdir,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.process.returncode}: {self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"prometheus not ready within {timeout:.0f} s: {self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5).json()
        if answer.get("status") != "success":
            raise RuntimeError(f"{promql}: {answer}")
        return list(answer["data"]["result"])

    def query_range(self, promql: str, start: float, end: float, step_s: float = 2.0) -> list[dict[str, Any]]:
        """A range query's result matrix (unix-time bounds)."""
        params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step_s:g}s"}
        answer = httpx.get(f"{self.url}/api/v1/query_range", params=params, timeout=10).json()
        if answer.get("status") != "success":
            raise RuntimeError(f"{promql}: {answer}")
        return list(answer["data"]["result"])

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
