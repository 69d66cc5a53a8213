"""The operator under test, run as a real process (`python -m rightsizer run`), so tests can SIGKILL and restart it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import BinaryIO

import httpx

REPO = Path(__file__).resolve().parents[2]
RESYNC_SECONDS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OperatorProcess:
    def __init__(
        self, kubeconfig: str, log_path: Path, extra_env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.metrics_port = free_port()
        self.extra_env = extra_env or {}
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KUBECONFIG": self.kubeconfig,
            "PYTHONPATH": str(REPO / "operator"),
            "RIGHTSIZER_RECONCILE_INTERVAL_SECONDS": str(RESYNC_SECONDS),
            "RIGHTSIZER_ALLOW_HUB": "false",
            "RIGHTSIZER_METRICS_PORT": str(self.metrics_port),
            "RIGHTSIZER_METRICS_ADDRESS": "127.0.0.1",
            **self.extra_env,
        }

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rightsizer", "run", *self.args],
            env=self.env(),
            cwd=REPO,
            stdout=self._log,
            stderr=self._log,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"operator exited with {self.process.returncode}; log: {self.log_tail()}")
            try:
                if httpx.get(self.metrics_url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"operator did not serve metrics within 60 s; log: {self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def metric(self, name: str) -> float:
        """Sum of every sample of a counter (all label values)."""
        text = httpx.get(self.metrics_url, timeout=5).text
        pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", re.MULTILINE)
        return sum(float(v) for v in pattern.findall(text))

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
