"""An in-memory Kubernetes API for the controller's unit tests: a KubeApi (rightsizer.adapters.kube_api) that mypy
checks against the same protocol the reconciler, the autoscaler and the webhooks are typed with.

It keeps objects by (apiVersion, kind, namespace, name) with a resourceVersion, answers reads from them, and records
every write in order, so a test asserts on exactly what a pass sent. Failures are injected per kind
(`fail_apply`), the way the API server or a missing controller would refuse.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rightsizer.adapters.k8s import RejectedError, TemporaryApiError
from rightsizer.adapters.kube_api import JSON
from rightsizer.errors import ModelConfigError

ObjectKey = tuple[str, str, str | None, str]  # (apiVersion, kind, namespace, name)


@dataclass(frozen=True)
class Write:
    """One write as the API module would send it: apply, delete, status, scale or event."""

    verb: str
    kind: str
    namespace: str | None
    name: str
    body: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Stored:
    body: dict[str, Any]
    version: int = 1


class FakeKube:
    def __init__(
        self,
        *,
        config_maps: Mapping[tuple[str, str], Mapping[str, str]] | None = None,
        secrets: Mapping[tuple[str, str], Mapping[str, str]] | None = None,
    ) -> None:
        self.objects: dict[ObjectKey, Stored] = {}
        self.config_maps = {key: dict(data) for key, data in (config_maps or {}).items()}
        self.secrets = {key: dict(data) for key, data in (secrets or {}).items()}  # decoded values
        self.fail_apply: dict[str, Exception] = {}  # kind -> what apply raises
        self.writes: list[Write] = []
        # (kind, namespace, name) of every read: read_object, read_status, read_config_map_key, read_secret_key
        self.reads: list[tuple[str, str | None, str]] = []

    # --- test set-up and inspection ------------------------------------------------------------------------------

    def put(self, body: JSON) -> None:
        """Store an object as if another writer had created it."""
        meta = body["metadata"]
        key = (str(body["apiVersion"]), str(body["kind"]), meta.get("namespace"), str(meta["name"]))
        self.objects[key] = Stored(copy.deepcopy(dict(body)))

    def verbs(self) -> list[tuple[str, str, str]]:
        """(verb, kind, name) of every write so far, in order."""
        return [(w.verb, w.kind, w.name) for w in self.writes]

    def _record(self, verb: str, kind: str, namespace: str | None, name: str, body: JSON | None = None) -> None:
        self.writes.append(Write(verb, kind, namespace, name, copy.deepcopy(dict(body or {}))))

    # --- KubeApi ---------------------------------------------------------------------------------------------------

    def apply(self, obj: JSON) -> dict[str, Any]:
        meta = obj["metadata"]
        self._record("apply", str(obj["kind"]), meta.get("namespace"), str(meta["name"]), obj)
        if str(obj["kind"]) in self.fail_apply:
            raise self.fail_apply[str(obj["kind"])]
        key = (str(obj["apiVersion"]), str(obj["kind"]), meta.get("namespace"), str(meta["name"]))
        stored = self.objects.get(key)
        live_uid = stored.body["metadata"].get("uid") if stored else None
        if meta.get("uid") and meta["uid"] != live_uid:  # uid is immutable: the server answers 422 (or 404)
            raise RejectedError(f"{obj['kind']} {meta['name']}: metadata.uid: Invalid value: field is immutable")
        if stored is not None and not meta.get("uid"):  # an unforced apply meets the other manager's fields
            raise TemporaryApiError(f"apply {obj['kind']}/{meta['name']}: 409 Conflict")
        body = copy.deepcopy(dict(obj))
        body["metadata"]["uid"] = live_uid or f"uid-{obj['kind'].lower()}-{meta['name']}"
        if stored is not None and "status" in stored.body:
            body["status"] = stored.body["status"]  # apply never touches the status subresource
        self.objects[key] = Stored(body, stored.version + 1 if stored else 1)
        return copy.deepcopy(body)

    def delete(self, api_version: str, kind: str, namespace: str, name: str, *, uid: str = "") -> None:
        self._record("delete", kind, namespace, name)
        stored = self.objects.get((api_version, kind, namespace, name))
        if stored is not None and uid and stored.body["metadata"].get("uid") != uid:
            raise TemporaryApiError(f"delete {kind}/{name}: 409 Conflict")  # the uid precondition failed
        self.objects.pop((api_version, kind, namespace, name), None)

    def read_object(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads.append((kind, namespace, name))
        stored = self.objects.get((api_version, kind, namespace, name))
        return copy.deepcopy(stored.body) if stored else None

    def patch_status(self, api_version: str, kind: str, namespace: str | None, name: str, status: JSON) -> None:
        self._record("status", kind, namespace, name, status)
        stored = self.objects.get((api_version, kind, namespace, name))
        if stored is not None:  # the real module ignores a 404 too: the object was deleted meanwhile
            merged = {**stored.body.get("status", {}), **status}
            stored.body["status"] = {k: v for k, v in merged.items() if v is not None}  # merge patch: null deletes
            stored.version += 1

    def scale(self, api_version: str, kind: str, namespace: str, name: str, replicas: int) -> None:
        self._record("scale", kind, namespace, name, {"spec": {"replicas": replicas}})

    def read_status(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        self.reads.append((kind, namespace, name))
        stored = self.objects.get((api_version, kind, namespace, name))
        status = stored.body.get("status") if stored else None
        return copy.deepcopy(status) if isinstance(status, dict) else None

    def post_event(self, involved: JSON, *, type_: str, reason: str, message: str, now: str) -> None:
        meta = involved.get("metadata", {})
        event = {"type": type_, "reason": reason, "message": message, "lastTimestamp": now}
        self._record("event", "Event", meta.get("namespace"), str(meta.get("name")), event)

    def read_config_map_key(self, namespace: str, name: str, key: str) -> str:
        self.reads.append(("ConfigMap", namespace, name))
        data = self.config_maps.get((namespace, name))
        if data is None:  # as adapters.k8s answers a 404
            raise ModelConfigError(
                "spec.model.configMapRef",
                f"ConfigMap {namespace}/{name} does not exist",
                "create it or fix spec.model.configMapRef.name",
            )
        if key not in data:
            raise ModelConfigError(
                "spec.model.configMapRef.key", f"ConfigMap {name} has no key {key!r}", f"use one of: {', '.join(data)}"
            )
        return data[key]

    def read_secret_key(self, namespace: str, name: str, key: str) -> str | None:
        self.reads.append(("Secret", namespace, name))
        return self.secrets.get((namespace, name), {}).get(key)

    def events(self) -> list[tuple[str, str]]:
        """(type, reason) of every Event posted through the API module."""
        return [(str(w.body["type"]), str(w.body["reason"])) for w in self.writes if w.verb == "event"]
