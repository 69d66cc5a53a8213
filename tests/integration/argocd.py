"""Argo CD on the local plane, for the GitOps end-to-end test (tests/integration/test_argocd.py).

Argo CD's own binary (built from the Go module proxy by `e2e/cluster/build argocd`) runs as plain processes, as
Argo CD's Procfile runs it for its own development: the repo server (renders the git repository), the application
controller (syncs and judges health) and a private redis-server (their shared cache). The controller reaches the
cluster the way an in-cluster install reaches `https://kubernetes.default.svc`: `ARGOCD_FAKE_IN_CLUSTER=true` makes
that destination use KUBECONFIG (pkg/apis/application/v1alpha1/types.go, RawRestConfig). No API server, UI, Dex or
ApplicationSet controller: nothing in the test needs them.

The namespace holds what Argo CD's install manifests put there before its controllers start: the CRDs (from the
release's module, manifests/crds), `argocd-cm` and `argocd-secret` (empty, labelled part-of argocd) and the
`default` AppProject, which the API server would otherwise create.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, BinaryIO

import httpx
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from e2e.cluster import localplane
from tests.integration.kube import gone, wait_for
from tests.integration.objects import custom_object, typed
from tests.integration.operator import free_port

NAMESPACE = "argocd"
GROUP, VERSION = "argoproj.io", "v1alpha1"
MODULE = "github.com/argoproj/argo-cd/v3"
PART_OF = {"app.kubernetes.io/part-of": "argocd"}


def paths() -> localplane.Paths:
    return localplane.Paths(localplane.read_versions())


def binary() -> Path:
    return paths().bin("argocd", "argocd")


def kubectl() -> Path:
    return paths().bin("k8s", "kubectl")


def crd_files() -> list[Path]:
    crds = paths().module(MODULE, "ARGOCD_VERSION") / "manifests" / "crds"
    return [crds / "application-crd.yaml", crds / "appproject-crd.yaml"]


def missing() -> str | None:
    """Why Argo CD cannot run here, or None."""
    if not binary().exists():
        return f"{binary()} is missing: run e2e/cluster/build argocd"
    for tool in ("redis-server", "git"):
        if shutil.which(tool) is None:
            return f"{tool} is missing: run hack/test-deps"
    if not all(f.exists() for f in crd_files()):
        return f"Argo CD's CRDs are missing from the module cache: run e2e/cluster/build argocd ({crd_files()[0]})"
    return None


class ArgoCD:
    """Redis, the repo server and the application controller; `start()` returns once all three answer."""

    def __init__(self, kubeconfig: str, workdir: Path) -> None:
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.redis_port, self.repo_port = free_port(), free_port()
        self.repo_metrics_port, self.controller_metrics_port = free_port(), free_port()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[BinaryIO] = []

    def env(self, component: str) -> dict[str, str]:
        home = self.workdir / "home"
        for sub in ("tls", "ssh", "gpg", "tmp"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "TMPDIR": str(home / "tmp"),
            "KUBECONFIG": self.kubeconfig,
            "ARGOCD_BINARY_NAME": component,  # cmd/main.go picks the component by this (or by argv[0])
            "ARGOCD_FAKE_IN_CLUSTER": "true",
            "ARGOCD_TLS_DATA_PATH": str(home / "tls"),
            "ARGOCD_SSH_DATA_PATH": str(home / "ssh"),
            "ARGOCD_GNUPGHOME": str(home / "gpg"),
            "ARGOCD_GPG_ENABLED": "false",
        }

    def log(self, component: str) -> Path:
        return self.workdir / f"{component}.log"

    def _spawn(self, component: str, argv: list[str], env: dict[str, str]) -> None:
        handle = self.log(component).open("ab")
        self._logs.append(handle)
        self.processes[component] = subprocess.Popen(
            argv, env=env, cwd=self.workdir, stdout=handle, stderr=subprocess.STDOUT
        )

    def _wait_healthy(self, component: str, port: int) -> None:
        def answers() -> bool:
            process = self.processes[component]
            if process.poll() is not None:
                raise RuntimeError(f"{component} exited with {process.returncode}: {self.log_tail(component)}")
            try:
                return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(answers, 60, f"{component} to serve /metrics on 127.0.0.1:{port}")

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        redis = [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.redis_port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
        ]
        self._spawn("redis", redis, self.env("redis"))
        wait_for(lambda: localplane.port_open(self.redis_port), 30, f"redis-server on 127.0.0.1:{self.redis_port}")
        redis_address = f"127.0.0.1:{self.redis_port}"
        self._spawn(
            "argocd-repo-server",
            [
                str(binary()),
                "--port",
                str(self.repo_port),
                "--address",
                "127.0.0.1",
                "--metrics-address",
                "127.0.0.1",
                "--metrics-port",
                str(self.repo_metrics_port),
                "--redis",
                redis_address,
                "--disable-tls",
                "--loglevel",
                "info",
            ],
            self.env("argocd-repo-server"),
        )
        self._wait_healthy("argocd-repo-server", self.repo_metrics_port)
        self._spawn(
            "argocd-application-controller",
            [
                str(binary()),
                "--namespace",
                NAMESPACE,
                "--redis",
                redis_address,
                "--repo-server",
                f"127.0.0.1:{self.repo_port}",
                "--repo-server-plaintext",
                # Each resource's health (status and message) in the Application's status.resources, as Argo CD 2.x
                # stored it; 3.x keeps it only in Redis by default and serves it through its API server, which this
                # setup does not run. Where it is stored does not change how it is computed.
                "--persist-resource-health",
                "--metrics-port",
                str(self.controller_metrics_port),
                "--status-processors",
                "2",
                "--operation-processors",
                "2",
                "--loglevel",
                "info",
            ],
            self.env("argocd-application-controller"),
        )
        self._wait_healthy("argocd-application-controller", self.controller_metrics_port)

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            process = self.processes[name]
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for handle in self._logs:
            handle.close()

    def log_tail(self, component: str, lines: int = 40) -> str:
        path = self.log(component)
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def kubectl_run(kubeconfig: str, *args: str) -> str:
    result = subprocess.run(
        [str(kubectl()), "--kubeconfig", kubeconfig, *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def prepare_namespace(kubeconfig: str, core: client.CoreV1Api, custom: client.CustomObjectsApi) -> None:
    """What Argo CD's install manifests create before the controllers start (see the module docstring)."""
    for file in crd_files():
        kubectl_run(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(file))
    extensions = client.ApiextensionsV1Api(core.api_client)

    def established(name: str) -> bool:
        status = extensions.read_custom_resource_definition(name).status
        conditions = (status.conditions if status is not None else None) or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    for crd in ("applications.argoproj.io", "appprojects.argoproj.io"):
        wait_for(functools.partial(established, crd), 60, f"CRD {crd} Established")
    try:
        core.create_namespace(typed(client.V1Namespace, {"metadata": {"name": NAMESPACE}}))
    except ApiException as exc:
        if exc.status != 409:
            raise
    wait_for(lambda: core.read_namespaced_service_account("default", NAMESPACE), 30, "ServiceAccount argocd/default")
    # As in Argo CD's install.yaml: present, labelled, empty; docs/install.md's patch adds rightsizer's keys.
    core.create_namespaced_config_map(
        NAMESPACE, typed(client.V1ConfigMap, {"metadata": {"name": "argocd-cm", "labels": PART_OF}})
    )
    core.create_namespaced_secret(
        NAMESPACE, typed(client.V1Secret, {"metadata": {"name": "argocd-secret", "labels": PART_OF}})
    )
    project: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AppProject",
        "metadata": {"name": "default", "namespace": NAMESPACE},
        "spec": {
            "sourceRepos": ["*"],
            "destinations": [{"server": "*", "namespace": "*"}],
            "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
        },
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "appprojects", project)


def delete_namespace(core: client.CoreV1Api, custom: client.CustomObjectsApi) -> None:
    """Applications first (no finalizers here, so nothing is pruned), then the namespace."""
    try:
        listed = custom_object(custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "applications"))
        for app in listed["items"]:
            custom.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "applications", app["metadata"]["name"])
        core.delete_namespace(NAMESPACE)
    except ApiException as exc:
        if exc.status != 404:
            raise
    wait_for(lambda: gone(lambda: core.read_namespace(NAMESPACE)), 120, f"namespace {NAMESPACE} to be deleted")


def application(custom: client.CustomObjectsApi, name: str) -> dict[str, Any]:
    return custom_object(custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "applications", name))


def refresh(custom: client.CustomObjectsApi, name: str) -> None:
    """What a git webhook (or `argocd app get --refresh`) does: ask the controller to compare with git now, instead of
    at its next poll (timeout.reconciliation, 180 s by default)."""
    patch = {"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}}
    custom.patch_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "applications", name, patch)
