"""The periodic passes (resync, autoscaler) walk kopf's LLMDeployment index, skipping entries of deleted namespaces."""

from typing import Any

from rightsizer.controller.observed import live_llmds


def llmd(namespace: str, name: str) -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name}}


INDICES: dict[str, Any] = {
    "llmds": {
        ("team-a", "chat"): [llmd("team-a", "chat")],
        ("team-a", "code"): [llmd("team-a", "code")],
        ("deleted", "chat"): [llmd("deleted", "chat")],  # left behind: kopf stopped watching before the DELETED event
    },
    "namespaces": {"team-a": [{}], "team-b": [{}]},
}


def names(bodies: list[Any]) -> list[str]:
    return [f"{b['metadata']['namespace']}/{b['metadata']['name']}" for b in bodies]


def test_entries_of_a_deleted_namespace_are_skipped() -> None:
    assert names(live_llmds(INDICES)) == ["team-a/chat", "team-a/code"]


def test_one_namespace_is_walked_only_while_it_exists() -> None:
    assert names(live_llmds(INDICES, "team-a")) == ["team-a/chat", "team-a/code"]
    assert live_llmds(INDICES, "deleted") == []
    assert live_llmds(INDICES, "team-b") == []
