"""What rightsizer's own tests rely on from the local plane: its webhook certificate and API-server restarts.

Skipped on other clusters (they have neither the plane's certificates nor `e2e/cluster/up restart`).
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.integration.kube import GPU_PRODUCT_LABEL, GPU_TOLERATION, gpu_container, node_pool, ready_pods, wait_for
from tests.integration.objects import node_name, typed
from tests.integration.plane import LocalPlane

pytestmark = pytest.mark.integration

DENY_LABEL = "rightsizer.dev/test-deny"


class DenyingWebhook(BaseHTTPRequestHandler):
    """Answers every AdmissionReview with a denial that names the object, so the test can see the call happened."""

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        request = review["request"]
        reply = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {
                "uid": request["uid"],
                "allowed": False,
                "status": {"code": 403, "message": f"test webhook saw {request['name']}"},
            },
        }
        body = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def webhook_server(local_plane: LocalPlane) -> Iterator[str]:
    """A TLS server on 127.0.0.1 with the plane's webhook certificate.

    On a free port rather than 9444: the session's operator may already serve rightsizer's webhook there, and the
    certificate is valid for 127.0.0.1 whatever the port.
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), DenyingWebhook)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(local_plane.webhook_cert, local_plane.webhook_key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/validate"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_api_server_calls_a_webhook_served_with_the_planes_webhook_cert(
    local_plane: LocalPlane, webhook_server: str, api_client: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    """The contract for rightsizer's kopf webhook: pki/webhook.{crt,key} served on 127.0.0.1, caBundle = pki/ca.crt."""
    admission = client.AdmissionregistrationV1Api(api_client)
    name = f"test-deny-{namespace}"
    configuration = {
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "deny.test.rightsizer.dev",
                "clientConfig": {
                    "url": webhook_server,
                    "caBundle": base64.b64encode(local_plane.ca.read_bytes()).decode(),
                },
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["configmaps"],
                    }
                ],
                # Only labelled objects in this test's namespace: nothing else in the cluster is affected.
                "objectSelector": {"matchLabels": {DENY_LABEL: "true"}},
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 5,
            }
        ],
    }
    admission.create_validating_webhook_configuration(typed(client.V1ValidatingWebhookConfiguration, configuration))
    try:
        denied = wait_for(lambda: create_denied(core, namespace), 30, "the API server to call the test webhook")
        assert denied.status == 403
        assert "test webhook saw probe" in (denied.body or "")
        unlabelled = typed(client.V1ConfigMap, {"metadata": {"name": "unlabelled"}})
        core.create_namespaced_config_map(namespace, unlabelled)  # not intercepted
    finally:
        admission.delete_validating_webhook_configuration(name)


def create_denied(core: client.CoreV1Api, namespace: str) -> ApiException | None:
    """Tries to create a labelled ConfigMap; returns the denial once the webhook configuration is in effect."""
    probe = typed(client.V1ConfigMap, {"metadata": {"name": "probe", "labels": {DENY_LABEL: "true"}}})
    try:
        core.create_namespaced_config_map(namespace, probe)
    except ApiException as exc:
        if "test webhook saw" in (exc.body or ""):
            return exc
        raise
    core.delete_namespaced_config_map("probe", namespace)  # created before the configuration took effect: retry
    return None


def test_controllers_and_scheduler_recover_after_an_api_server_restart(
    local_plane: LocalPlane, core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str
) -> None:
    local_plane.restart("kube-apiserver")

    pod_spec = {
        "containers": [gpu_container(8)],
        "nodeSelector": {GPU_PRODUCT_LABEL: "NVIDIA-H100-80GB-HBM3"},
        "tolerations": [GPU_TOLERATION],
    }
    labels = {"app": "after-restart"}
    deployment = {
        "metadata": {"name": "after-restart"},
        "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": pod_spec}},
    }
    apps.create_namespaced_deployment(namespace, typed(client.V1Deployment, deployment))

    [pod] = wait_for(lambda: ready_pods(core, namespace, "app=after-restart", 1), 120, "a ready pod after the restart")
    assert node_pool(core, node_name(pod)) == "h100"
