"""Rendering the Helm chart for tests: `helm template` with values, the documents it yields, and the operator
container it declares (what `rightsizer run` gets in the cluster)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hack.manifests import helm_binary

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "rightsizer"


class HelmError(Exception):
    pass


def helm(*args: str, kubeconfig: str | None = None, stdin: str | None = None) -> str:
    command = [str(helm_binary()), *args]
    if kubeconfig is not None:
        command += ["--kubeconfig", kubeconfig]
    result = subprocess.run(command, input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise HelmError(f"helm {' '.join(args[:2])}: {result.stderr.strip()}")
    return result.stdout


def documents(text: str) -> Iterator[dict[str, Any]]:
    yield from (doc for doc in yaml.safe_load_all(text) if doc)


def template(values: Mapping[str, Any] | None = None, *, release: str = "rightsizer", namespace: str = "rs") -> str:
    """`helm template` of the chart with `values` (given as a values file on stdin, as users pass them)."""
    return helm(
        "template",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--values",
        "-",
        stdin=yaml.safe_dump(dict(values or {})),
    )


def objects(values: Mapping[str, Any] | None = None, **kwargs: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """The rendered objects by (kind, name)."""
    return {(d["kind"], d["metadata"]["name"]): d for d in documents(template(values, **kwargs))}


@dataclass(frozen=True)
class OperatorContainer:
    """The operator container of a rendered release: what `rightsizer run` gets in the cluster."""

    args: list[str]
    env: dict[str, str]  # literal values only; valueFrom entries (downward API, Secrets) are listed apart
    value_from: dict[str, dict[str, Any]]
    spec: dict[str, Any]

    @classmethod
    def of(cls, manifest: str) -> OperatorContainer:
        workload = next(d for d in documents(manifest) if d["kind"] in ("Deployment", "StatefulSet"))
        container = workload["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}
        value_from = {e["name"]: e["valueFrom"] for e in container.get("env", []) if "valueFrom" in e}
        return cls(list(container["args"]), env, value_from, container)

    def run_args(self, substitutions: Mapping[str, str]) -> tuple[str, ...]:
        """The args after `run`, with $(VAR) expanded as the kubelet would and literal overrides applied."""
        out = []
        for arg in self.args[1:]:  # args[0] is the `run` subcommand
            expanded = arg
            for old, new in substitutions.items():
                expanded = expanded.replace(old, new)
            out.append(expanded)
        return tuple(out)
