"""Which SizingPolicies apply to a namespace: metav1.LabelSelector semantics over the namespace's labels."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from rightsizer.api import constants as c
from rightsizer.api.v1alpha1.sizingpolicy import LabelSelector, LabelSelectorRequirement, SelectorOperator, SizingPolicy


def namespace_labels(namespace: str, labels: Mapping[str, str] | None = None) -> dict[str, str]:
    """The labels a namespace carries on a real cluster: the API server adds kubernetes.io/metadata.name (its name,
    immutable) to every namespace, so offline evaluation adds it too and selectors behave the same."""
    return {**(labels or {}), c.LABEL_NAMESPACE_NAME: namespace}


def requirement_holds(requirement: LabelSelectorRequirement, labels: Mapping[str, str]) -> bool:
    present = requirement.key in labels
    match requirement.operator:
        case SelectorOperator.IN:
            return present and labels[requirement.key] in requirement.values
        case SelectorOperator.NOT_IN:
            # As in Kubernetes: a namespace without the key satisfies NotIn.
            return not present or labels[requirement.key] not in requirement.values
        case SelectorOperator.EXISTS:
            return present
        case SelectorOperator.DOES_NOT_EXIST:
            return not present


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Every matchLabels pair and every matchExpressions requirement holds; an empty selector matches everything."""
    return all(labels.get(key) == value for key, value in selector.match_labels.items()) and all(
        requirement_holds(r, labels) for r in selector.match_expressions
    )


def selecting(
    policies: Iterable[SizingPolicy], namespace: str, labels: Mapping[str, str] | None = None
) -> list[SizingPolicy]:
    """The policies whose namespaceSelector selects `namespace`, by name so every result is reproducible."""
    full = namespace_labels(namespace, labels)
    return sorted((p for p in policies if selector_matches(p.spec.namespace_selector, full)), key=lambda p: p.name)
