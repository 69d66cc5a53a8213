"""What the rest of the operator may ask of the Kubernetes API: the methods of adapters.k8s.Kube it calls, as
protocols.

The controller (reconciler, autoscaler, admission webhooks, kopf handlers) and the webhook's TLS manager are typed
with these rather than with Kube, so a test hands them an in-memory fake that mypy checks against the same
signatures (tests/unit/fake_kube.py). Kube satisfies both structurally; nothing here imports a Kubernetes client.

Failures are the exceptions of adapters.k8s: TemporaryApiError (retry later), RejectedError (the server refused
the object), MissingApiError (the cluster does not serve the kind).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

JSON = Mapping[str, Any]


class KubeApi(Protocol):
    """The reads and writes of the kopf flow: children, status, scale, events, model sources."""

    def apply(self, obj: JSON) -> dict[str, Any]:
        """Server-side apply with rightsizer's field manager; returns the object as the server stored it. Forced
        only when obj.metadata.uid is set, which the server then checks against the live object."""
        ...

    def delete(self, api_version: str, kind: str, namespace: str, name: str, *, uid: str = "") -> None:
        """Delete in the background; an object already gone is not an error; with `uid`, only that very object."""
        ...

    def read_object(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object as stored, or None when there is none."""
        ...

    def patch_status(self, api_version: str, kind: str, namespace: str | None, name: str, status: JSON) -> None:
        """Merge `status` into the object's status subresource; an object already gone is not an error."""
        ...

    def scale(self, api_version: str, kind: str, namespace: str, name: str, replicas: int) -> None:
        """Set the replicas an object wants through its scale subresource."""
        ...

    def read_status(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """The status of an object, or None when it does not exist."""
        ...

    def post_event(self, involved: JSON, *, type_: str, reason: str, message: str, now: str) -> None:
        """A core/v1 Event about `involved`."""
        ...

    def read_config_map_key(self, namespace: str, name: str, key: str) -> str:
        """One key of a ConfigMap; ModelConfigError naming spec.model.configMapRef when it cannot be read."""
        ...

    def read_secret_key(self, namespace: str, name: str, key: str) -> str | None:
        """One decoded key of a Secret, or None when the Secret or the key does not exist."""
        ...


class WebhookTlsApi(Protocol):
    """The reads and writes of the webhook's self-managed certificates (adapters.webhook_tls)."""

    def read_secret(self, namespace: str, name: str) -> tuple[dict[str, str] | None, str | None]:
        """(data as stored, base64; resourceVersion); (None, None) when the Secret does not exist."""
        ...

    def write_secret(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, str],
        *,
        resource_version: str | None,
        secret_type: str = "Opaque",
    ) -> bool:
        """Create (resource_version None) or replace the Secret if still at `resource_version`; False on a race."""
        ...

    def set_webhook_ca_bundle(self, kind: str, name: str, ca_bundle: bytes) -> bool:
        """Point every webhook of a Validating/MutatingWebhookConfiguration at `ca_bundle`; True when it wrote."""
        ...
