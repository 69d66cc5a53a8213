"""Every object the chart renders, in every mode, is accepted by a real API server (server-side dry-run: schema,
defaulting, validation and admission run, nothing is stored). kubeconform is not available here; the API server is
the authority anyway. Kinds the plane does not serve (cert-manager's, prometheus-operator's ServiceMonitor) are
reported, not silently passed."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from tests.chart.render import CHART, documents, template

pytestmark = pytest.mark.integration

NOT_SERVED_HERE = {"cert-manager.io/v1", "monitoring.coreos.com/v1"}


def value_sets(namespace: str) -> dict[str, dict[str, Any]]:
    return {
        "defaults": {},
        "ha": {"ha": {"enabled": True}, "replicas": 2},
        "namespaced-ha": {"ha": {"enabled": True}, "replicas": 2, "watchNamespaces": [namespace]},
        "cert-manager": {"webhook": {"tls": {"mode": "certManager"}}, "metrics": {"serviceMonitor": {"enabled": True}}},
        "network-policy": {
            "networkPolicy": {
                "webhook": {
                    "apiServerCIDRs": ["10.0.0.0/28", "fd00::/64"],
                    "konnectivityAgents": True,
                    "extraFrom": [{"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.1.0/24"]}}],
                },
                "metrics": {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mon"}}}]},
            },
        },
        "pools-and-policies": {
            "pools": yaml.safe_load((CHART.parents[1] / "examples" / "pools.yaml").read_text()),
            "sizingPolicies": [{"name": f"{namespace}-budget", "spec": {"limits": {"maxGpusPerReplica": 8}}}],
        },
    }


@pytest.fixture(scope="module")
def dynamic(api_client: client.ApiClient, crds: None) -> DynamicClient:
    """With the chart's CRDs applied for real (rightsizer's by the `crds` fixture, kopf's peering kinds here)."""
    dyn = DynamicClient(api_client)
    definitions = dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    for path in sorted((CHART / "crds").glob("kopf.dev_*.yaml")):
        crd = yaml.safe_load(path.read_text())
        definitions.server_side_apply(body=crd, name=crd["metadata"]["name"], field_manager="rightsizer-tests")
    dyn.resources.invalidate_cache()
    return dyn


@pytest.mark.parametrize(
    "name", ["defaults", "ha", "namespaced-ha", "cert-manager", "network-policy", "pools-and-policies"]
)
def test_every_rendered_object_is_accepted_by_the_api_server(dynamic: DynamicClient, namespace: str, name: str) -> None:
    release = f"{namespace}-{name}"[:40]
    rendered = list(documents(template(value_sets(namespace)[name], release=release, namespace=namespace)))
    accepted, not_served = [], []
    for doc in rendered:
        if doc["apiVersion"] in NOT_SERVED_HERE:
            not_served.append(doc["kind"])
            continue
        try:
            resource = dynamic.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        except ResourceNotFoundError:
            pytest.fail(f"{doc['kind']} ({doc['apiVersion']}) is not served: a typo in the chart?")
        result = resource.server_side_apply(
            body=doc,
            name=doc["metadata"]["name"],
            namespace=doc["metadata"].get("namespace") if resource.namespaced else None,
            field_manager="rightsizer-chart-test",
            force_conflicts=True,
            dry_run="All",
        )
        assert result.metadata.name == doc["metadata"]["name"]
        accepted.append(doc["kind"])
    assert len(accepted) + len(not_served) == len(rendered)
    if name == "cert-manager":
        assert sorted(not_served) == ["Certificate", "Certificate", "Issuer", "Issuer", "ServiceMonitor"]
    else:
        assert not not_served
