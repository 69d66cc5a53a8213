"""The operator's view of the cluster around one LLMDeployment, read from kopf's indexes (no API calls)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rightsizer.controller.reconcile import Observed

INDEXES = ("llmds", "children", "pods", "gpu_nodes", "sizing_policies", "namespaces")


def observed_of(namespace: str, name: str, indices: Mapping[str, Any]) -> Observed:
    key = (namespace, name)
    children = {}
    for body in indices["children"].get(key, []):
        children[(str(body["kind"]), str(body["metadata"]["name"]))] = body
    neighbours = [
        body
        for (ns, other), bodies in list(indices["llmds"].items())
        if ns == namespace and other != name
        for body in bodies
    ]
    return Observed(
        children=children,
        pods=list(indices["pods"].get(key, [])),
        nodes=list(indices["gpu_nodes"].get(None, [])),
        policies=list(indices["sizing_policies"].get(None, [])),
        namespace_labels=dict(next(iter(indices["namespaces"].get(namespace, [])), {})),
        neighbours=neighbours,
    )


def live_llmds(indices: Mapping[str, Any], namespace: str | None = None) -> list[Mapping[str, Any]]:
    """The indexed LLMDeployments (of one namespace, or all) whose namespace still exists.

    When a namespace is deleted, kopf stops watching it (with a namespace pattern) before the deletion events of its
    objects arrive, so their index entries stay behind; a periodic pass over them would patch 404s forever."""
    existing = indices["namespaces"]
    return [
        body
        for (ns, _), bodies in list(indices["llmds"].items())
        if (namespace is None or ns == namespace) and ns in existing
        for body in list(bodies)
    ]
