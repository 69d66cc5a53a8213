"""The HA pause rule mirrors kopf's peering: pause while another live peer has a higher or equal priority."""

from datetime import UTC, datetime, timedelta

from rightsizer.ha import Peering, should_pause

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
