"""Cost-allocation labels on the vLLM pods: the LLMDeployment and its model, as label values (kube/builders)."""

from __future__ import annotations

import re

from rightsizer.kube.builders.children import desired_children
from rightsizer.kube.builders.context import label_value
from tests.unit.test_builders import H200, context

# k8s.io/apimachinery pkg/util/validation: IsValidLabelValue (qualifiedNameFmt, at most 63 characters)
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def test_pods_carry_the_deployment_and_the_model() -> None:
    children = {o["kind"]: o for o in desired_children(context("meta-llama/Llama-3.1-8B-Instruct", H200))}
    pod_labels = children["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["rightsizer.dev/llmdeployment"] == "chat"
    assert pod_labels["rightsizer.dev/model"] == "meta-llama.Llama-3.1-8B-Instruct"
    selector = children["Deployment"]["spec"]["selector"]["matchLabels"]
    assert "rightsizer.dev/model" not in selector  # the selector is immutable: a model change must not touch it


def test_any_model_name_is_a_valid_label_value() -> None:
    names = ["org/model", "a" * 200, "a/" + "b" * 100, "weird name!/with spaces", "-x-", "a" * 62 + "/" + "c"]
    values = [label_value(n) for n in names]
    for value in values:
        assert len(value) <= 63 and LABEL_VALUE.fullmatch(value), value
    assert values[1] != label_value("a" * 201)  # long names that share a prefix stay apart
