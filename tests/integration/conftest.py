"""Fixtures for tests against a real Kubernetes API server.

Which cluster:
  * `KUBECONFIG` set: that cluster (kind, a real cluster, or the local plane via `source ~/.cache/rightsizer/cluster/
    env.sh`). Nothing is started or stopped.
  * otherwise the local plane: `e2e/cluster/up` runs (build on first use, then a reuse check of a few seconds).
    If the plane was already healthy it is left running; if this session started it, the session stops it at the end
    (`e2e/cluster/down`), unless RIGHTSIZER_KEEP_PLANE=1. Bring it up once by hand for a fast edit-test loop.

Guard: the suite refuses a current context that does not look like a disposable test cluster (a loopback API server,
or a context named rightsizer-local, kind-*, kwok-*, k3d-*, minikube*, envtest*) unless RIGHTSIZER_ALLOW_CONTEXT names
that exact context.

A cold first build takes ~16 minutes on 2 cores: run `e2e/cluster/build` (or `e2e/cluster/up`) before pytest so that
it does not count against the per-test timeout (600 s, which also bounds fixture set-up).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from e2e.cluster import localplane
from tests.integration.crds import apply_crds
from tests.integration.kube import current_context, gone, looks_like_test_cluster, wait_for
from tests.integration.objects import typed
from tests.integration.operator import OperatorProcess
from tests.integration.plane import UP, LocalPlane
from tests.integration.test_operator import apply, example, wait_condition

REPO = Path(__file__).resolve().parents[2]
DOWN = REPO / "e2e" / "cluster" / "down"
NAMESPACE_LABEL = "rightsizer.dev/integration-test"
# Namespaces of this pytest session share a prefix, and the operator under test watches only those: several test
# sessions (or developers) can share one plane without their operators acting on each other's objects.
NAMESPACE_PREFIX = f"it-{uuid.uuid4().hex[:4]}-"
PROGRESS_DEADLINE_SECONDS = 45  # the operator under test's RIGHTSIZER_PROGRESS_DEADLINE_SECONDS


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test's report carries the log tail of each operator process it used, so that a failure on CI (where
    the logs are gone afterwards) shows what the operator was doing."""
    report = yield
    if report.failed:
        for name, value in getattr(item, "funcargs", {}).items():
            if isinstance(value, OperatorProcess):
                report.sections.append((f"operator log ({name}, last 60 lines)", value.log_tail(60)))
    return report


def plane_is_healthy() -> bool:
    return subprocess.run([str(UP), "status"], capture_output=True, check=False).returncode == 0


def bring_up_local_plane() -> str:
    """Runs e2e/cluster/up (progress shown on stderr) and returns the kubeconfig path it prints last."""
    result = subprocess.run([str(UP)], stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        pytest.exit(f"e2e/cluster/up failed (exit {result.returncode}); its output is above", returncode=3)
    return result.stdout.strip().splitlines()[-1]


def guard_context(kubeconfig: str) -> None:
    """Refuses to run against anything that does not look like a test cluster, unless explicitly allowed."""
    name, server = current_context(kubeconfig)
    if looks_like_test_cluster(name, server) or os.environ.get("RIGHTSIZER_ALLOW_CONTEXT") == name:
        return
    pytest.exit(
        f"refusing to run integration tests against context {name!r} ({server}): it does not look like a test "
        f"cluster. Set RIGHTSIZER_ALLOW_CONTEXT={name} if this really is a disposable cluster.",
        returncode=4,
    )


@pytest.fixture(scope="session")
def kubeconfig() -> Iterator[str]:
    """Path of the kubeconfig the whole session uses; also exported as KUBECONFIG for kopf and subprocesses."""
    started_here = False
    path = os.environ.get("KUBECONFIG")
    if not path:
        started_here = not plane_is_healthy()
        path = bring_up_local_plane()
        os.environ["KUBECONFIG"] = path
    guard_context(path)
    yield path
    if started_here and os.environ.get("RIGHTSIZER_KEEP_PLANE") != "1":
        subprocess.run([str(DOWN)], check=False, stdout=sys.stderr)
        del os.environ["KUBECONFIG"]


@pytest.fixture(scope="session")
def local_plane(kubeconfig: str) -> LocalPlane:
    """The local plane's handles; tests that use it are skipped on other clusters (kind, real ones)."""
    if current_context(kubeconfig)[0] != localplane.CONTEXT:
        pytest.skip("needs the local plane from e2e/cluster/up")
    return LocalPlane()


@pytest.fixture(scope="session")
def api_client(kubeconfig: str) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=kubeconfig)
    yield api
    api.close()


@pytest.fixture(scope="session")
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture(scope="session")
def apps(api_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api_client)


@pytest.fixture(scope="session")
def custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


@pytest.fixture
def namespace(core: client.CoreV1Api) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (waits until it is gone, so GPUs are free for the next test)."""
    name = f"{NAMESPACE_PREFIX}{uuid.uuid4().hex[:8]}"
    core.create_namespace(typed(client.V1Namespace, {"metadata": {"name": name, "labels": {NAMESPACE_LABEL: "true"}}}))
    # The ServiceAccount admission plugin rejects pods until the controller-manager has made "default".
    wait_for(lambda: core.read_namespaced_service_account("default", name), 30, f"ServiceAccount {name}/default")
    yield name
    try:
        core.delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise
    wait_for(lambda: gone(lambda: core.read_namespace(name)), 120, f"namespace {name} to be deleted")


# --- the operator under test (tests/integration/test_operator.py, test_policy_webhook.py) ---------------------------


@pytest.fixture(scope="session")
def crds(api_client: client.ApiClient) -> None:
    apply_crds(api_client)


@pytest.fixture(scope="session")
def operator(
    kubeconfig: str,
    crds: None,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """One operator for the session; on the local plane it also serves the admission webhook on 127.0.0.1. It is
    handed to the tests once it has reconciled a first object (`first_reconcile`)."""
    process = OperatorProcess(
        kubeconfig,
        tmp_path_factory.mktemp("operator") / "operator.log",
        # A pod stuck unschedulable turns the LLMDeployment Degraded after 45 s instead of the default 600: long enough
        # for tests to see a routine wait as Progressing (test_argocd.py), short enough to see a stuck one Degraded.
        {**webhook_env(), "RIGHTSIZER_PROGRESS_DEADLINE_SECONDS": str(PROGRESS_DEADLINE_SECONDS)},
        args=("--namespace", f"{NAMESPACE_PREFIX}*"),
    )
    process.start()
    try:
        first_reconcile(process, core, custom)
    except BaseException:
        process.stop()
        raise
    yield process
    process.stop()


def first_reconcile(process: OperatorProcess, core: client.CoreV1Api, custom: client.CustomObjectsApi) -> None:
    """Waits until the new operator has written the status of an LLMDeployment it can never place (a pool the plane
    lacks: no pods, quick to delete), in a namespace of its own.

    Serving metrics is not the same as reconciling: kopf holds every handler until the watches of each namespace
    have listed once, and right after a CRD is (re)written the API server answers those lists with 429 "storage is
    (re)initializing" until its watch cache is rebuilt, which kopf retries on its back-off (API_ERROR_BACKOFFS in
    controller/handlers.py). On CI (stop 22) the first test that used this operator saw its object unreconciled
    for 90 s, cause unrecorded; start-up waits like that one are paid here, within 240 s, and a failure carries the
    operator's log."""
    name = f"{NAMESPACE_PREFIX}first"
    core.create_namespace(typed(client.V1Namespace, {"metadata": {"name": name, "labels": {NAMESPACE_LABEL: "true"}}}))
    try:
        body = example("llama-3.1-8b-h200.yaml")
        body["metadata"]["name"] = "first"
        body["spec"]["gpu"] = {"products": ["L40S"]}
        apply(custom, name, body)
        wait_condition(custom, name, "first", "Sized", "False", timeout=240)
    except TimeoutError as err:
        raise TimeoutError(f"the operator's first reconcile: {err}; operator log:\n{process.log_tail(60)}") from None
    finally:
        core.delete_namespace(name)
        wait_for(lambda: gone(lambda: core.read_namespace(name)), 120, f"namespace {name} to be deleted")


def webhook_env() -> dict[str, str]:
    from e2e.cluster import localplane

    pki = localplane.STATE / "pki"
    if not (pki / "webhook.crt").exists():
        return {}
    return {
        "RIGHTSIZER_WEBHOOK_ENABLED": "true",
        "RIGHTSIZER_WEBHOOK_HOST": "127.0.0.1",
        "RIGHTSIZER_WEBHOOK_PORT": str(localplane.RIGHTSIZER_WEBHOOK_PORT),
        "RIGHTSIZER_WEBHOOK_CERT_FILE": str(pki / "webhook.crt"),
        "RIGHTSIZER_WEBHOOK_KEY_FILE": str(pki / "webhook.key"),
        "RIGHTSIZER_WEBHOOK_CA_FILE": str(pki / "ca.crt"),
        "RIGHTSIZER_WEBHOOK_MANAGE_CONFIGURATION": "true",
    }
