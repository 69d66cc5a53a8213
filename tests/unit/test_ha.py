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
    """A peer that was seen just now: called when the test runs, not when pytest collects it, so that a suite
    longer than the peer's 60 s lifetime does not see it as dead."""
    return {"priority": priority, "lastseen": datetime.now(UTC).isoformat(), "lifetime": 60}


@pytest.mark.parametrize(
    ("namespaces", "peers", "reads", "pause"),
    [
        ((), {("ClusterKopfPeering", None): 200}, [("ClusterKopfPeering", None)], True),
        ((), {("ClusterKopfPeering", None): 50}, [("ClusterKopfPeering", None)], False),
        # Watching namespaces, kopf peers through a KopfPeering in each, and pauses while any of them says so.
        (("a", "b"), {("KopfPeering", "b"): 200}, [("KopfPeering", "a"), ("KopfPeering", "b")], True),
        (("a", "b"), {("KopfPeering", "a"): 50}, [("KopfPeering", "a"), ("KopfPeering", "b")], False),
    ],
)
def test_the_resync_reads_the_peering_kopf_uses(
    monkeypatch: pytest.MonkeyPatch,
    namespaces: tuple[str, ...],
    peers: dict[tuple[str, str | None], int],
    reads: list[tuple[str, str | None]],
    pause: bool,
) -> None:
    """`peers`: each peering object's other live peer, by its priority."""
    kube = FakeKube()
    for (kind, namespace), priority in peers.items():
        meta = {"name": "rightsizer", "namespace": namespace}
        kube.put({"apiVersion": "kopf.dev/v1", "kind": kind, "metadata": meta, "status": {"other": live(priority)}})
    reconciler = Reconciler(kube, OperatorSettings(allow_hub=False))
    runtime = Runtime(reconciler, Peering("rightsizer", 100, "me", namespaces))
    assert runtime.paused() is pause
    assert kube.reads == [(kind, namespace, "rightsizer") for kind, namespace in reads]
