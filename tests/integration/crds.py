"""rightsizer's CRDs on a real API server: created or replaced from crds/ (generated from the API models), then
waited for until Established. The local plane from e2e/cluster/up serves only LeaderWorkerSet's CRDs, so the
integration tests (the `crds` fixture) and bench/reconcile.py apply these first."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.integration.kube import wait_for

CRDS = Path(__file__).resolve().parents[2] / "crds"


def apply_crds(api_client: client.ApiClient, directory: Path = CRDS) -> list[str]:
    """Every CRD in `directory`, created or replaced; returns their names once all are Established."""
    ext = client.ApiextensionsV1Api(api_client)
    names = []
    for path in sorted(directory.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        name = str(crd["metadata"]["name"])
        try:
            existing = ext.read_custom_resource_definition(name)
            crd["metadata"]["resourceVersion"] = existing.metadata.resource_version if existing.metadata else None
            ext.replace_custom_resource_definition(name, crd)
        except ApiException as err:
            if err.status != 404:
                raise
            ext.create_custom_resource_definition(crd)
        wait_for(partial(established, ext, name), 30, f"CRD {name} Established")
        names.append(name)
    return names


def established(ext: client.ApiextensionsV1Api, name: str) -> bool:
    status = ext.read_custom_resource_definition(name).status
    return any(c.type == "Established" and c.status == "True" for c in (status.conditions if status else None) or [])
