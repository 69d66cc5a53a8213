"""The Helm chart without a cluster: it lints, renders for every mode, and agrees with the operator's own contract
(settings, kopf webhook handlers, pools and policy models, CRDs); manifests/ is a fresh render of it.

The chart on a real API server: tests/integration/test_chart_api.py (server-side dry-run of every rendered object)
and tests/integration/test_install.py (helm install, the operator running with the chart's ServiceAccount).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from rightsizer.adapters.files import load_pools
from rightsizer.adapters.settings import OperatorSettings
from rightsizer.api.v1alpha1.sizingpolicy import SizingPolicy
from tests.chart.render import CHART, REPO, HelmError, OperatorContainer, documents, helm, objects, template

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "ha": {"ha": {"enabled": True}, "replicas": 3},
    "namespaced-ha": {"ha": {"enabled": True}, "replicas": 2, "watchNamespaces": ["team-a", "team-b"]},
    "cert-manager": {"webhook": {"tls": {"mode": "certManager"}}, "metrics": {"serviceMonitor": {"enabled": True}}},
    "own-issuer": {"webhook": {"tls": {"mode": "certManager", "certManager": {"issuerRef": {"name": "corp-ca"}}}}},
    "own-secret": {"webhook": {"tls": {"mode": "secret", "secretName": "corp-tls", "caBundle": "Q0E="}}},
    "no-webhook": {"webhook": {"enabled": False}, "metrics": {"enabled": False}},
    "out-of-cluster": {"replicas": 0, "webhook": {"url": "https://127.0.0.1:9555"}},
    "network-policy": {
        "networkPolicy": {
            "webhook": {
                "apiServerCIDRs": ["10.0.0.0/28", "fd00::/64"],
                "konnectivityAgents": True,
                "extraFrom": [{"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.1.0/24"]}}],
            },
            "metrics": {
                "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
            },
        }
    },
    "pools-and-policies": {
        "pools": yaml.safe_load((REPO / "examples" / "pools.yaml").read_text()),
        "sizingPolicies": [
            {"name": doc["metadata"]["name"], "spec": doc["spec"]}
            for path in sorted((REPO / "examples" / "policies").glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text())
            if doc and doc.get("kind") == "SizingPolicy"
        ],
        "hub": {"tokenSecret": {"name": "hf", "key": "token"}, "endpoint": "https://hf-mirror.internal"},
        "rbac": {"readAllSecrets": True},
    },
}


def values_file(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_lint(name: str, tmp_path: Path) -> None:
    out = helm("lint", "--strict", str(CHART), "--values", str(values_file(tmp_path, VALUE_SETS[name])))
    assert "1 chart(s) linted, 0 chart(s) failed" in out


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"ha": {"enabled": True}, "replicas": 1}, "ha.enabled needs replicas >= 2"),
        ({"webhook": {"tls": {"mode": "letsencrypt"}}}, "webhook.tls.mode must be"),
        ({"webhook": {"tls": {"mode": "secret"}}}, "needs webhook.tls.caBundle"),
    ],
)
def test_values_that_cannot_work_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(HelmError, match=message):
        template(values)


# --- the operator container ----------------------------------------------------------------------------------------


def container(values: dict[str, Any]) -> OperatorContainer:
    return OperatorContainer.of(template(values))


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_environment_variable_is_an_operator_setting(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A typo in the chart would be silently ignored by pydantic-settings: check every RIGHTSIZER_* name."""
    c = container(VALUE_SETS[name])
    settings = {f"RIGHTSIZER_{field.upper()}" for field in OperatorSettings.model_fields}
    # Two are not settings: the pod index only feeds --priority, and the Hub client reads its cache path itself.
    assert "RIGHTSIZER_CONFIG_CACHE" in (REPO / "operator" / "rightsizer" / "adapters" / "hub.py").read_text()
    others = {"RIGHTSIZER_POD_INDEX", "RIGHTSIZER_CONFIG_CACHE"}
    ours = {n for n in [*c.env, *c.value_from] if n.startswith("RIGHTSIZER_")} - others
    assert ours <= settings, ours - settings
    for key in [k for k in os.environ if k.startswith("RIGHTSIZER_")]:
        monkeypatch.delenv(key)
    for key, value in c.env.items():
        monkeypatch.setenv(key, value)
    loaded = OperatorSettings()  # every value parses as the operator reads it (JSON lists, booleans, numbers)
    assert loaded.namespaces == VALUE_SETS[name].get("watchNamespaces", [])


@pytest.mark.parametrize("name", VALUE_SETS)
def test_the_container_is_locked_down_and_probed_on_the_liveness_endpoint(name: str) -> None:
    c = container(VALUE_SETS[name])
    security = c.spec["securityContext"]
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    assert security["capabilities"]["drop"] == ["ALL"]
    workload = next(d for d in documents(template(VALUE_SETS[name])) if d["kind"] in ("Deployment", "StatefulSet"))
    pod = workload["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] != 0
    assert c.spec["resources"]["requests"] and c.spec["resources"]["limits"]["memory"]
    liveness = next(a for a in c.args if a.startswith("--liveness="))
    port = {p["name"]: p["containerPort"] for p in c.spec["ports"]}["health"]
    assert liveness == f"--liveness=http://0.0.0.0:{port}/healthz"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert c.spec[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    mounts = {m["mountPath"] for m in c.spec["volumeMounts"]}
    assert {"/tmp", "/var/cache/rightsizer"} <= mounts  # writable places on a read-only root
    assert c.env["RIGHTSIZER_CONFIG_CACHE"].startswith("/var/cache/rightsizer/")
    if c.env.get("RIGHTSIZER_WEBHOOK_SELF_MANAGED_TLS") == "true":
        assert c.env["RIGHTSIZER_WEBHOOK_TLS_DIRECTORY"].startswith("/tmp/")


def test_the_operator_runs_the_command_the_cli_accepts() -> None:
    from rightsizer.cli.main import build_parser

    c = container({"ha": {"enabled": True}, "replicas": 2})
    args = build_parser().parse_args(["run", *c.run_args({"$(RIGHTSIZER_POD_INDEX)": "1"})])
    assert (args.peering, args.priority, args.log_format) == ("rightsizer", 1, "json")
    assert c.value_from["RIGHTSIZER_POD_INDEX"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']"
    )


# --- webhook ----------------------------------------------------------------------------------------------------


def kopf_webhook_handlers() -> dict[str, Any]:
    """The admission handlers rightsizer.controller.webhooks registers with kopf (its id is the URL path)."""
    code = (
        "import json, kopf, rightsizer.controller.webhooks\n"
        "print(json.dumps([{'id': h.id, 'type': h.reason.value, 'operations': h.operations,"
        " 'side_effects': h.side_effects} for h in kopf.get_default_registry()._webhooks.get_all_handlers()]))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "operator")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    return {h["id"]: h for h in yaml.safe_load(out)}


@pytest.mark.parametrize("name", ["defaults", "out-of-cluster", "cert-manager", "own-secret"])
def test_webhook_configurations_match_the_kopf_handlers(name: str) -> None:
    handlers = kopf_webhook_handlers()
    rendered = objects(VALUE_SETS[name])
    kinds = {"mutating": "MutatingWebhookConfiguration", "validating": "ValidatingWebhookConfiguration"}
    for handler in handlers.values():
        configuration = rendered[(kinds[handler["type"]], "rightsizer")]
        (webhook,) = configuration["webhooks"]
        client_config = webhook["clientConfig"]
        path = client_config["service"]["path"] if "service" in client_config else client_config["url"]
        assert path.endswith(f"/{handler['id']}")
        assert webhook["name"] == f"{handler['id']}.rightsizer.dev"
        assert webhook["sideEffects"] == ("NoneOnDryRun" if handler["side_effects"] else "None")
        assert webhook["failurePolicy"] == "Fail"  # docs/policy.md
        assert webhook["rules"][0]["operations"] == handler["operations"]
        assert webhook["rules"][0]["resources"] == ["llmdeployments"]


def test_webhook_service_and_certificate_names_agree() -> None:
    rendered = objects({})
    service = rendered[("Service", "rightsizer-webhook")]
    assert service["spec"]["ports"][0]["targetPort"] == "webhook"
    env = container({}).env
    names = yaml.safe_load(env["RIGHTSIZER_WEBHOOK_TLS_DNS_NAMES"])
    assert "rightsizer-webhook.rs.svc" in names  # the name the API server dials for a service clientConfig
    assert env["RIGHTSIZER_WEBHOOK_TLS_SECRET"] == "rightsizer-webhook-tls"
    assert env["RIGHTSIZER_WEBHOOK_CONFIGURATION_NAME"] == "rightsizer"
    assert env["RIGHTSIZER_WEBHOOK_MANAGE_CONFIGURATION"] == "false"
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        # No caBundle in the manifest: the operator owns it, so Helm upgrades and Argo CD syncs leave it alone.
        assert "caBundle" not in rendered[(kind, "rightsizer")]["webhooks"][0]["clientConfig"]


def test_cert_manager_issues_the_certificate_and_injects_the_ca() -> None:
    rendered = objects(VALUE_SETS["cert-manager"])
    certificate = rendered[("Certificate", "rightsizer-webhook")]["spec"]
    assert certificate["secretName"] == "rightsizer-webhook-tls"
    assert "rightsizer-webhook.rs.svc" in certificate["dnsNames"]
    assert certificate["issuerRef"]["name"] == "rightsizer-webhook-ca"
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        annotations = rendered[(kind, "rightsizer")]["metadata"]["annotations"]
        assert annotations["cert-manager.io/inject-ca-from"] == "rs/rightsizer-webhook"
    c = container(VALUE_SETS["cert-manager"])
    assert "RIGHTSIZER_WEBHOOK_SELF_MANAGED_TLS" not in c.env
    assert c.env["RIGHTSIZER_WEBHOOK_CERT_FILE"] == "/etc/rightsizer/webhook-tls/tls.crt"
    own = objects(VALUE_SETS["own-issuer"])
    assert own[("Certificate", "rightsizer-webhook")]["spec"]["issuerRef"]["name"] == "corp-ca"
    assert not any(kind == "Issuer" for kind, _ in own)


def test_an_out_of_cluster_webhook_is_registered_by_url_and_named_in_the_certificate() -> None:
    rendered = objects(VALUE_SETS["out-of-cluster"])
    url = rendered[("ValidatingWebhookConfiguration", "rightsizer")]["webhooks"][0]["clientConfig"]["url"]
    assert url == "https://127.0.0.1:9555/validate-llmdeployment"
    assert ("Service", "rightsizer-webhook") not in rendered
    assert container(VALUE_SETS["out-of-cluster"]).env["RIGHTSIZER_WEBHOOK_URL_HOST"] == "127.0.0.1"
    assert rendered[("Deployment", "rightsizer")]["spec"]["replicas"] == 0


# --- RBAC -----------------------------------------------------------------------------------------------------------


def rules(rendered: dict[tuple[str, str], dict[str, Any]], kind: str, name: str) -> list[dict[str, Any]]:
    return list(rendered[(kind, name)]["rules"])


def grants(rule_list: list[dict[str, Any]], resource: str) -> set[str]:
    return {v for r in rule_list if resource in r["resources"] for v in r["verbs"]}


def test_rbac_defaults() -> None:
    rendered = objects({})
    cluster = rules(rendered, "ClusterRole", "rightsizer-cluster")
    workloads = rules(rendered, "ClusterRole", "rightsizer-workloads")
    assert all("*" not in r["verbs"] and "*" not in r["resources"] for r in cluster + workloads)
    assert grants(workloads, "llmdeployments") == {"list", "watch"}  # never its spec or metadata
    assert grants(workloads, "llmdeployments/status") == {"patch"}
    assert grants(workloads, "llmdeployments/scale") == {"patch"}  # the autoscaler's replicas.desired
    assert grants(cluster, "nodes") == {"list", "watch"}
    assert grants(cluster, "sizingpolicies") == {"list", "watch"}
    assert grants(cluster, "sizingpolicies/status") == {"patch"}  # the Accepted condition
    (secret_rule,) = [r for r in workloads if "secrets" in r["resources"]]
    assert secret_rule == {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["hf-token"], "verbs": ["get"]}
    webhook_rule = next(r for r in cluster if "validatingwebhookconfigurations" in r["resources"])
    assert webhook_rule["resourceNames"] == ["rightsizer"] and webhook_rule["verbs"] == ["get", "patch"]
    tls = rules(rendered, "Role", "rightsizer-webhook-tls")
    assert tls[1]["resourceNames"] == ["rightsizer-webhook-tls"]
    binding = rendered[("ClusterRoleBinding", "rightsizer-workloads")]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "rightsizer", "namespace": "rs"}]
    assert not any(kind == "ClusterKopfPeering" for kind, _ in rendered)


def test_rbac_with_watched_namespaces_is_granted_only_there() -> None:
    rendered = objects(VALUE_SETS["namespaced-ha"])
    assert ("ClusterRoleBinding", "rightsizer-workloads") not in rendered
    rendered_docs = list(documents(template(VALUE_SETS["namespaced-ha"])))
    bindings = [d for d in rendered_docs if d["kind"] == "RoleBinding" and d["roleRef"]["kind"] == "ClusterRole"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    peerings = [d for d in rendered_docs if d["kind"] == "KopfPeering"]
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]
    assert grants(rules(rendered, "ClusterRole", "rightsizer-workloads"), "kopfpeerings") == {
        "list",
        "watch",
        "get",
        "patch",
    }
    assert "clusterkopfpeerings" not in str(rules(rendered, "ClusterRole", "rightsizer-cluster"))


def test_rbac_follows_the_options() -> None:
    assert "secrets" not in str(
        rules(objects({"rbac": {"hfTokenSecretNames": []}}), "ClusterRole", "rightsizer-workloads")
    )
    everything = rules(objects(VALUE_SETS["pools-and-policies"]), "ClusterRole", "rightsizer-workloads")
    assert next(r for r in everything if "secrets" in r["resources"]).get("resourceNames") is None
    cert_manager = objects(VALUE_SETS["cert-manager"])
    assert ("Role", "rightsizer-webhook-tls") not in cert_manager  # nothing to write: cert-manager does it
    assert "webhookconfigurations" not in str(rules(cert_manager, "ClusterRole", "rightsizer-cluster"))
    no_webhook = objects(VALUE_SETS["no-webhook"])
    assert "leases" not in str(rules(no_webhook, "ClusterRole", "rightsizer-workloads"))  # the webhook's ledger
    assert not any("Webhook" in kind for kind, _ in no_webhook)
    assert (
        objects({"rbac": {"create": False}})
        .keys()
        .isdisjoint({("ClusterRole", "rightsizer-cluster"), ("ClusterRole", "rightsizer-workloads")})
    )


# --- HA ---------------------------------------------------------------------------------------------------------


def test_ha_runs_a_statefulset_whose_ordinal_is_the_peering_priority() -> None:
    rendered = objects(VALUE_SETS["ha"])
    statefulset = rendered[("StatefulSet", "rightsizer")]
    assert statefulset["spec"]["replicas"] == 3 and statefulset["spec"]["podManagementPolicy"] == "Parallel"
    assert rendered[("ClusterKopfPeering", "rightsizer")]
    service = rendered[("Service", "rightsizer-webhook")]
    assert service["spec"]["selector"]["statefulset.kubernetes.io/pod-name"] == "rightsizer-2"  # the acting peer
    cluster = rules(rendered, "ClusterRole", "rightsizer-cluster")
    assert grants(cluster, "clusterkopfpeerings") == {"list", "watch", "get", "patch"}
    single = objects({})
    assert single[("Deployment", "rightsizer")]["spec"]["strategy"] == {"type": "Recreate"}  # never two at once


# --- values that become objects -----------------------------------------------------------------------------------


def test_declared_pools_reach_the_operator_as_a_file_it_can_load(tmp_path: Path) -> None:
    rendered = objects(VALUE_SETS["pools-and-policies"])
    pools_file = tmp_path / "pools.yaml"
    pools_file.write_text(rendered[("ConfigMap", "rightsizer-pools")]["data"]["pools.yaml"])
    assert [p.name for p in load_pools(pools_file)] == ["h200", "h100"]
    c = container(VALUE_SETS["pools-and-policies"])
    assert c.env["RIGHTSIZER_POOLS_FILE"] == "/etc/rightsizer/pools/pools.yaml"
    assert c.value_from["HF_TOKEN"] == {"secretKeyRef": {"name": "hf", "key": "token"}}


def test_default_sizing_policies_are_valid_policies() -> None:
    rendered = [d for d in documents(template(VALUE_SETS["pools-and-policies"])) if d["kind"] == "SizingPolicy"]
    assert len(rendered) == len(VALUE_SETS["pools-and-policies"]["sizingPolicies"]) > 0
    for doc in rendered:
        SizingPolicy.model_validate(doc)


# --- generated files ------------------------------------------------------------------------------------------------


def test_chart_crds_are_the_generated_crds() -> None:
    generated = {p.name: p.read_text() for p in (REPO / "crds").glob("*.yaml")}
    in_chart = {p.name: p.read_text() for p in (CHART / "crds").glob("rightsizer.dev_*.yaml")}
    assert in_chart == generated, "run `make chart-crds`"


def test_manifests_are_a_fresh_render_of_the_chart() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "hack" / "manifests.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    kustomization = yaml.safe_load((REPO / "manifests" / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["rightsizer.yaml"]
    kinds = [d["kind"] for d in documents((REPO / "manifests" / "rightsizer.yaml").read_text())]
    assert kinds[0] == "Namespace" and kinds.count("CustomResourceDefinition") == 4


def test_the_service_monitor_keeps_the_deployments_namespace_label() -> None:
    """Per-deployment metrics carry namespace=<the LLMDeployment's>; with honorLabels Prometheus keeps it instead of
    renaming it exported_namespace in favour of the operator pod's namespace (prometheus-operator Endpoint docs)."""
    from tests.chart.render import objects

    rendered = objects({"metrics": {"serviceMonitor": {"enabled": True}}})
    (monitor,) = [o for (kind, _), o in rendered.items() if kind == "ServiceMonitor"]
    assert [e.get("honorLabels") for e in monitor["spec"]["endpoints"]] == [True]
