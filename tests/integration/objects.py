"""Typed views of the Kubernetes client's objects for tests against a real API server.

The client (37 in requirements.lock: pydantic models, py.typed) declares nearly every model field Optional, because the
OpenAPI schema marks it so, although the API server always fills them in on an object it returns (metadata, a pod's
spec and status, a Deployment's pod template). These helpers assert that once, with a message naming what was
missing, and return the typed value, so the tests read the field they mean and mypy checks the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from kubernetes import client
from pydantic import BaseModel

Model = TypeVar("Model", bound=BaseModel)


def typed(kind: type[Model], manifest: Mapping[str, Any]) -> Model:
    """A request body written as a manifest dict, as the model the API method declares.

    Every API method of the client is wrapped in pydantic's validate_call, which validates a dict argument into this
    same model before sending it; validating it here gives the identical object, with the type the signature names.
    """
    return kind.model_validate(manifest)


def custom_object(answer: object) -> dict[str, Any]:
    """A CustomObjectsApi answer (declared `object`: the decoded JSON) as the JSON object it is."""
    assert isinstance(answer, dict), f"expected a JSON object from the API server, got {type(answer).__name__}"
    return answer


class HasMetadata(Protocol):
    @property
    def metadata(self) -> client.V1ObjectMeta | None: ...


def meta(obj: HasMetadata) -> client.V1ObjectMeta:
    """The metadata of an object read from the API server."""
    assert obj.metadata is not None, f"{type(obj).__name__} without metadata"
    return obj.metadata


def labels(obj: HasMetadata) -> dict[str, str]:
    return meta(obj).labels or {}


def pod_spec(pod: client.V1Pod) -> client.V1PodSpec:
    assert pod.spec is not None, f"pod {meta(pod).name} without spec"
    return pod.spec


def pod_status(pod: client.V1Pod) -> client.V1PodStatus:
    assert pod.status is not None, f"pod {meta(pod).name} without status"
    return pod.status


def phase(pod: client.V1Pod) -> str | None:
    return pod_status(pod).phase


def node_name(pod: client.V1Pod) -> str:
    """The node a scheduled pod was bound to."""
    node = pod_spec(pod).node_name
    assert node is not None, f"pod {meta(pod).name} is not scheduled"
    return node


def template_spec(deployment: client.V1Deployment) -> client.V1PodSpec:
    """The pod spec of a Deployment's template."""
    spec = deployment.spec.template.spec
    assert spec is not None, f"Deployment {meta(deployment).name} without a pod template spec"
    return spec


def ready_replicas(deployment: client.V1Deployment) -> int:
    """status.readyReplicas; the API server leaves it out while it is 0."""
    return (deployment.status.ready_replicas if deployment.status else None) or 0


def available_replicas(deployment: client.V1Deployment) -> int:
    """status.availableReplicas; the API server leaves it out while it is 0."""
    return (deployment.status.available_replicas if deployment.status else None) or 0


def limits(container: client.V1Container) -> dict[str, str]:
    """A container's resource limits (none set: empty)."""
    return (container.resources.limits if container.resources else None) or {}
