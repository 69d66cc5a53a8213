"""The command line's policy side: `rightsizer plan --policy FILE` and `rightsizer policy explain`.

Offline and exactly what the admission webhook does: select the policies by the namespace's labels, combine them,
fill in defaults, size within the policy, evaluate. (Quota needs the namespace's other deployments, so it is
checked by the webhook only.)
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from rightsizer.adapters.modelsource import ResolvedModel
from rightsizer.api import constants as c
from rightsizer.api.v1alpha1.llmdeployment import LLMDeployment, LLMDeploymentSpec
from rightsizer.api.v1alpha1.sizingpolicy import SizingPolicy
from rightsizer.cli.common import UsageError
from rightsizer.cli.render import plan_table
from rightsizer.errors import validation_message
from rightsizer.policy import (
    Decision,
    Defaulting,
    EffectivePolicy,
    Violation,
    apply_defaults,
    combine,
    explain_dict,
    explain_lines,
    plan_within_policy,
    policy_problems,
    selecting,
    with_declared,
)
from rightsizer.policy.selection import namespace_labels
from rightsizer.sizing import SizingRequest
from rightsizer.sizing.pools import GpuPool, default_pools
from rightsizer.sizing.request import PerformanceHook

EXIT_DENIED = 2


def parse_labels(text: str | None) -> dict[str, str]:
    """`k=v,k2=v2` -> {"k": "v", "k2": "v2"}."""
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--namespace-labels: {item!r} is not key=value (e.g. team=ml,gpu-tier=standard)")
        labels[key] = value
    return labels


def _policy_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    return [path]


def _documents(path: Path) -> list[Any]:
    try:
        text = path.read_text()
    except OSError as err:
        raise UsageError(f"{path}: {err.strerror}") from None
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as err:
        raise UsageError(f"{path}: malformed YAML: {getattr(err, 'problem', err)}") from None
    expanded = []
    for doc in documents:
        items = doc.get("items") if isinstance(doc, dict) and str(doc.get("kind", "")).endswith("List") else None
        expanded += items if isinstance(items, list) else [doc]
    return expanded


def load_policies(paths: Sequence[Path]) -> list[SizingPolicy]:
    """SizingPolicies from files or directories (every *.yaml in it); several documents or a List per file."""
    policies: dict[str, SizingPolicy] = {}
    for path in (f for p in paths for f in _policy_files(p)):
        for doc in _documents(path):
            if not isinstance(doc, dict) or doc.get("kind") != c.POLICY_KIND:
                kind = doc.get("kind") if isinstance(doc, dict) else type(doc).__name__
                raise UsageError(f"{path}: found {kind!r}; expected SizingPolicy manifests only")
            try:
                policy = SizingPolicy.model_validate(doc)
            except ValidationError as err:
                raise UsageError(f"{path}: {validation_message(err)}") from None
            if not policy.name:
                raise UsageError(f"{path}: a SizingPolicy has no metadata.name")
            if policy.name in policies:
                raise UsageError(f"{path}: SizingPolicy {policy.name} is defined twice")
            policies[policy.name] = policy
    return list(policies.values())


def effective_policy(namespace: str, labels: dict[str, str], paths: Sequence[Path]) -> EffectivePolicy:
    return combine(namespace, selecting(load_policies(paths), namespace, labels))


# --- rightsizer plan --policy ---------------------------------------------------------------------------------------


def _policy_section(effective: EffectivePolicy, defaulting: Defaulting, decision: Decision) -> list[str]:
    who = f"SizingPolicy {', '.join(effective.policies)}" if effective.applies else "no SizingPolicy selects it"
    lines = ["", f"Policy (namespace {effective.namespace}: {who})"]
    lines += [f"  default   {d.one_line()}" for d in defaulting.applied]
    lines += [f"  warning   {w}" for w in decision.warnings]
    lines += [f"  violation {v.one_line()}" for v in decision.violations]
    lines.append("  verdict   " + ("allowed" if decision.allowed else "denied"))
    return lines


def _violation_data(v: Violation) -> dict[str, Any]:
    return {
        "kind": v.kind.value,
        "field": v.field,
        "limit": v.limit,
        "policies": list(v.policies),
        "message": v.one_line(),
    }


def _policy_data(effective: EffectivePolicy, defaulting: Defaulting, decision: Decision) -> dict[str, Any]:
    return {
        "namespace": effective.namespace,
        "policies": list(effective.policies),
        "allowed": decision.allowed,
        "violations": [_violation_data(v) for v in decision.violations],
        "warnings": list(decision.warnings),
        "defaulted": [{"field": d.field, "value": d.value, "why": d.why} for d in defaulting.applied],
    }


def plan_under_policy(
    args: argparse.Namespace,
    deployment: LLMDeployment,
    spec: LLMDeploymentSpec,
    resolved: ResolvedModel,
    known_pools: list[GpuPool] | None,
    *,
    performance: PerformanceHook | None = None,
) -> int:
    """Defaults, sizing within the policy, evaluation; exit 2 with one line when the policy denies."""
    namespace = args.namespace or str(deployment.metadata.get("namespace") or "default")
    effective = effective_policy(namespace, parse_labels(args.namespace_labels), [Path(p) for p in args.policy])
    defaulting = apply_defaults(spec, effective, resolved.facts)
    if known_pools is None:  # without --pools: the policies' declared pools, else one pool per known product
        known_pools = [] if effective.pools else default_pools()
    pools = with_declared(known_pools, effective)
    outcome = plan_within_policy(
        SizingRequest(defaulting.spec, resolved.facts, pools), effective, spec.model.name, performance
    )
    decision = outcome.decision
    name = deployment.metadata.get("name", Path(args.file).stem)
    if args.output in ("json", "yaml"):
        data = {
            "plan": outcome.plan.to_wire() if outcome.plan else None,
            "policy": _policy_data(effective, defaulting, decision),
        }
        text = json.dumps(data, indent=2) if args.output == "json" else yaml.safe_dump(data, sort_keys=False, width=120)
        print(text.rstrip("\n"))
    else:
        table = [plan_table(name, defaulting.spec, outcome.plan, resolved.source)] if outcome.plan else []
        print("\n".join(table + _policy_section(effective, defaulting, decision)))
    if not decision.allowed:
        raise PolicyDeniedError(decision.message())
    return 0


class PolicyDeniedError(UsageError):
    """The policy refuses the deployment: printed as one line, exit status 2."""

    def __str__(self) -> str:
        return f"denied by policy: {self.args[0]}"


# --- rightsizer policy explain --------------------------------------------------------------------------------------


def cmd_policy_explain(args: argparse.Namespace) -> int:
    labels = parse_labels(args.namespace_labels)
    paths = [Path(p) for p in args.policies]
    policies = load_policies(paths)
    effective = combine(args.namespace, selecting(policies, args.namespace, labels))
    problems = {p.name: policy_problems(p.spec) for p in policies if p.name in effective.policies}
    if args.output in ("json", "yaml"):
        data = {**explain_dict(effective), "problems": {k: v for k, v in problems.items() if v}}
        print(json.dumps(data, indent=2) if args.output == "json" else yaml.safe_dump(data, sort_keys=False), end="")
        if args.output == "json":
            print()
        return 0
    shown = {k: v for k, v in namespace_labels(args.namespace, labels).items() if k != c.LABEL_NAMESPACE_NAME}
    lines = explain_lines(effective, shown)
    for name, found in problems.items():
        lines += [f"  ! SizingPolicy {name}: {problem}" for problem in found]
    print("\n".join(lines))
    return 0


def add_policy_arguments(plan_parser: argparse.ArgumentParser) -> None:
    """The policy options of `rightsizer plan`."""
    plan_parser.add_argument(
        "--policy", action="append", help="SizingPolicy manifest(s) or a directory of them (repeatable)"
    )
    plan_parser.add_argument("-n", "--namespace", help="namespace to evaluate in (default: the manifest's, or default)")
    plan_parser.add_argument("--namespace-labels", help="the namespace's labels, k=v,k2=v2 (for namespaceSelector)")


def add_policy_commands(sub: Any) -> None:
    """`rightsizer policy explain`."""
    policy = sub.add_parser("policy", help="inspect SizingPolicies offline")
    verbs = policy.add_subparsers(dest="verb", required=True)
    explain = verbs.add_parser("explain", help="the effective policy of a namespace, each value with its source")
    explain.add_argument("-n", "--namespace", required=True, help="namespace name")
    explain.add_argument(
        "--policies", action="append", required=True, help="SizingPolicy file or directory (repeatable)"
    )
    explain.add_argument("--namespace-labels", help="the namespace's labels, k=v,k2=v2")
    explain.add_argument("-o", "--output", choices=("text", "json", "yaml"), default="text")
    explain.set_defaults(func=cmd_policy_explain)
