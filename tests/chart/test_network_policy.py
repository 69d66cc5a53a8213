"""The chart's NetworkPolicy (issue 13 item 4), rendered with real helm and read with the rules of the
networking.k8s.io/v1 API (k8s.io/api/networking/v1/types.go): a pod selected by a policy of type Ingress accepts a
connection only if some rule admits it; a rule admits a port when its `ports` list it (or are empty) and a source
when one of its `from` peers matches (or `from` is empty); a peer's `namespaceSelector` and `podSelector` must both
match, a `podSelector` alone means the policy's own namespace, an `ipBlock` matches addresses in `cidr` outside
`except`. Traffic from the pod's own node (the kubelet's probes) is always admitted and is not modelled here."""

from __future__ import annotations

import ipaddress
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.render import CHART, helm, objects

JSON = dict[str, Any]
NAMESPACE = "rs"
WEBHOOK, METRICS, HEALTH = 9443, 8080, 8081


@dataclass(frozen=True)
class Source:
    """Who opens the connection: an address and, for a pod, its namespace's labels and its own."""

    ip: str
    namespace: str | None = None  # None: not a pod (the API server on a host network, a load balancer)
    labels: dict[str, str] = field(default_factory=dict)


API_SERVER = Source("10.0.0.5")
TENANT_POD = Source("10.244.3.17", "team-a", {"app": "chat"})
AKS_AGENT = Source("10.244.0.9", "kube-system", {"app": "konnectivity-agent"})
GKE_AGENT = Source("10.244.0.10", "kube-system", {"k8s-app": "konnectivity-agent"})
COREDNS = Source("10.244.0.11", "kube-system", {"k8s-app": "kube-dns"})
LOOKALIKE_AGENT = Source("10.244.3.18", "team-a", {"app": "konnectivity-agent"})  # a tenant copying the label
PROMETHEUS = Source("10.244.5.2", "monitoring", {"app": "prometheus"})


def _selects(selector: JSON | None, labels: dict[str, str]) -> bool:
    selector = selector or {}
    assert set(selector) <= {"matchLabels"}, "the chart renders matchLabels only; extend the model"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _peer_matches(peer: JSON, source: Source) -> bool:
    if "ipBlock" in peer:
        address = ipaddress.ip_address(source.ip)
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(x) for x in block.get("except", [])
        )
    if source.namespace is None:
        return False  # namespace and pod selectors select pods only
    namespace_labels = {"kubernetes.io/metadata.name": source.namespace}
    if "namespaceSelector" in peer:
        in_namespace = _selects(peer["namespaceSelector"], namespace_labels)
    else:
        in_namespace = source.namespace == NAMESPACE
    return in_namespace and _selects(peer.get("podSelector"), source.labels)


def admitted(policy: JSON, pod_labels: dict[str, str], source: Source, port: int) -> bool:
    spec = policy["spec"]
    if not _selects(spec["podSelector"], pod_labels) or "Ingress" not in spec["policyTypes"]:
        return True  # the policy does not isolate this pod
    for rule in spec.get("ingress") or []:
        ports_ok = not rule.get("ports") or any(p["port"] == port and p["protocol"] == "TCP" for p in rule["ports"])
        peers = rule.get("from") or []
        if ports_ok and (not peers or any(_peer_matches(peer, source) for peer in peers)):
            return True
    return False


def rendered(values: JSON) -> tuple[JSON | None, dict[str, str], dict[str, int]]:
    """The NetworkPolicy (None when not rendered), the operator pods' labels and their container ports by name."""
    found = objects(values, namespace=NAMESPACE)
    policies = [doc for (kind, _), doc in found.items() if kind == "NetworkPolicy"]
    assert len(policies) <= 1
    workload = next(doc for (kind, _), doc in found.items() if kind in ("Deployment", "StatefulSet"))
    template = workload["spec"]["template"]
    ports = {p["name"]: p["containerPort"] for p in template["spec"]["containers"][0]["ports"]}
    return (policies[0] if policies else None), template["metadata"]["labels"], ports


def reachable(values: JSON, source: Source, port: int) -> bool:
    policy, labels, _ = rendered(values)
    assert policy is not None
    return admitted(policy, labels, source, port)


RESTRICTED: JSON = {
    "networkPolicy": {
        "webhook": {"apiServerCIDRs": ["10.0.0.0/28"], "konnectivityAgents": True},
        "metrics": {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]},
    }
}


@pytest.mark.parametrize("values", [{}, {"ha": {"enabled": True}, "replicas": 2}], ids=["deployment", "ha"])
def test_on_by_default_selecting_the_operator_pods_and_only_their_served_ports(values: JSON) -> None:
    policy, labels, ports = rendered(values)
    assert policy is not None and policy["metadata"]["namespace"] == NAMESPACE
    assert _selects(policy["spec"]["podSelector"], labels)
    assert policy["spec"]["policyTypes"] == ["Ingress"]  # egress stays open: API server, Hub, Prometheus, vLLM
    assert (ports["webhook"], ports["metrics"], ports["health"]) == (WEBHOOK, METRICS, HEALTH)
    for port, open_ in ((WEBHOOK, True), (METRICS, True), (HEALTH, False), (6379, False)):
        assert admitted(policy, labels, TENANT_POD, port) is open_, port


def test_the_webhook_port_admits_only_the_api_server_once_its_sources_are_set() -> None:
    for source in (API_SERVER, AKS_AGENT, GKE_AGENT):
        assert reachable(RESTRICTED, source, WEBHOOK), source
    for source in (TENANT_POD, COREDNS, LOOKALIKE_AGENT, PROMETHEUS):
        assert not reachable(RESTRICTED, source, WEBHOOK), source
    assert not reachable(RESTRICTED, API_SERVER, HEALTH)
    assert not reachable(RESTRICTED, API_SERVER, METRICS)


def test_metrics_admit_only_the_scrapers_named() -> None:
    assert reachable(RESTRICTED, PROMETHEUS, METRICS)
    assert not reachable(RESTRICTED, TENANT_POD, METRICS)
    assert not reachable(RESTRICTED, PROMETHEUS, WEBHOOK)


def test_more_peers_and_cidrs_each_open_the_webhook_port_alone() -> None:
    own_agent = {"networkPolicy": {"webhook": {"extraFrom": [{"podSelector": {"matchLabels": {"app": "chat"}}}]}}}
    assert not reachable(own_agent, TENANT_POD, WEBHOOK)  # a bare podSelector means the release's namespace
    assert reachable(own_agent, Source("10.244.1.1", NAMESPACE, {"app": "chat"}), WEBHOOK)
    cidr_only = {"networkPolicy": {"webhook": {"apiServerCIDRs": ["10.0.0.5/32", "fd00::/64"]}}}
    assert reachable(cidr_only, API_SERVER, WEBHOOK)
    assert reachable(cidr_only, Source("fd00::10"), WEBHOOK)
    assert not reachable(cidr_only, AKS_AGENT, WEBHOOK)


def test_the_policy_follows_the_ports_and_closes_what_is_not_served() -> None:
    moved = {"webhook": {"port": 9555}, "metrics": {"port": 9090}}
    policy, labels, ports = rendered(moved)
    assert policy is not None and (ports["webhook"], ports["metrics"]) == (9555, 9090)
    assert admitted(policy, labels, TENANT_POD, 9555) and admitted(policy, labels, TENANT_POD, 9090)
    assert not admitted(policy, labels, TENANT_POD, WEBHOOK)

    no_webhook = {**RESTRICTED, "webhook": {"enabled": False}}
    assert not reachable(no_webhook, API_SERVER, WEBHOOK)
    outside = {**RESTRICTED, "webhook": {"url": "https://127.0.0.1:9555"}}  # served by an operator elsewhere
    assert not reachable(outside, API_SERVER, WEBHOOK)
    nothing_served = {"webhook": {"enabled": False}, "metrics": {"enabled": False}}
    policy, labels, _ = rendered(nothing_served)
    assert policy is not None and policy["spec"]["ingress"] == []
    assert not admitted(policy, labels, API_SERVER, WEBHOOK) and not admitted(policy, labels, PROMETHEUS, METRICS)


def test_it_can_be_turned_off() -> None:
    policy, _, _ = rendered({"networkPolicy": {"enabled": False}})
    assert policy is None


def notes(tmp_path: Path, values: JSON) -> str:
    """The install notes as `helm install` prints them (`helm template` skips NOTES.txt, so a copy of the chart
    renders it through a template that includes it)."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    text = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "notes-as-yaml.yaml").write_text(
        '{{- define "notes" }}' + text + '{{- end }}\nnotes: {{ include "notes" . | toJson }}\n'
    )
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    out = helm("template", "x", str(chart), "--show-only", "templates/notes-as-yaml.yaml", "--values", str(values_file))
    return str(yaml.safe_load(out)["notes"])


def test_the_install_notes_warn_while_the_webhook_port_is_open_to_all(tmp_path: Path) -> None:
    assert "the webhook port admits any source" in notes(tmp_path / "a", {})
    assert "admits any source" not in notes(tmp_path / "b", RESTRICTED)
    assert "admits any source" not in notes(tmp_path / "c", {"networkPolicy": {"enabled": False}})
