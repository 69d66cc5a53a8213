"""The only module that talks to the Kubernetes API (besides kopf's own watching).

Writes go through server-side apply with the `rightsizer` field manager, so re-applying the same object is a no-op
on the server and fields other managers own are left alone. Every write is counted (rightsizer_api_writes_total),
which is how the steady state is proven to write nothing.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Mapping
from functools import cached_property
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError
from prometheus_client import Counter

from rightsizer.api import constants as c

JSON = Mapping[str, Any]

API_WRITES = Counter("rightsizer_api_writes_total", "Writes rightsizer sent to the Kubernetes API", ["verb", "kind"])
log = logging.getLogger(__name__)


def _count_write(verb: str, kind: str, namespace: str | None, name: str | None) -> None:
    """Count a write, and name it in the debug log (`rightsizer run -v`): when the steady state is not quiet, the
    log says which object is written."""
    API_WRITES.labels(verb, kind).inc()
    log.debug("write: %s %s %s/%s", verb, kind, namespace or "-", name or "-")


class TemporaryApiError(Exception):
    """A failure worth retrying later (conflict, throttling, server error, connection)."""


class RejectedError(Exception):
    """The API server refused a write for a reason retrying will not fix (invalid or immutable field, clash)."""


class MissingApiError(Exception):
    """The cluster does not serve a kind rightsizer needs (e.g. LeaderWorkerSet without the LWS controller)."""


def _server_message(err: ApiException) -> str:
    try:
        return str(json.loads(err.body or "{}").get("message", err.reason))
    except (TypeError, ValueError, AttributeError):
        return f"{err.status} {err.reason}"


def _transient(err: ApiException) -> bool:
    return err.status in (409, 429) or (err.status or 0) >= 500


class Kube:
    """A thin wrapper over the dynamic client: apply, delete, status patch, reads."""

    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self._api_client = api_client
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls) -> Kube:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        return cls(client.ApiClient())

    @cached_property
    def dynamic(self) -> DynamicClient:
        with self._lock:
            return DynamicClient(self._api_client or client.ApiClient())

    def _resource(self, api_version: str, kind: str) -> Any:
        try:
            return self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            raise MissingApiError(f"the cluster does not serve {kind} ({api_version})") from None

    def apply(self, obj: JSON) -> dict[str, Any]:
        """Server-side apply. Conflicts with other field managers are forced only on an update that carries the
        live object's metadata.uid, which the API server checks (uid is immutable: another object of that name
        fails the write). A create is not forced: an object that appeared since the caller looked fails with a
        conflict instead of being taken over."""
        resource = self._resource(str(obj["apiVersion"]), str(obj["kind"]))
        meta = obj["metadata"]
        _count_write("apply", obj["kind"], meta.get("namespace"), meta.get("name"))
        try:
            result = resource.server_side_apply(
                body=dict(obj),
                name=meta["name"],
                namespace=meta.get("namespace"),
                field_manager=c.FIELD_MANAGER,
                force_conflicts=bool(meta.get("uid")),
            )
        except ApiException as err:
            if _transient(err):
                raise TemporaryApiError(f"apply {obj['kind']}/{meta['name']}: {err.status} {err.reason}") from None
            raise RejectedError(f"{obj['kind']} {meta['name']}: {_server_message(err)}") from None
        return dict(result.to_dict())

    def read_object(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object as stored, or None when there is none: how a same-named object the label-selected watches do
        not see is found before rightsizer creates a child of that name."""
        resource = self._resource(api_version, kind)
        try:
            return dict(resource.get(name=name, namespace=namespace).to_dict())
        except NotFoundError:
            return None
        except ApiException as err:
            if err.status == 404:
                return None
            raise TemporaryApiError(f"read {kind}/{name}: {err.status} {err.reason}") from None

    def delete(self, api_version: str, kind: str, namespace: str, name: str, *, uid: str = "") -> None:
        """Delete in the background; an object already gone is not an error. With `uid`, only that very object is
        deleted (a precondition the API server checks): a same-named successor answers 409 and stays."""
        resource = self._resource(api_version, kind)
        _count_write("delete", kind, namespace, name)
        options: dict[str, Any] = {"propagationPolicy": "Background"}
        if uid:
            options["preconditions"] = {"uid": uid}
        try:
            resource.delete(name=name, namespace=namespace, body=options)
        except NotFoundError:
            return
        except ApiException as err:
            if err.status == 404:
                return
            if _transient(err):
                raise TemporaryApiError(f"delete {kind}/{name}: {err.status} {err.reason}") from None
            raise

    def _merge_patch(self, resource: Any, body: JSON, *, what: str, name: str, namespace: str | None) -> None:
        """A JSON merge patch; a vanished object is not an error (it was deleted meanwhile)."""
        try:
            resource.patch(body=dict(body), name=name, namespace=namespace, content_type="application/merge-patch+json")
        except ApiException as err:
            if err.status == 404:
                return
            if _transient(err):
                raise TemporaryApiError(f"{what} of {name}: {err.status} {err.reason}") from None
            raise

    def patch_status(self, api_version: str, kind: str, namespace: str | None, name: str, status: JSON) -> None:
        resource = self._resource(api_version, kind)
        _count_write("status", kind, namespace, name)
        self._merge_patch(
            resource.status, {"status": dict(status)}, what=f"status of {kind}", name=name, namespace=namespace
        )

    def scale(self, api_version: str, kind: str, namespace: str, name: str, replicas: int) -> None:
        """Set the replicas an object wants through its scale subresource (for an LLMDeployment:
        spec.replicas.desired), the field `kubectl scale`, HPA and KEDA write too."""
        resource = self._resource(api_version, kind)
        _count_write("scale", kind, namespace, name)
        self._merge_patch(
            resource.subresources["scale"],
            {"spec": {"replicas": replicas}},
            what=f"scale of {kind}",
            name=name,
            namespace=namespace,
        )

    def read_status(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """The status of an object, or None when it does not exist."""
        resource = self._resource(api_version, kind)
        try:
            obj = resource.get(name=name, namespace=namespace)
        except NotFoundError:
            return None
        except ApiException as err:
            raise TemporaryApiError(f"read {kind}/{name}: {err.status} {err.reason}") from None
        status = obj.to_dict().get("status")
        return dict(status) if isinstance(status, dict) else None

    def post_event(self, involved: JSON, *, type_: str, reason: str, message: str, now: str) -> None:
        """A core/v1 Event about `involved` (works from any thread, unlike kopf's poster, which needs a handler's
        context). Events are best effort: a failure is logged by the caller, never retried."""
        meta = involved.get("metadata", {})
        event = {
            "metadata": {"generateName": f"{meta.get('name')}.", "namespace": meta.get("namespace")},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": c.FIELD_MANAGER},
            "reportingComponent": c.FIELD_MANAGER,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        _count_write("create", "Event", meta.get("namespace"), meta.get("name"))
        try:
            self._resource("v1", "Event").create(body=event, namespace=meta.get("namespace"))
        except ApiException as err:
            raise TemporaryApiError(f"event on {meta.get('name')}: {err.status} {err.reason}") from None

    def read_config_map_key(self, namespace: str, name: str, key: str) -> str:
        try:
            cm = client.CoreV1Api(self._api_client).read_namespaced_config_map(name, namespace)
        except ApiException as err:
            if err.status == 404:
                from rightsizer.errors import ModelConfigError

                raise ModelConfigError(
                    "spec.model.configMapRef",
                    f"ConfigMap {namespace}/{name} does not exist",
                    "create it or fix spec.model.configMapRef.name",
                ) from None
            if err.status == 403:
                from rightsizer.errors import ModelConfigError

                raise ModelConfigError(
                    "spec.model.configMapRef",
                    f"rightsizer is not allowed to read ConfigMap {namespace}/{name}",
                    "grant its ServiceAccount `get` on configmaps in this namespace (the Helm chart does for "
                    "watchNamespaces)",
                ) from None
            raise TemporaryApiError(f"ConfigMap {name}: {err.status}") from None
        data = cm.data or {}
        if key not in data:
            from rightsizer.errors import ModelConfigError

            raise ModelConfigError(
                "spec.model.configMapRef.key",
                f"ConfigMap {name} has no key {key!r}",
                f"use one of: {', '.join(sorted(data)) or '(none)'}",
            )
        return str(data[key])

    def read_secret_key(self, namespace: str, name: str, key: str) -> str | None:
        import base64

        try:
            secret = client.CoreV1Api(self._api_client).read_namespaced_secret(name, namespace)
        except ApiException as err:
            if err.status == 404:
                return None
            if err.status == 403:  # RBAC lets rightsizer read token Secrets by name only (chart: rbac.*)
                from rightsizer.errors import ModelConfigError

                raise ModelConfigError(
                    "spec.serving.hfTokenSecretRef",
                    f"rightsizer is not allowed to read Secret {namespace}/{name}",
                    "use a Secret name rightsizer may read (Helm chart: rbac.hfTokenSecretNames, default hf-token; "
                    "or rbac.readAllSecrets)",
                ) from None
            raise TemporaryApiError(f"Secret {name}: {err.status}") from None
        value = (secret.data or {}).get(key)
        return base64.b64decode(value).decode() if value else None

    # --- the webhook's self-managed TLS (adapters.webhook_tls) ------------------------------------------------

    def read_secret(self, namespace: str, name: str) -> tuple[dict[str, str] | None, str | None]:
        """(data, base64 values as stored; resourceVersion) of a Secret; (None, None) when it does not exist."""
        try:
            secret = client.CoreV1Api(self._api_client).read_namespaced_secret(name, namespace)
        except ApiException as err:
            if err.status == 404:
                return None, None
            raise TemporaryApiError(f"read Secret {namespace}/{name}: {err.status} {err.reason}") from None
        data: dict[str, str] = {str(k): str(v) for k, v in (secret.data or {}).items()}
        return data, str(secret.metadata.resource_version) if secret.metadata else None

    def write_secret(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, str],
        *,
        resource_version: str | None,
        secret_type: str = "Opaque",
    ) -> bool:
        """Create the Secret (resource_version None) or replace it only if it is still at `resource_version`.
        False when another writer got there first, so the caller re-reads and decides again."""
        body = client.V1Secret(
            api_version="v1",
            kind="Secret",
            type=secret_type,
            metadata=client.V1ObjectMeta(
                name=name,
                namespace=namespace,
                labels={c.LABEL_MANAGED_BY: c.MANAGED_BY},
                resource_version=resource_version,
            ),
            data=dict(data),
        )
        core = client.CoreV1Api(self._api_client)
        _count_write("cas", "Secret", namespace, name)
        try:
            if resource_version is None:
                core.create_namespaced_secret(namespace, body)
            else:
                core.replace_namespaced_secret(name, namespace, body)
        except ApiException as err:
            if err.status == 409:
                return False
            raise TemporaryApiError(f"write Secret {namespace}/{name}: {err.status} {err.reason}") from None
        return True

    def set_webhook_ca_bundle(self, kind: str, name: str, ca_bundle: bytes) -> bool:
        """Point every webhook of a Validating/MutatingWebhookConfiguration at `ca_bundle`; True when it wrote.
        A missing configuration is left alone (the webhook is not registered yet, or not by rightsizer)."""
        resource = self._resource("admissionregistration.k8s.io/v1", kind)
        try:
            obj = resource.get(name=name).to_dict()
        except NotFoundError:
            return False
        except ApiException as err:
            raise TemporaryApiError(f"read {kind}/{name}: {err.status} {err.reason}") from None
        encoded = base64.b64encode(ca_bundle).decode("ascii")
        operations: list[dict[str, Any]] = []
        for index, webhook in enumerate(obj.get("webhooks") or []):
            if (webhook.get("clientConfig") or {}).get("caBundle") == encoded:
                continue
            # `test` pins the list position to the webhook read above: a concurrent reordering fails the patch.
            operations.append({"op": "test", "path": f"/webhooks/{index}/name", "value": webhook["name"]})
            operations.append({"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle", "value": encoded})
        if not operations:
            return False
        _count_write("patch", kind, None, name)
        try:
            resource.patch(body=operations, name=name, content_type="application/json-patch+json")
        except ApiException as err:
            raise TemporaryApiError(f"caBundle of {kind}/{name}: {err.status} {err.reason}") from None
        return True
