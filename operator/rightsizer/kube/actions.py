"""Desired children vs live children -> the writes needed. Pure: no write when nothing differs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rightsizer.api import constants as c

JSON = Mapping[str, Any]
ChildKey = tuple[str, str]  # (kind, name)


@dataclass(frozen=True)
class Apply:
    obj: JSON
    why: str  # created, updated (spec changed), restored (edited by hand)


@dataclass(frozen=True)
class Delete:
    api_version: str
    kind: str
    namespace: str
    name: str


Action = Apply | Delete


def key_of(obj: JSON) -> ChildKey:
    return str(obj["kind"]), str(obj["metadata"]["name"])


def is_subset(desired: Any, live: Any) -> bool:
    """Whether every field rightsizer sets has the same value live. Fields the API server or other controllers
    add (defaults, status, clusterIP) are ignored; a list must match element by element."""
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(k in live and is_subset(v, live[k]) for k, v in desired.items())
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(desired) == len(live)
            and all(is_subset(d, v) for d, v in zip(desired, live, strict=True))
        )
    return bool(desired == live)


def _hash(obj: JSON) -> str | None:
    annotations = obj.get("metadata", {}).get("annotations") or {}
    value = annotations.get(c.ANNOTATION_SPEC_HASH)
    return str(value) if value is not None else None


def plan_actions(desired: Sequence[JSON], live: Mapping[ChildKey, JSON]) -> list[Action]:
    actions: list[Action] = []
    wanted = {key_of(obj) for obj in desired}
    for obj in desired:
        current = live.get(key_of(obj))
        if current is None:
            actions.append(Apply(obj, "created"))
        elif _hash(current) != _hash(obj):
            actions.append(Apply(obj, "updated"))
        elif not is_subset(obj.get("spec", {}), current.get("spec", {})):
            actions.append(Apply(obj, "restored"))
    for key, current in sorted(live.items()):
        if key not in wanted:
            meta = current["metadata"]
            actions.append(Delete(str(current["apiVersion"]), key[0], str(meta["namespace"]), key[1]))
    return actions
