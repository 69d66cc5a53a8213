"""Handles on the local plane (e2e/cluster/up) for tests that need more than an API server."""

from __future__ import annotations

import subprocess
from pathlib import Path

from e2e.cluster import localplane

REPO = Path(__file__).resolve().parents[2]
UP = REPO / "e2e" / "cluster" / "up"


class LocalPlane:
    """Handles on the local plane for tests that need more than an API server (restarts, its certificates)."""

    pki = localplane.STATE / "pki"
    ca = pki / "ca.crt"
    webhook_cert, webhook_key = pki / "webhook.crt", pki / "webhook.key"  # for rightsizer's webhook on :9444
    webhook_port = localplane.RIGHTSIZER_WEBHOOK_PORT

    def restart(self, component: str) -> None:
        """Stops and starts one component (e.g. kube-apiserver) and returns once it is healthy again."""
        subprocess.run([str(UP), "restart", component], check=True, stdout=subprocess.DEVNULL)
