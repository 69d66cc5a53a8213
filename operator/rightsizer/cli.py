"""The `rightsizer` command line: plan, crds, models (and `run`, the operator)."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from rightsizer.api.v1alpha1.common import GpuPoolSpec
from rightsizer.api.v1alpha1.llmdeployment import LLMDeployment
from rightsizer.errors import RightsizerError
from rightsizer.facts import catalog, gpus
from rightsizer.hub import HubClient
from rightsizer.modelsource import resolve
from rightsizer.pools import GpuPool, from_spec
from rightsizer.render import plan_table
from rightsizer.sizing import SizingRequest, plan

EXIT_USAGE = 2


class UsageError(Exception):
    """A problem with the command's input: printed as one line, exit status 2."""


def default_pools(gpus_per_node: int = 8) -> list[GpuPool]:
    """Without a pools file: one unbounded pool of 8-GPU nodes per known product."""
    return [
        GpuPool(name=p.short_name.lower(), gpu=p, gpus_per_node=gpus_per_node, max_nodes=None) for p in gpus.PRODUCTS
    ]


def load_pools(path: Path) -> list[GpuPool]:
    data = _load_yaml(path)
    items = data.get("pools", data) if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise UsageError(f"{path}: expected a list of pools (or a mapping with a 'pools' list)")
    try:
        return [from_spec(GpuPoolSpec.model_validate(item)) for item in items]
    except ValidationError as err:
        raise UsageError(f"{path}: {_first_error(err)}") from None
    except gpus.UnknownGpuProductError as err:
        raise UsageError(f"{path}: {err}") from None


def _load_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as err:
        raise UsageError(f"{path}: {err.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UsageError(f"{path}: malformed YAML{where}: {getattr(err, 'problem', err)}") from None


def _first_error(err: ValidationError) -> str:
    first = err.errors()[0]
    location = ".".join(str(p) for p in first["loc"])
    return f"{location}: {first['msg']}"


def load_deployment(path: Path) -> LLMDeployment:
    data = _load_yaml(path)
    if isinstance(data, dict) and data.get("kind") not in (None, "LLMDeployment"):
        raise UsageError(f"{path}: kind is {data.get('kind')!r}; expected an LLMDeployment manifest")
    if not isinstance(data, dict) or "spec" not in data:
        raise UsageError(f"{path}: not an LLMDeployment manifest (no spec)")
    try:
        return LLMDeployment.model_validate(data)
    except ValidationError as err:
        raise UsageError(f"{path}: spec.{_first_error(err).removeprefix('spec.')}") from None


def cmd_plan(args: argparse.Namespace) -> int:
    deployment = load_deployment(Path(args.file))
    spec = deployment.spec
    if args.gpu:
        try:
            gpus.lookup(args.gpu)
        except gpus.UnknownGpuProductError as err:
            raise UsageError(f"--gpu: {err}") from None
        spec = spec.model_copy(update={"gpu": spec.gpu.model_copy(update={"products": [args.gpu]})})
    pools = load_pools(Path(args.pools)) if args.pools else default_pools()
    hub = None if args.offline else HubClient.from_env()
    resolved = resolve(spec.model, config_file=Path(args.model_config) if args.model_config else None, hub=hub)
    if args.policy:
        from rightsizer.cli_policy import plan_under_policy

        return plan_under_policy(args, deployment, spec, resolved, pools if args.pools else None)
    result = plan(SizingRequest(spec, resolved.facts, pools), spec.model.name)
    name = deployment.metadata.get("name", Path(args.file).stem)
    if args.output == "json":
        print(json.dumps({"plan": result.to_wire()}, indent=2))
    elif args.output == "yaml":
        print(yaml.safe_dump({"plan": result.to_wire()}, sort_keys=False, width=120), end="")
    else:
        print(plan_table(name, spec, result, resolved.source))
    return 0


def cmd_crds(args: argparse.Namespace) -> int:
    from rightsizer.api.crdgen import stale_files, write_all
    from rightsizer.api.registry import KINDS

    directory = Path(args.directory)
    if args.check:
        stale = stale_files(KINDS, directory)
        for path in stale:
            print(f"stale: {path} (run `rightsizer crds {directory}`)", file=sys.stderr)
        return 1 if stale else 0
    for path in write_all(KINDS, directory):
        print(path)
    return 0


def cmd_models(_: argparse.Namespace) -> int:
    for name in catalog.models():
        print(name)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run the operator (kopf) in this process until interrupted."""
    import kopf
    from kopf._core.engines.peering import Identity  # kopf.run accepts it; not re-exported

    import rightsizer.handlers
    from rightsizer.logs import configure_logging
    from rightsizer.settings import OperatorSettings

    settings = OperatorSettings()
    namespaces = args.namespace or settings.namespaces
    if settings.webhook_enabled:
        import rightsizer.webhooks  # noqa: F401 - admission handlers need a webhook server, so only when enabled

    configure_logging(verbose=args.verbose, log_format=args.log_format or settings.log_format)
    identity = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    if args.peering is not None:
        from rightsizer.ha import Peering
        from rightsizer.handlers import State

        State.peering = Peering(args.peering, args.priority, identity, tuple(namespaces))
    kopf.run(
        identity=Identity(identity),  # shared with the background resync's peering check
        standalone=args.peering is None,
        peering_name=args.peering,
        priority=args.priority,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=args.liveness,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rightsizer", description="Right-size vLLM deployments on GPU pools.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plan", help="compute the serving plan for an LLMDeployment manifest")
    p.add_argument("-f", "--file", required=True, help="LLMDeployment manifest (YAML)")
    p.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    p.add_argument("--model-config", help="a config.json to use instead of the catalog or the Hub")
    p.add_argument("--gpu", help="only consider this GPU product (e.g. H200, NVIDIA-H100-80GB-HBM3)")
    p.add_argument("--pools", help="YAML list of GPU pools (name, product, gpusPerNode, maxNodes, pricePerGpuHour)")
    p.add_argument("--offline", action="store_true", help="never contact the Hugging Face Hub")
    p.set_defaults(func=cmd_plan)

    from rightsizer.cli_policy import add_policy_arguments, add_policy_commands

    add_policy_arguments(p)
    add_policy_commands(sub)

    c = sub.add_parser("crds", help="generate the CustomResourceDefinitions from the API models")
    c.add_argument("directory", nargs="?", default="crds")
    c.add_argument("--check", action="store_true", help="fail if the files on disk are stale")
    c.set_defaults(func=cmd_crds)

    r = sub.add_parser("run", help="run the operator")
    r.add_argument("-n", "--namespace", action="append", help="watch only this namespace (repeatable)")
    r.add_argument("--peering", help="kopf peering name for high availability (one active operator per name)")
    r.add_argument("--priority", type=int, default=0, help="peering priority; the highest one acts")
    r.add_argument("--liveness", help="liveness endpoint, e.g. http://0.0.0.0:8081/healthz")
    r.add_argument("-v", "--verbose", action="store_true")
    r.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="text, or one JSON object per line (default: RIGHTSIZER_LOG_FORMAT)",
    )
    r.set_defaults(func=cmd_run)

    m = sub.add_parser("models", help="list the built-in model catalog")
    m.set_defaults(func=cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except (UsageError, RightsizerError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
