"""GitOps with a real Argo CD: an LLMDeployment committed to git, synced by Argo CD's application controller, and
judged by Argo CD's own health evaluation of manifests/argocd/llmdeployment-health.lua (its embedded Lua 5.1).

The setup is docs/install.md's "Argo CD" section, read from that page: its `kubectl -n argocd patch configmap
argocd-cm --patch-file manifests/argocd/argocd-cm.yaml` line is run as written (with the plane's kubectl), and the
Application is the `team-a-models` example of manifests/argocd/application.yaml with only its repoURL and destination
namespace replaced. Argo CD itself runs as processes (tests/integration/argocd.py).

The GPUs are the H100 pool (one node per 8-GPU replica). Another tenant's Deployment holds whole nodes while the test
needs pods to wait, so each waiting state lasts as long as the test wants instead of the second kwok takes to start a
pod. The operator under test is this module's own, for its own namespace, with the default progress deadline (600 s:
a wait is Progressing until then): the session operator's 45 s had passed by the time Argo CD showed the first
sync, which it then judged Degraded.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.integration import argocd
from tests.integration.argocd import ArgoCD
from tests.integration.autoscaling_env import namespaced_operator, scratch_namespace
from tests.integration.kube import GPU_TOLERATION, POOL_LABEL, wait_for
from tests.integration.objects import ready_replicas, typed
from tests.integration.operator import OperatorProcess
from tests.integration.test_operator import condition, get, small

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
INSTALL_DOC = REPO / "docs" / "install.md"
APPLICATIONS = REPO / "manifests" / "argocd" / "application.yaml"
APP = "team-a-models"
REFRESH_S = 10.0  # how often a wait asks Argo CD to refresh (as its UI's Refresh button does)
NAME = "chat"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "rightsizer-test",
    "GIT_AUTHOR_EMAIL": "test@rightsizer.invalid",
    "GIT_COMMITTER_NAME": "rightsizer-test",
    "GIT_COMMITTER_EMAIL": "test@rightsizer.invalid",
}


def documented_patch_command() -> list[str]:
    """The argocd-cm step of docs/install.md, as written there."""
    match = re.search(r"`(kubectl -n argocd patch configmap argocd-cm [^`]+)`", INSTALL_DOC.read_text())
    assert match, "docs/install.md no longer says how to patch argocd-cm"
    return shlex.split(match.group(1))


@pytest.fixture(scope="module")
def argo(
    kubeconfig: str, core: client.CoreV1Api, custom: client.CustomObjectsApi, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ArgoCD]:
    why = argocd.missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    if core.list_namespace(field_selector=f"metadata.name={argocd.NAMESPACE}").items:
        argocd.delete_namespace(core, custom)  # left by an interrupted run
    argocd.prepare_namespace(kubeconfig, core, custom)
    command = documented_patch_command()
    subprocess.run(
        [str(argocd.kubectl()), "--kubeconfig", kubeconfig, *command[1:]], cwd=REPO, check=True, capture_output=True
    )
    process = ArgoCD(kubeconfig, tmp_path_factory.mktemp("argocd"))
    try:
        process.start()
        yield process
    finally:
        process.stop()
        argocd.delete_namespace(core, custom)


@pytest.fixture
def namespace(core: client.CoreV1Api) -> Iterator[str]:
    """Outside the session operator's it-* prefix, so only argo_operator reconciles it."""
    with scratch_namespace(core, prefix="argo-") as name:
        yield name


@pytest.fixture
def argo_operator(kubeconfig: str, crds: None, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    process = namespaced_operator(kubeconfig, namespace, tmp_path / "operator.log")
    process.start()
    yield process
    process.stop()


class GitRepo:
    """A local repository the repo server clones over file://, as it would clone a hosted one."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True)
        self.git("init", "--quiet", "--initial-branch=main")

    def git(self, *args: str) -> str:
        env = {**os.environ, **GIT_ENV}
        return subprocess.run(
            ["git", *args], cwd=self.root, env=env, check=True, capture_output=True, text=True
        ).stdout.strip()

    def commit(self, relative: str, obj: dict[str, Any], message: str) -> str:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(obj, sort_keys=False))
        self.git("add", relative)
        self.git("commit", "--quiet", "-m", message)
        return self.git("rev-parse", "HEAD")

    @property
    def url(self) -> str:
        return self.root.as_uri()


def documented_application(repo_url: str, namespace: str) -> dict[str, Any]:
    (app,) = [d for d in yaml.safe_load_all(APPLICATIONS.read_text()) if d and d["metadata"]["name"] == APP]
    app["spec"]["source"]["repoURL"] = repo_url
    app["spec"]["destination"]["namespace"] = namespace
    return dict(app)


def view(custom: client.CustomObjectsApi) -> dict[str, Any]:
    """Argo CD's view: sync status and revision, the Application's health, and the LLMDeployment's health there."""
    status = argocd.application(custom, APP).get("status") or {}
    resources: list[dict[str, Any]] = status.get("resources") or []
    resource: dict[str, Any] = next((r for r in resources if r.get("kind") == "LLMDeployment"), {})
    return {
        "sync": (status.get("sync") or {}).get("status"),
        "revision": (status.get("sync") or {}).get("revision"),
        "health": (status.get("health") or {}).get("status"),
        "resource": (resource.get("health") or {}).get("status"),
        "message": (resource.get("health") or {}).get("message", ""),
    }


def wait_view(
    custom: client.CustomObjectsApi, revision: str, health: str, saying: str = "", timeout: float = 90
) -> dict[str, Any]:
    """Until Argo CD shows the revision Synced, the health, and a message containing `saying` (a state can pass
    through others on the way: right after the sync, before the operator has written any status, the check says
    "Waiting for rightsizer to size this LLMDeployment")."""

    last: list[dict[str, Any]] = []
    refreshed = [time.monotonic()]

    def check() -> dict[str, Any] | None:
        seen = view(custom)
        last[:] = [seen]
        # Argo CD 3 does not refresh an Application for a resource update that leaves its health status as it was
        # (resource.ignoreResourceUpdatesEnabled): a new message within the same state shows at the next refresh,
        # periodic (timeout.reconciliation) or asked for, as here every REFRESH_S (docs/install.md).
        if time.monotonic() - refreshed[0] >= REFRESH_S:
            argocd.refresh(custom, APP)
            refreshed[0] = time.monotonic()
        synced = seen["sync"] == "Synced" and seen["revision"] == revision
        healthy = seen["health"] == health and seen["resource"] == health and saying in seen["message"]
        return seen if synced and healthy else None

    try:
        return wait_for(check, timeout, f"Argo CD: Synced at {revision[:8]}, {health}, {saying!r}", interval=0.5)
    except TimeoutError as exc:
        conditions = [
            (c.get("type"), c.get("status"), c.get("message"))
            for a in argocd.application(custom, APP).get("status", {}).get("resources", [])
            if a.get("kind") == "LLMDeployment"
            for c in (get(custom, a["namespace"], a["name"]).get("status") or {}).get("conditions", [])
            if c.get("type") in ("Progressing", "Degraded")
        ]
        raise AssertionError(
            f"{exc}; Argo CD's last view: {last[0] if last else None}; the object's own: {conditions}"
        ) from exc


def tenant_holding_nodes(name: str, replicas: int) -> dict[str, Any]:
    """Another team's workload taking whole H100 nodes (8 GPUs a pod)."""
    labels = {"app": name}
    container = {
        "name": "work",
        "image": "registry.invalid/busy:1",
        "resources": {"limits": {"nvidia.com/gpu": "8"}, "requests": {"nvidia.com/gpu": "8"}},
    }
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [container],
                    "nodeSelector": {POOL_LABEL: "h100"},
                    "tolerations": [GPU_TOLERATION],
                },
            },
        },
    }


def ready_count(apps: client.AppsV1Api, namespace: str, name: str) -> int:
    return ready_replicas(apps.read_namespaced_deployment(name, namespace))


def test_argocd_syncs_an_llmdeployment_and_reports_its_health(
    argo: ArgoCD,
    argo_operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
    namespace: str,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    nodes = len(core.list_node(label_selector=f"{POOL_LABEL}=h100").items)
    assert nodes >= 2, "the test needs an H100 pool of at least two nodes (e2e/cluster/pools.yaml)"
    apps.create_namespaced_deployment(
        namespace, typed(client.V1Deployment, tenant_holding_nodes("other-tenant", nodes))
    )
    wait_for(lambda: ready_count(apps, namespace, "other-tenant") == nodes, 60, "the other tenant on every H100 node")

    git = GitRepo(tmp_path / "team-a-models")
    llmd = small(NAME, gpu={"products": ["H100"], "tensorParallelSize": 8}, replicas={"min": 1, "max": 1})
    manifest = f"llmdeployments/{NAME}.yaml"
    revision = git.commit(manifest, llmd, "chat on one H100 node")
    custom.create_namespaced_custom_object(
        argocd.GROUP, argocd.VERSION, argocd.NAMESPACE, "applications", documented_application(git.url, namespace)
    )

    # 1. Synced; the pod waits for a GPU node: Progressing, with the scheduler's reason.
    wait_view(custom, revision, "Progressing", saying="Insufficient nvidia.com/gpu")
    assert condition(get(custom, namespace, NAME), "Degraded")["status"] == "False"  # type: ignore[index]

    # 2. The other tenant gives a node back: the replica starts and is Ready, Healthy with the plan as the message.
    apps.patch_namespaced_deployment_scale("other-tenant", namespace, {"spec": {"replicas": nodes - 1}})
    seen = wait_view(custom, revision, "Healthy")
    sized = condition(get(custom, namespace, NAME), "Sized")
    assert sized is not None and seen["message"] == sized["message"], seen

    # 3. A scale-up committed to git: the new replica waits for a node, which is routine: Progressing, not Degraded.
    llmd["spec"]["replicas"] = {"min": 2, "max": 2}
    revision = git.commit(manifest, llmd, "chat: two replicas")
    argocd.refresh(custom, APP)
    seen = wait_view(custom, revision, "Progressing", saying="Insufficient nvidia.com/gpu")
    obj = get(custom, namespace, NAME)
    assert obj["status"]["readyReplicas"] == 1, seen
    assert condition(obj, "Degraded")["status"] == "False"  # type: ignore[index]

    # 4. An impossible spec (no L40S pool): Degraded, with the operator's own explanation.
    llmd["spec"]["replicas"] = {"min": 1, "max": 1}
    llmd["spec"]["gpu"] = {"products": ["L40S"]}
    revision = git.commit(manifest, llmd, "chat on L40S")
    argocd.refresh(custom, APP)
    seen = wait_view(custom, revision, "Degraded", saying="Cannot be sized")
    sized = condition(get(custom, namespace, NAME), "Sized")
    assert sized is not None and sized["status"] == "False"
    assert seen["message"] == f"Cannot be sized ({sized['reason']}): {sized['message']}", seen

    # 5. The fixing commit: back on H100, one replica: Healthy again.
    llmd["spec"]["gpu"] = {"products": ["H100"], "tensorParallelSize": 8}
    revision = git.commit(manifest, llmd, "chat back on H100")
    argocd.refresh(custom, APP)
    wait_view(custom, revision, "Healthy")
    print(f"Argo CD end-to-end: {time.monotonic() - started:.0f} s after Argo CD started")
