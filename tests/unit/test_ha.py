"""The HA pause rule mirrors kopf's peering: pause while another live peer has a higher or equal priority."""

from datetime import UTC, datetime, timedelta

import pytest

from rightsizer.adapters.settings import OperatorSettings
from rightsizer.controller.ha import Peering, should_pause
from rightsizer.controller.reconcile import Reconciler
from rightsizer.controller.runtime import Runtime
from tests.unit.fake_kube import FakeKube

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ME = Peering("rightsizer", priority=100, identity="me")


def peer(priority: int, seconds_ago: int = 5, lifetime: int = 60) -> dict[str, object]:
    seen = (NOW - timedelta(seconds=seconds_ago)).isoformat()
    return {"priority": priority, "lastseen": seen, "lifetime": lifetime}


def test_alone_or_highest_acts() -> None:
    assert not should_pause({"me": peer(100)}, ME, NOW)
    assert not should_pause({"me": peer(100), "other": peer(50)}, ME, NOW)


def test_higher_or_equal_live_peer_pauses() -> None:
    assert should_pause({"other": peer(200)}, ME, NOW)
    assert should_pause({"other": peer(100)}, ME, NOW)


def test_dead_peers_are_ignored() -> None:
    assert not should_pause({"other": peer(200, seconds_ago=120)}, ME, NOW)


def live(priority: int) -> dict[str, object]:
    return {"priority": priority, "lastseen": datetime.now(UTC).isoformat(), "lifetime": 60}


@pytest.mark.parametrize(
    ("namespaces", "statuses", "reads", "pause"),
    [
        ((), {("ClusterKopfPeering", None): {"other": live(200)}}, [("ClusterKopfPeering", None)], True),
        ((), {("ClusterKopfPeering", None): {"other": live(50)}}, [("ClusterKopfPeering", None)], False),
        # Watching namespaces, kopf peers through a KopfPeering in each, and pauses while any of them says so.
        (("a", "b"), {("KopfPeering", "b"): {"other": live(200)}}, [("KopfPeering", "a"), ("KopfPeering", "b")], True),
        (("a", "b"), {("KopfPeering", "a"): {"other": live(50)}}, [("KopfPeering", "a"), ("KopfPeering", "b")], False),
    ],
)
def test_the_resync_reads_the_peering_kopf_uses(
    monkeypatch: pytest.MonkeyPatch,
    namespaces: tuple[str, ...],
    statuses: dict[tuple[str, str | None], dict[str, object]],
    reads: list[tuple[str, str | None]],
    pause: bool,
) -> None:
    kube = FakeKube()
    for (kind, namespace), status in statuses.items():
        meta = {"name": "rightsizer", "namespace": namespace}
        kube.put({"apiVersion": "kopf.dev/v1", "kind": kind, "metadata": meta, "status": status})
    reconciler = Reconciler(kube, OperatorSettings(allow_hub=False))
    runtime = Runtime(reconciler, Peering("rightsizer", 100, "me", namespaces))
    assert runtime.paused() is pause
    assert kube.reads == [(kind, namespace, "rightsizer") for kind, namespace in reads]
