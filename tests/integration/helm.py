"""Running the operator outside the cluster as the chart's ServiceAccount: a kubeconfig from a TokenRequest token,
and what its log must (not) say."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tests.integration.kube import current_context
from tests.integration.objects import typed


def service_account_kubeconfig(
    core: client.CoreV1Api, admin_kubeconfig: str, namespace: str, service_account: str, path: Path
) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount with a short-lived token from the TokenRequest API
    (what the kubelet mounts into the operator's pod), against the same API server and CA as the admin one."""
    request = typed(client.AuthenticationV1TokenRequest, {"spec": {"expirationSeconds": 3600}})
    issued = core.create_namespaced_service_account_token(service_account, namespace, request).status
    assert issued is not None, f"no token issued for ServiceAccount {namespace}/{service_account}"
    token = issued.token
    context_name, server = current_context(admin_kubeconfig)
    admin = yaml.safe_load(Path(admin_kubeconfig).read_text())
    context = next(c["context"] for c in admin["contexts"] if c["name"] == context_name)
    cluster = next(c["cluster"] for c in admin["clusters"] if c["name"] == context["cluster"])
    ca_data = (
        cluster.get("certificate-authority-data")
        or base64.b64encode(Path(cluster["certificate-authority"]).read_bytes()).decode()
    )
    user = f"system:serviceaccount:{namespace}:{service_account}"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "cluster", "cluster": {"server": server, "certificate-authority-data": ca_data}}],
                "users": [{"name": user, "user": {"token": token}}],
                "contexts": [{"name": context_name, "context": {"cluster": "cluster", "user": user}}],
                "current-context": context_name,
            }
        )
    )
    path.chmod(0o600)
    return path


def forbidden_lines(log: str) -> list[str]:
    """Lines of the operator's log that report an authorization failure (a rule missing from the chart's RBAC)."""
    # Timestamps are cut first: "…T20:51:23.403Z" is not a refusal.
    lines = [(line, _TIMESTAMP.sub("", line)) for line in log.splitlines()]
    return [line for line, text in lines if re.search(r"\b403\b", text) or "forbidden" in text.lower()]


_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[T ][\d:.,]+Z?")


def json_lines(log: str) -> list[dict[str, Any]]:
    """Every line of a `--log-format json` log, parsed (raises on a line that is not JSON)."""
    return [json.loads(line) for line in log.splitlines() if line.strip()]
