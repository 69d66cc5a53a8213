"""The Helm chart end to end: `helm install`, then the operator runs outside the cluster exactly as the chart's
container would (its args and environment) but authenticated with a TokenRequest token of the chart's ServiceAccount,
not the admin kubeconfig. The full flow succeeding proves the chart's RBAC suffices; requests outside its rules are
refused (403); two operators sharing the chart's peering prove that only one acts.

The release runs no operator pod (`replicas: 0`): the local plane's nodes are kwok fakes that run no containers, and
the API server could not reach a pod's address anyway. The webhook is registered by URL (`webhook.url`) on a loopback
port, with the chart's default self-managed TLS: the operator creates its certificate Secret and patches the caBundle
with the ServiceAccount's permissions, and the API server calls it. Everything the release creates is scoped to this
module's namespaces (watchNamespaces, the webhook's namespaceSelector), so it does not touch other tests' objects.
"""

from __future__ import annotations

import base64
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from rightsizer.adapters.k8s import Kube
from rightsizer.api.constants import API_VERSION
from tests.chart.render import CHART, HelmError, OperatorContainer, helm
from tests.integration.conftest import NAMESPACE_LABEL
from tests.integration.helm import forbidden_lines, json_lines, service_account_kubeconfig
from tests.integration.kube import gone, wait_for
from tests.integration.objects import custom_object, meta, template_spec, typed
from tests.integration.operator import RESYNC_SECONDS, OperatorProcess, free_port
from tests.integration.test_operator import GROUP, LWS, PLURAL, VERSION, example, wait_condition

pytestmark = pytest.mark.integration

PEERING = "rightsizer"


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str  # where the release (ServiceAccount, webhook TLS Secret) lives
    apps: str  # the one namespace the operator watches
    webhook_port: int
    manifest: str
    service_account: str
    kubeconfig: Path  # authenticates as the ServiceAccount
    values: Path

    @property
    def fullname(self) -> str:
        return f"{self.name}-rightsizer"


def _create_namespace(core: client.CoreV1Api, name: str) -> None:
    core.create_namespace(typed(client.V1Namespace, {"metadata": {"name": name, "labels": {NAMESPACE_LABEL: "true"}}}))
    wait_for(lambda: core.read_namespaced_service_account("default", name), 30, f"ServiceAccount {name}/default")


@pytest.fixture(scope="module")
def release(
    kubeconfig: str, crds: None, core: client.CoreV1Api, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    suffix = uuid.uuid4().hex[:6]
    name, namespace, apps = f"rs{suffix}", f"rs{suffix}-system", f"rs{suffix}-apps"
    port = free_port()
    values = {
        "replicas": 0,
        "watchNamespaces": [apps],
        "ha": {"enabled": True, "peeringName": PEERING},
        # The Hub is allowed (the token test needs a Hub lookup) but points at a closed loopback port: nothing
        # leaves this machine, and a lookup that did get that far would fail with a connection error.
        "operator": {"allowHub": True, "logFormat": "json"},
        "hub": {"endpoint": f"http://127.0.0.1:{free_port()}"},
        "webhook": {
            "url": f"https://127.0.0.1:{port}",
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": apps}},
        },
    }
    directory = tmp_path_factory.mktemp("release")
    values_file = directory / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    for ns in (namespace, apps):
        _create_namespace(core, ns)
    try:
        helm("install", name, str(CHART), "--namespace", namespace, "--values", str(values_file), kubeconfig=kubeconfig)
        manifest = helm("get", "manifest", name, "--namespace", namespace, kubeconfig=kubeconfig)
        service_account = f"{name}-rightsizer"
        sa_kubeconfig = service_account_kubeconfig(
            core, kubeconfig, namespace, service_account, directory / "sa.kubeconfig"
        )
        yield Release(name, namespace, apps, port, manifest, service_account, sa_kubeconfig, values_file)
    finally:
        subprocess_helm_uninstall(name, namespace, kubeconfig)
        for ns in (apps, namespace):
            try:
                core.delete_namespace(ns)
            except ApiException as err:
                if err.status != 404:
                    raise
        for ns in (apps, namespace):
            wait_for(partial(_namespace_deleted, core, ns), 120, f"namespace {ns} to be deleted")


def _namespace_deleted(core: client.CoreV1Api, name: str) -> bool:
    return gone(lambda: core.read_namespace(name))


def subprocess_helm_uninstall(name: str, namespace: str, kubeconfig: str) -> None:
    try:
        helm("uninstall", name, "--namespace", namespace, "--wait", kubeconfig=kubeconfig)
    except HelmError as err:
        if "not found" not in str(err):
            raise


def chart_operator(release: Release, log: Path, *, priority: int, webhook: bool) -> ChartOperator:
    """`rightsizer run` with the chart container's args and environment; only what the cluster would supply
    (downward API, addresses, writable paths) is filled in for a process on this host."""
    container = OperatorContainer.of(release.manifest)
    assert set(container.value_from) == {"RIGHTSIZER_OPERATOR_NAMESPACE", "RIGHTSIZER_POD_INDEX"}
    env = {
        key: value
        for key, value in container.env.items()
        # OperatorProcess picks free metrics ports and a short resync for the test.
        if key not in {"RIGHTSIZER_METRICS_PORT", "RIGHTSIZER_METRICS_ADDRESS", "RIGHTSIZER_RECONCILE_INTERVAL_SECONDS"}
    }
    env |= {
        "RIGHTSIZER_OPERATOR_NAMESPACE": release.namespace,  # the fieldRef metadata.namespace
        "RIGHTSIZER_CONFIG_CACHE": str(log.parent / "cache"),
        "RIGHTSIZER_WEBHOOK_TLS_DIRECTORY": str(log.parent / f"webhook-tls-{priority}"),
        "RIGHTSIZER_WEBHOOK_HOST": "127.0.0.1",
        "RIGHTSIZER_WEBHOOK_PORT": str(release.webhook_port),
    }
    if not webhook:
        env["RIGHTSIZER_WEBHOOK_ENABLED"] = "false"  # one host port; in the cluster every pod has its own
    health_port = free_port()
    args = container.run_args({"0.0.0.0:8081": f"127.0.0.1:{health_port}", "$(RIGHTSIZER_POD_INDEX)": str(priority)})
    assert f"--peering={PEERING}" in args and "--log-format=json" in args
    return ChartOperator(str(release.kubeconfig), log, env, args=args, health_port=health_port)


class ChartOperator(OperatorProcess):
    def __init__(self, *args: Any, health_port: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.health_url = f"http://127.0.0.1:{health_port}/healthz"  # the chart's liveness and readiness probe


@pytest.fixture(scope="module")
def operator_as_sa(release: Release, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartOperator]:
    process = chart_operator(release, tmp_path_factory.mktemp("operator") / "operator.log", priority=2, webhook=True)
    process.start()
    wait_for(lambda: _listening(release.webhook_port), 30, "the webhook server to listen")
    yield process
    process.stop()


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def sa_api(release: Release) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(release.kubeconfig))
    yield api
    api.close()


@pytest.fixture
def policy(custom: client.CustomObjectsApi, release: Release) -> Iterator[Callable[..., str]]:
    created: list[str] = []

    def make(name: str, **spec: Any) -> str:
        full = f"{release.apps}-{name}"
        selector = {"matchLabels": {"kubernetes.io/metadata.name": release.apps}}
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "SizingPolicy",
            "metadata": {"name": full},
            "spec": {"namespaceSelector": selector, **spec},
        }
        custom.create_cluster_custom_object(GROUP, VERSION, "sizingpolicies", body)
        created.append(full)
        return full

    yield make
    for name in created:
        custom.delete_cluster_custom_object(GROUP, VERSION, "sizingpolicies", name)


def llmd(name: str, **spec: Any) -> dict[str, Any]:
    """The 8B example pinned to 2 GPUs per replica at a load one replica serves (see test_operator.small)."""
    body = example("llama-3.1-8b-h200.yaml")
    body["metadata"]["name"] = name
    body["spec"]["workload"]["concurrency"] = 16
    body["spec"].setdefault("gpu", {})["tensorParallelSize"] = 2
    body["spec"].update(spec)
    return body


def create(custom: client.CustomObjectsApi, namespace: str, body: dict[str, Any], dry_run: bool = False) -> Any:
    return custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body, dry_run="All" if dry_run else None
    )


def _rbac_denials(log: str) -> list[str]:
    """403s on resources. Denials of non-resource paths (`cannot get path "/api"`) are left out: the shared plane's
    API server answers them while it restarts for another test, before its RBAC caches are loaded."""
    return [line for line in forbidden_lines(log) if "cannot get path" not in line]


def assert_never_refused(operator: OperatorProcess) -> None:
    """The operator did the work itself: no reconcile failed and the API server refused nothing. (An object that
    appears is not proof on a shared plane: another test session's operator may be reconciling every namespace.)"""
    assert _rbac_denials(operator.log_path.read_text()) == [], "a request was refused: a rule is missing from the chart"
    failed = re.findall(
        r'^rightsizer_reconciles_total\{result="error"\} (\S+)$', httpx.get(operator.metrics_url).text, re.M
    )
    assert not failed or float(failed[0]) == 0, f"{failed[0]} reconciles failed; log: {operator.log_tail()}"


# --- the install and the flow ---------------------------------------------------------------------------------------


def test_the_operator_runs_as_the_chart_service_account(
    release: Release,
    operator_as_sa: ChartOperator,
    sa_api: client.ApiClient,
    api_client: client.ApiClient,
    core: client.CoreV1Api,
    kubeconfig: str,
) -> None:
    review = client.AuthenticationV1Api(sa_api).create_self_subject_review(
        typed(client.V1SelfSubjectReview, {"apiVersion": "authentication.k8s.io/v1"})
    )
    assert review.status is not None and review.status.user_info is not None, review
    assert review.status.user_info.username == f"system:serviceaccount:{release.namespace}:{release.service_account}"
    assert httpx.get(operator_as_sa.health_url, timeout=5).status_code == 200
    # Self-managed TLS, with the ServiceAccount's rights: the Secret in the release namespace, its CA in both
    # webhook configurations.
    secret = core.read_namespaced_secret(f"{release.fullname}-webhook-tls", release.namespace)
    assert secret.type == "kubernetes.io/tls" and secret.data is not None, secret.type
    ca = base64.b64decode(secret.data["ca.crt"])
    admission = client.AdmissionregistrationV1Api(api_client)
    validating = admission.read_validating_webhook_configuration(release.fullname).webhooks or []
    mutating = admission.read_mutating_webhook_configuration(release.fullname).webhooks or []
    assert validating and mutating, "the chart registers webhooks in both configurations"
    for client_config in [w.client_config for w in validating] + [w.client_config for w in mutating]:
        assert client_config.ca_bundle is not None and client_config.url is not None, client_config
        assert base64.b64decode(client_config.ca_bundle) == ca
        assert client_config.url.startswith(f"https://127.0.0.1:{release.webhook_port}/")
    # The chart renders no caBundle, so an upgrade (Helm's three-way merge) keeps the one the operator wrote.
    helm("upgrade", release.name, str(CHART), "-n", release.namespace, "-f", str(release.values), kubeconfig=kubeconfig)
    kept = (admission.read_validating_webhook_configuration(release.fullname).webhooks or [])[0].client_config
    assert kept.ca_bundle is not None and base64.b64decode(kept.ca_bundle) == ca


def test_an_example_with_a_token_secret_becomes_ready(
    release: Release,
    operator_as_sa: ChartOperator,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
) -> None:
    token = typed(client.V1Secret, {"metadata": {"name": "hf-token"}, "stringData": {"token": "hf_x"}})
    core.create_namespaced_secret(release.apps, token)
    body = llmd("chat", serving={**example("llama-3.1-8b-h200.yaml")["spec"]["serving"]})
    body["spec"]["serving"]["hfTokenSecretRef"] = {"name": "hf-token", "key": "token"}  # read by name (rbac)
    create(custom, release.apps, body)
    obj = wait_condition(custom, release.apps, "chat", "Ready")
    deployment = apps.read_namespaced_deployment("chat", release.apps)
    assert template_spec(deployment).containers[0].args == obj["status"]["plan"]["vllmArgs"]
    assert {m.manager for m in meta(deployment).managed_fields or []} >= {"rightsizer"}
    events = core.list_namespaced_event(release.apps, field_selector="involvedObject.name=chat").items
    assert any(e.reason == "Planned" for e in events), [e.reason for e in events]
    assert_never_refused(operator_as_sa)


def test_a_token_secret_it_may_not_read_is_a_condition_that_names_the_fix(
    release: Release, operator_as_sa: ChartOperator, custom: client.CustomObjectsApi, core: client.CoreV1Api
) -> None:
    """rbac.hfTokenSecretNames limits which Secrets it can read: another name is a 403, reported on the object.

    The model is not in the built-in catalog, so its config.json must come from the Hub, which is when the token is
    read (a catalog model never needs it). The 403 comes before any request to the Hub."""
    token = typed(client.V1Secret, {"metadata": {"name": "my-token"}, "stringData": {"token": "hf_x"}})
    core.create_namespaced_secret(release.apps, token)
    body = llmd("locked", model={"name": "acme/private-llama-8b"})
    body["spec"]["serving"]["hfTokenSecretRef"] = {"name": "my-token", "key": "token"}
    create(custom, release.apps, body)
    obj = wait_condition(custom, release.apps, "locked", "Sized", "False")
    sized = next(c for c in obj["status"]["conditions"] if c["type"] == "Sized")
    assert sized["reason"] == "ModelConfigUnavailable"
    assert "spec.serving.hfTokenSecretRef" in sized["message"] and "rbac.hfTokenSecretNames" in sized["message"]


def test_a_model_config_from_a_config_map(
    release: Release, operator_as_sa: ChartOperator, custom: client.CustomObjectsApi, core: client.CoreV1Api
) -> None:
    config_json = Path(__file__).parents[2] / "operator/rightsizer/facts/models/meta-llama--Llama-3.1-8B-Instruct.json"
    config_map = {"metadata": {"name": "custom-config"}, "data": {"config.json": config_json.read_text()}}
    core.create_namespaced_config_map(release.apps, typed(client.V1ConfigMap, config_map))
    model = {"name": "acme/llama-8b-finetune", "configMapRef": {"name": "custom-config", "key": "config.json"}}
    create(custom, release.apps, llmd("custom", model=model, replicas={"min": 1, "max": 2}))
    obj = wait_condition(custom, release.apps, "custom", "Ready")
    assert obj["status"]["plan"]["gpuProduct"] == "NVIDIA-H200"
    assert_never_refused(operator_as_sa)


def test_policy_is_enforced_through_the_registered_webhook(
    release: Release,
    operator_as_sa: ChartOperator,
    custom: client.CustomObjectsApi,
    api_client: client.ApiClient,
    policy: Callable[..., str],
) -> None:
    name = policy("budget", limits={"maxReplicas": 2, "namespaceQuota": [{"product": "NVIDIA-H200", "maxGpus": 64}]})

    def refused() -> str | None:
        try:
            create(custom, release.apps, llmd("too-many", replicas={"min": 1, "max": 4}), dry_run=True)
        except ApiException as err:
            return str(err.body) if err.status in (403, 422) else None
        return None  # the operator has not seen the policy yet

    message = wait_for(refused, 30, "the webhook to refuse a spec over the policy")
    assert f"SizingPolicy {name} allows 2" in message and "limits.maxReplicas" in message
    # Judged by this operator, through the release's webhook configuration (URL and self-managed caBundle).
    assert '"POST /validate-llmdeployment' in operator_as_sa.log_path.read_text()
    create(custom, release.apps, llmd("within", replicas={"min": 1, "max": 2}))
    # Admission writes nothing to the cluster (its GPU reservations stay in the operator's memory): no quota Lease.
    leases = client.CoordinationV1Api(api_client).list_namespaced_lease(release.apps).items
    assert not [meta(lease).name for lease in leases if meta(lease).name == "rightsizer-gpu-quota"]
    wait_condition(custom, release.apps, "within", "Ready")
    assert_never_refused(operator_as_sa)


def test_a_replica_that_outgrows_a_node_moves_to_a_leader_worker_set(
    release: Release, operator_as_sa: ChartOperator, custom: client.CustomObjectsApi, apps: client.AppsV1Api
) -> None:
    create(custom, release.apps, llmd("grow", replicas={"min": 1, "max": 2}))
    wait_condition(custom, release.apps, "grow", "Sized")
    wait_for(lambda: apps.read_namespaced_deployment("grow", release.apps), 30, "the Deployment")
    # A merge patch: drop the TP pin llmd() sets, so the 405B is free to span nodes.
    spec = {
        "model": {"name": "meta-llama/Llama-3.1-405B-Instruct"},
        "gpu": {"products": ["H100"], "tensorParallelSize": None},
    }
    custom.patch_namespaced_custom_object(GROUP, VERSION, release.apps, PLURAL, "grow", {"spec": spec})
    wait_for(
        lambda: custom.get_namespaced_custom_object(LWS[0], LWS[1], release.apps, LWS[2], "grow"),
        60,
        "the LeaderWorkerSet (server-side apply)",
    )
    wait_for(lambda: gone(lambda: apps.read_namespaced_deployment("grow", release.apps)), 60, "the Deployment deleted")
    assert_never_refused(operator_as_sa)


def test_the_autoscalers_writes_are_allowed(
    release: Release,
    operator_as_sa: ChartOperator,
    sa_api: client.ApiClient,
    custom: client.CustomObjectsApi,
    apps: client.AppsV1Api,
    core: client.CoreV1Api,
) -> None:
    """The autoscaler acts only on live latency, which kwok's pods do not serve: its two writes are made here by the
    operator's own Kube methods, with the ServiceAccount's credentials."""
    create(custom, release.apps, llmd("scaled", replicas={"min": 1, "max": 3}))
    obj = wait_condition(custom, release.apps, "scaled", "Ready")
    kube = Kube(sa_api)
    kube.scale(API_VERSION, "LLMDeployment", release.apps, "scaled", 2)  # spec.replicas.desired via /scale
    wait_for(lambda: apps.read_namespaced_deployment("scaled", release.apps).spec.replicas == 2, 30, "2 replicas")
    kube.post_event(obj, type_="Normal", reason="ScaledUp", message="e2e", now=obj["metadata"]["creationTimestamp"])
    events = core.list_namespaced_event(release.apps, field_selector="involvedObject.name=scaled").items
    assert any(e.reason == "ScaledUp" for e in events)
    assert_never_refused(operator_as_sa)


# --- what it may not do ---------------------------------------------------------------------------------------------


def _forbidden_requests(release: Release) -> list[tuple[str, Callable[[client.ApiClient], Any]]]:
    labels = {"app": "intruder"}
    deployment = {
        "metadata": {"name": "intruder"},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
        },
    }
    escalation = {
        "metadata": {"name": f"{release.name}-escalate"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": release.service_account, "namespace": release.namespace}],
    }
    return [
        (
            "change an LLMDeployment's spec (it only writes status, so Argo CD never sees drift)",
            lambda api: client.CustomObjectsApi(api).patch_namespaced_custom_object(
                GROUP, VERSION, release.apps, PLURAL, "chat", {"spec": {"replicas": {"min": 2, "max": 4}}}
            ),
        ),
        (
            "create a Deployment in a namespace it does not watch",
            lambda api: client.AppsV1Api(api).create_namespaced_deployment(
                "default", typed(client.V1Deployment, deployment)
            ),
        ),
        (
            "list the LLMDeployments of a namespace it does not watch",
            lambda api: client.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL),
        ),
        (
            "read a Secret other than the token names it is allowed",
            lambda api: client.CoreV1Api(api).read_namespaced_secret("other", release.apps),
        ),
        ("list Secrets", lambda api: client.CoreV1Api(api).list_namespaced_secret(release.apps)),
        (
            "replace another webhook configuration's caBundle",
            lambda api: client.AdmissionregistrationV1Api(api).patch_validating_webhook_configuration(
                "lws-validating-webhook-configuration", {"metadata": {"labels": {"x": "y"}}}
            ),
        ),
        ("delete a node", lambda api: client.CoreV1Api(api).delete_node("h100-0")),
        (
            "grant itself more rights",
            lambda api: client.RbacAuthorizationV1Api(api).create_cluster_role_binding(
                typed(client.V1ClusterRoleBinding, escalation)
            ),
        ),
        (
            "write a SizingPolicy (platform teams own them)",
            lambda api: client.CustomObjectsApi(api).delete_cluster_custom_object(
                GROUP, VERSION, "sizingpolicies", "any"
            ),
        ),
    ]


def test_writes_and_reads_outside_its_rules_are_refused(
    release: Release, sa_api: client.ApiClient, core: client.CoreV1Api
) -> None:
    core.create_namespaced_secret(
        release.apps, typed(client.V1Secret, {"metadata": {"name": "other"}, "stringData": {"k": "v"}})
    )
    allowed = []
    for what, request in _forbidden_requests(release):
        try:
            request(sa_api)
            allowed.append(what)
        except ApiException as err:
            assert err.status == 403, f"{what}: {err.status} {err.reason}"
    assert not allowed, f"the chart's ServiceAccount may: {allowed}"


# --- high availability ----------------------------------------------------------------------------------------------


def _peers(custom: client.CustomObjectsApi, namespace: str) -> dict[str, Any]:
    body = custom_object(custom.get_namespaced_custom_object("kopf.dev", "v1", namespace, "kopfpeerings", PEERING))
    return dict(body.get("status") or {})


def test_only_the_highest_priority_peer_acts_and_a_standby_takes_over(
    release: Release,
    operator_as_sa: ChartOperator,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    tmp_path: Path,
) -> None:
    active = operator_as_sa
    create(custom, release.apps, llmd("ha", replicas={"min": 1, "max": 2}))
    wait_condition(custom, release.apps, "ha", "Ready")
    standby = chart_operator(release, tmp_path / "standby.log", priority=1, webhook=False)
    standby.start()
    try:
        wait_for(lambda: sorted(p["priority"] for p in _peers(custom, release.apps).values()) == [1, 2], 30, "peers")
        reconciles = active.metric("rightsizer_reconciles_total")
        time.sleep(3 * RESYNC_SECONDS + 1)
        assert active.metric("rightsizer_reconciles_total") > reconciles  # the active peer keeps re-checking...
        assert standby.metric("rightsizer_reconciles_total") == 0  # ...the standby never reconciles...
        assert standby.metric("rightsizer_api_writes_total") == 0  # ...and never writes

        active.stop()  # SIGTERM: kopf removes itself from the peering, so the standby resumes at once
        wait_for(lambda: standby.metric("rightsizer_reconciles_total") > 0, 30, "the standby to take over")
        writes = standby.metric("rightsizer_api_writes_total")
        core.delete_namespaced_service("ha", release.apps)
        wait_for(lambda: core.read_namespaced_service("ha", release.apps), 30, "the Service restored")
        assert standby.metric("rightsizer_api_writes_total") > writes  # restored by the standby, now active
    finally:
        standby.stop()
        log = standby.log_path.read_text()
        if active.process is None:
            active.start()  # the module's operator, for the tests after this one
    assert _rbac_denials(log) == [], "the standby was refused a request: a rule is missing from the chart"


def test_the_operator_logged_json_and_was_never_refused(operator_as_sa: ChartOperator) -> None:
    log = operator_as_sa.log_path.read_text()
    entries = json_lines(log)  # fails on any line that is not one JSON object
    assert entries and {"time", "level", "logger", "message"} <= set(entries[0])
    assert any(e.get("object", {}).get("kind") == "LLMDeployment" for e in entries), "no per-object line"
    assert_never_refused(operator_as_sa)
