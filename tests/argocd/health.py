"""Judge an LLMDeployment with Argo CD itself: `argocd admin settings resource-overrides health OBJECT
--argocd-cm-path manifests/argocd/argocd-cm.yaml` evaluates the health customization in that ConfigMap with the same
code path the application controller uses (util/lua: gopher-lua, Lua 5.1, with only the base, table, package and a
safe os library loaded, a 1 s deadline, the object decoded from JSON). The binary is Argo CD's own, built from the Go
module proxy by `e2e/cluster/build argocd` at the version pinned in hack/versions.env."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.cluster import localplane

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "manifests" / "argocd" / "llmdeployment-health.lua"
ARGOCD_CM = SCRIPT.parent / "argocd-cm.yaml"
INSTALL_DOC = REPO / "docs" / "install.md"
FIXTURES = Path(__file__).parent / "fixtures"  # LLMDeployments captured from the local plane
EXPECTED = {  # the health each captured scenario must get; docs/install.md's table says the same (a test checks)
    "generation-behind": "Progressing",
    "rolling-out": "Progressing",
    "waiting-for-gpus": "Progressing",
    "ready": "Healthy",
    "scaled-to-zero": "Suspended",
    "not-sized": "Degraded",
    "policy-violation": "Degraded",
    "unschedulable": "Degraded",
}
HEALTH_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def argocd_binary() -> Path:
    return localplane.Paths(localplane.read_versions()).bin("argocd", "argocd")


def require_argocd() -> None:
    """Skips the calling test module without the binary; under CI (which builds it: .ci/run) that is a failure."""
    if argocd_binary().exists():
        return
    why = f"{argocd_binary()} is missing: run e2e/cluster/build argocd"
    if os.environ.get("CI"):
        raise RuntimeError(why)
    pytest.skip(why, allow_module_level=True)


def health(obj: dict[str, Any], argocd_cm: Path = ARGOCD_CM) -> dict[str, str]:
    """Argo CD's verdict on one object: {"status": ..., "message": ...}."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as handle:
        yaml.safe_dump(obj, handle)
        handle.flush()
        result = subprocess.run(
            [
                str(argocd_binary()),
                "admin",
                "settings",
                "resource-overrides",
                "health",
                handle.name,
                "--argocd-cm-path",
                str(argocd_cm),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    match = re.fullmatch(r"STATUS: (\w+)\nMESSAGE: (.*)\n", result.stdout, re.DOTALL)
    if result.returncode != 0 or match is None or match.group(1) not in HEALTH_STATUSES:
        raise ValueError(f"argocd gave no health (exit {result.returncode}): {result.stdout}{result.stderr}")
    return {"status": match.group(1), "message": match.group(2)}


def documented_mapping() -> dict[str, str]:
    """fixture -> health, from the table under "Argo CD" in docs/install.md (its last two columns)."""
    mapping = {}
    for line in INSTALL_DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[-1].startswith("`") and re.fullmatch(r"\*\*\w+\*\*", cells[-2]):
            for fixture in re.findall(r"`([a-z-]+)`", cells[-1]):
                mapping[fixture] = cells[-2].strip("*")
    return mapping
