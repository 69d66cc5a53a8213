"""The background loops outlive the API server going away for a minute (issue 13 item 7).

The operator runs as the chart runs it (tests/integration/test_install.py's release: HA peering, self-managed webhook
TLS, the chart's /healthz), with short intervals so every loop makes many passes in the minute: the resync and the
autoscaler read the peering state before each pass, the certificate check reads its Secret and patches the caBundle.
With the API server stopped each of them fails pass after pass; before supervision the first connection error ended
the loop for good while /healthz stayed green. Here /healthz must turn red while the loops cannot complete a pass,
and every loop must complete passes again (and /healthz answer 200) once the API server is back.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.cluster import localplane
from tests.integration.kube import wait_for
from tests.integration.plane import LocalPlane
from tests.integration.test_install import Release, chart_operator, release  # noqa: F401 - the module fixture

pytestmark = pytest.mark.integration

LOOPS = ("autoscale", "resync", "webhook_tls")
OUTAGE_SECONDS = 60.0
INTERVALS = {  # short, so each loop fails many passes during the outage
    "RIGHTSIZER_AUTOSCALE_INTERVAL_SECONDS": "2",
    "RIGHTSIZER_WEBHOOK_TLS_CHECK_INTERVAL_SECONDS": "3",
    "RIGHTSIZER_LOOP_GRACE_SECONDS": "15",
}


def probe(url: str) -> tuple[int, Any]:
    try:
        response = httpx.get(url, timeout=5)
    except httpx.HTTPError as err:
        return 0, str(err)
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text


def every_loop_fresh(url: str, within: float) -> dict[str, Any] | None:
    """The probe's report when it answers 200 and every loop completed a pass in the last `within` seconds."""
    status, body = probe(url)
    if status != 200 or not isinstance(body, dict):
        return None
    loops = body.get("loops") or {}
    if set(loops) != set(LOOPS) or any(loops[n]["lastPassSecondsAgo"] > within for n in LOOPS):
        return None
    return dict(loops)


def api_server_down_for(seconds: float) -> None:
    """Stop kube-apiserver (under the plane's own lock), keep it down `seconds` in all, then start it again with
    `e2e/cluster/up restart kube-apiserver` (which alone would take it away for ~8 s only)."""
    paths = localplane.Paths(localplane.read_versions())
    stopped = time.monotonic()
    with localplane.plane_lock():
        localplane.BY_NAME["kube-apiserver"].stop(paths)
    time.sleep(max(0.0, seconds - (time.monotonic() - stopped)))
    LocalPlane().restart("kube-apiserver")  # a process of its own starts it: the plane outlives this test


def test_every_loop_is_alive_after_the_api_server_was_away_for_a_minute(
    release: Release,  # noqa: F811 - the imported fixture
    local_plane: LocalPlane,
    tmp_path: Path,
) -> None:
    operator = chart_operator(release, tmp_path / "operator.log", priority=2, webhook=True)
    operator.extra_env |= INTERVALS
    operator.start()
    try:
        wait_for(lambda: every_loop_fresh(operator.health_url, 10), 60, "every loop to complete a pass")
        outage = threading.Thread(target=api_server_down_for, args=(OUTAGE_SECONDS,))
        outage.start()
        seen_red: list[Any] = []
        while outage.is_alive():
            status, body = probe(operator.health_url)
            if status not in (0, 200):
                seen_red.append(body)
            time.sleep(2)
        outage.join()
        assert operator.process is not None and operator.process.poll() is None, operator.log_tail()
        # The deadline is interval + 15 s: with no pass possible for a minute, /healthz said so.
        assert seen_red, "/healthz stayed green while no loop could complete a pass"
        loops = wait_for(lambda: every_loop_fresh(operator.health_url, 10), 90, "every loop to pass again")
        assert set(loops) == set(LOOPS)
        log = (tmp_path / "operator.log").read_text(errors="replace")
        for name in LOOPS:  # each loop did fail during the outage, and survived it
            assert f"{name} pass failed" in log, f"{name} never failed: {operator.log_tail()}"
            assert f"{name} recovered" in log, f"{name} never recovered: {operator.log_tail()}"
    finally:
        operator.stop()
