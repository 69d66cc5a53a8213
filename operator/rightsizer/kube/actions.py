"""Desired children vs live objects -> the writes needed. Pure: no write when nothing differs.

Ownership is decided here and nowhere else. rightsizer writes or deletes only objects whose controller
ownerReference carries this LLMDeployment's UID: labels can be copied by anyone (the label-selected watch sees a
tenant's look-alike objects too), names collide with what users already have, and a UID cannot be forged. An
existing object of a desired name that is not ours is a conflict, reported and left alone; an owned object that is
no longer desired is deleted with its UID as a precondition, so a same-named object created meanwhile survives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rightsizer.api import constants as c

JSON = Mapping[str, Any]
ChildKey = tuple[str, str]  # (kind, name)


@dataclass(frozen=True)
class Apply:
    """Server-side apply `obj`. For an update, obj.metadata.uid holds the live object's UID: the API server then
    refuses the write if the object was replaced meanwhile (uid is immutable), instead of taking the new one over."""

    obj: JSON
    why: str  # created, updated (spec changed), restored (edited by hand)


@dataclass(frozen=True)
class Delete:
    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str  # a precondition of the delete: only this very object goes (empty: none known)


@dataclass(frozen=True)
class Conflict:
    """A desired child's name is taken by an object this LLMDeployment does not control."""

    kind: str
    name: str
    holder: str  # who controls it, for the message

    def message(self) -> str:
        return (
            f"{self.kind} {self.name} already exists and is not controlled by this LLMDeployment ({self.holder}); "
            f"rightsizer leaves it alone and creates no children: rename or delete that {self.kind}, or give the "
            "LLMDeployment another name"
        )


Action = Apply | Delete | Conflict


def key_of(obj: JSON) -> ChildKey:
    return str(obj["kind"]), str(obj["metadata"]["name"])


def controller_of(obj: JSON) -> JSON | None:
    """The ownerReference with controller: true (Kubernetes allows at most one), or None."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller") is True:
            return dict(ref)
    return None


def owned_by(obj: JSON, owner_uid: str) -> bool:
    """Whether `obj` is controlled by the object with UID `owner_uid`. Only the UID counts: a reference naming an
    LLMDeployment of the same name but another UID is an earlier incarnation's leftover (or a forgery)."""
    ref = controller_of(obj)
    return ref is not None and bool(owner_uid) and str(ref.get("uid")) == owner_uid


def _holder(obj: JSON) -> str:
    ref = controller_of(obj)
    if ref is None:
        return "it has no controller"
    if ref.get("kind") == c.LLMD_KIND and ref.get("apiVersion") == c.API_VERSION:
        return f"controlled by another LLMDeployment {ref.get('name')} (uid {ref.get('uid')})"
    return f"controlled by {ref.get('kind')} {ref.get('name')}"


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


def _uid(obj: JSON) -> str:
    return str(obj.get("metadata", {}).get("uid") or "")


def _with_uid(obj: JSON, uid: str) -> JSON:
    return {**obj, "metadata": {**obj["metadata"], "uid": uid}} if uid else obj


def missing(desired: Sequence[JSON], live: Mapping[ChildKey, JSON]) -> list[JSON]:
    """Desired children the live view lacks: before creating one, the caller looks the name up on the API server
    (a same-named object without rightsizer's labels is invisible to the label-selected watch)."""
    return [obj for obj in desired if key_of(obj) not in live]


def plan_actions(desired: Sequence[JSON], live: Mapping[ChildKey, JSON], owner_uid: str) -> list[Action]:
    """The writes that make the owned children what `desired` says. `live` holds every existing object of a
    desired name, owned or not, and the label-selected children. With any conflict, only the conflicts are
    returned: applying the other children alone would leave a half-applied deployment (GPUs held, no Service)."""
    conflicts = [
        Conflict(*key_of(obj), _holder(current))
        for obj in desired
        if (current := live.get(key_of(obj))) is not None and not owned_by(current, owner_uid)
    ]
    if conflicts:
        return list(conflicts)
    actions: list[Action] = []
    for obj in desired:
        current = live.get(key_of(obj))
        if current is None:
            actions.append(Apply(obj, "created"))
            continue
        uid = _uid(current)
        if _hash(current) != _hash(obj):
            actions.append(Apply(_with_uid(obj, uid), "updated"))
        elif not is_subset(obj.get("spec", {}), current.get("spec", {})):
            actions.append(Apply(_with_uid(obj, uid), "restored"))
    wanted = {key_of(obj) for obj in desired}
    for key, current in sorted(live.items()):
        if key not in wanted and owned_by(current, owner_uid):
            namespace = str(current["metadata"]["namespace"])
            actions.append(Delete(str(current["apiVersion"]), key[0], namespace, key[1], _uid(current)))
    return actions
