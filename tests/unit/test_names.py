"""The CRD's name rules (api/names.py), evaluated by a CEL interpreter (cel-python) exactly as they are generated
into crds/, agree with the Python rule, and every child and pod name Kubernetes derives from an accepted name is
valid. Before these rules a name starting with a digit or holding a dot got its Deployment but no Service, a name of
64+ characters no children, and a multi-node name over 50 characters a LeaderWorkerSet whose pods could never be
created."""

from __future__ import annotations

import re
from typing import Any

import celpy
import pytest
import yaml
from celpy.adapter import json_to_cel

from rightsizer.api.names import LABEL_VALUE_MAX, REVISION_HASH_MAX, max_name_length, name_problem
from tests.unit.helpers import REPO

CRD = yaml.safe_load((REPO / "crds" / "rightsizer.dev_llmdeployments.yaml").read_text())
ROOT = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
RULES = ROOT["x-kubernetes-validations"]
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
ENV = celpy.Environment()


def llmd(name: str, replicas: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"model": {"name": "m"}}
    if replicas is not None:
        # Kubernetes CEL treats a nullable field set to null as absent: leave such fields out, as it sees them.
        spec["replicas"] = {k: v for k, v in replicas.items() if v is not None}
    return {"apiVersion": "rightsizer.dev/v1alpha1", "kind": "LLMDeployment", "metadata": {"name": name}, "spec": spec}


def evaluate(expression: str, obj: dict[str, Any]) -> Any:
    return ENV.program(ENV.compile(expression)).evaluate({"self": json_to_cel(obj)})


def api_server_refusals(obj: dict[str, Any]) -> list[str]:
    """The messages the API server answers: the schema's maxLength on metadata.name, then every failing rule."""
    name = obj["metadata"]["name"]
    if len(name) > ROOT["properties"]["metadata"]["properties"]["name"]["maxLength"]:
        return [f"metadata.name: Too long: may not be more than {LABEL_VALUE_MAX} bytes"]
    failed = [rule for rule in RULES if not evaluate(rule["rule"], obj)]
    return [str(evaluate(r["messageExpression"], obj)) if "messageExpression" in r else r["message"] for r in failed]


def upper(replicas: dict[str, Any] | None) -> int:
    """Replicas.upper: max, else min, else 1."""
    replicas = replicas or {}
    return int(replicas["max"] if replicas.get("max") is not None else replicas.get("min", 1))


CASES: list[tuple[str, dict[str, Any] | None]] = [
    ("chat", None),
    ("llama-3-1-70b", {"min": 1, "max": 4}),
    ("1chat", None),  # a digit first: a valid Deployment name, not a Service name
    ("chat.v1", None),  # a dot: a valid Deployment name, not a label
    ("Chat", None),
    ("chat-", None),
    ("-chat", None),
    ("a", {"min": 0}),
    ("a" * 50, None),
    ("a" * 50, {"min": 1, "max": 10}),
    ("a" * 51, {"min": 1, "max": 10}),
    ("a" * 50, {"min": 1, "max": 11}),
    ("a" * 49, {"min": 1, "max": 100}),
    ("a" * 48, {"min": 1, "max": 101}),
    ("a" * 49, {"min": 101}),
    ("a" * 50, {"min": 3, "max": None}),
    ("a" * 63, None),
    ("a" * 64, None),
    ("a" * 300, None),
]


@pytest.mark.parametrize(("name", "replicas"), CASES, ids=[f"{n[:12]}({len(n)})-{r}" for n, r in CASES])
def test_cel_rules_agree_with_the_python_rule(name: str, replicas: dict[str, Any] | None) -> None:
    refusals = api_server_refusals(llmd(name, replicas))
    problem = name_problem(name, upper(replicas))
    if len(name) > LABEL_VALUE_MAX:
        assert problem is not None and refusals == ["metadata.name: Too long: may not be more than 63 bytes"]
    else:
        assert refusals == ([problem] if problem else [])


def test_the_messages_state_the_maximum_length() -> None:
    [message] = api_server_refusals(llmd("a" * 51, {"min": 1, "max": 4}))
    assert message.startswith(
        "metadata.name must be at most 50 characters when spec.replicas allows 1 to 10 replicas: "
    )
    [message] = api_server_refusals(llmd("a" * 50, {"min": 2, "max": 12}))
    assert message.startswith(
        "metadata.name must be at most 49 characters when spec.replicas allows 11 to 100 replicas"
    )
    [message] = api_server_refusals(llmd("1chat"))
    assert message.startswith("metadata.name must be a DNS-1035 label: ")


def derived_names(name: str, replicas: int, nodes: int) -> dict[str, list[str]]:
    """What Kubernetes derives from an LLMDeployment name at the highest group index, per kind of name."""
    group = str(max(replicas - 1, 0))
    hash_ = "9" * REVISION_HASH_MAX  # the longest decimal FNV-32 sum
    worker = str(max(nodes - 1, 1))
    return {
        "Service names (DNS-1035)": [name],
        "label values": [
            name,  # app.kubernetes.io/instance, leaderworkerset.sigs.k8s.io/name
            f"{name}-{hash_}",  # the leader pods' controller-revision-hash
            f"{name}-{group}-{hash_}",  # the worker pods' controller-revision-hash
            f"{name}-{group}",  # statefulset.kubernetes.io/pod-name of the leader
            f"{name}-{group}-{worker}",  # ... and of a worker
        ],
        "DNS-1123 labels": [
            f"{name}-{group}",  # leader pod (host name), worker StatefulSet, headless Service
            f"{name}-{group}-{worker}",  # worker pod (host name)
        ],
    }


@pytest.mark.parametrize("replicas", [1, 2, 10, 11, 100, 101, 10_000])
def test_every_name_derived_from_the_longest_accepted_name_is_valid(replicas: int) -> None:
    name = "a" * max_name_length(replicas)
    assert name_problem(name, replicas) is None
    for kind, values in derived_names(name, replicas, nodes=8).items():
        for value in values:
            assert len(value) <= LABEL_VALUE_MAX, (kind, value)
            assert (DNS1123_LABEL if kind != "label values" else LABEL_VALUE).match(value), (kind, value)
    one_more = "a" * (max_name_length(replicas) + 1)
    worst = derived_names(one_more, replicas, nodes=8)["label values"]
    assert max(len(v) for v in worst) == LABEL_VALUE_MAX + 1  # the limit is exact, not merely safe
