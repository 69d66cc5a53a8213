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

import yaml
from pydantic import ValidationError

from rightsizer.adapters.files import InputFileError, load_pools, load_yaml
from rightsizer.adapters.hub import HubClient
from rightsizer.adapters.modelsource import resolve
from rightsizer.api.crdgen import stale_files, write_all
from rightsizer.api.registry import KINDS
from rightsizer.api.v1alpha1.llmdeployment import LLMDeployment
from rightsizer.cli.common import EXIT_USAGE, UsageError
from rightsizer.cli.policy import add_policy_arguments, add_policy_commands, plan_under_policy
from rightsizer.cli.render import plan_table, pools_table
from rightsizer.errors import RightsizerError, validation_message
from rightsizer.facts import catalog, gpus
from rightsizer.scaling.calibration import FACTOR_BOUNDS
from rightsizer.sizing import SizingRequest
from rightsizer.sizing.performance import Correction, SloPerformance
from rightsizer.sizing.planner import plan_with_pools
from rightsizer.sizing.pools import default_pools


def load_deployment(path: Path) -> LLMDeployment:
    data = load_yaml(path)
    if isinstance(data, dict) and data.get("kind") not in (None, "LLMDeployment"):
        raise UsageError(f"{path}: kind is {data.get('kind')!r}; expected an LLMDeployment manifest")
    if not isinstance(data, dict) or "spec" not in data:
        raise UsageError(f"{path}: not an LLMDeployment manifest (no spec)")
    try:
        return LLMDeployment.model_validate(data)
    except ValidationError as err:
        raise UsageError(f"{path}: spec.{validation_message(err).removeprefix('spec.')}") from None


def speed_hook(speed: str | None) -> SloPerformance | None:
    """--speed PREFILL,DECODE: size as if replicas took these multiples of the model's time (the factors in an
    LLMDeployment's status.performance or status.recommendation), as the operator does when it re-sizes, with the
    model's cross-source slow edges throughout (no layout was measured here: sizing.performance.Correction)."""
    if speed is None:
        return None
    try:
        prefill, decode = (float(x) for x in speed.split(","))
    except ValueError:
        raise UsageError(f"--speed: {speed!r} is not PREFILL,DECODE (two numbers, e.g. 1.4,1.3)") from None
    low, high = FACTOR_BOUNDS
    if not all(low <= f <= high for f in (prefill, decode)):
        raise UsageError(f"--speed: each factor must be within {low:g}..{high:g}, not {speed}")
    return SloPerformance(correction=Correction(prefill, decode))


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
    performance = speed_hook(args.speed)
    if args.policy:
        return plan_under_policy(
            args, deployment, spec, resolved, pools if args.pools else None, performance=performance
        )
    result, ranked = plan_with_pools(SizingRequest(spec, resolved.facts, pools), spec.model.name, performance)
    name = deployment.metadata.get("name", Path(args.file).stem)
    entries = [r.entry for r in ranked]
    document = {"plan": result.to_wire(), "pools": [e.to_wire() for e in entries]}
    if args.output == "json":
        print(json.dumps(document, indent=2))
    elif args.output == "yaml":
        print(yaml.safe_dump(document, sort_keys=False, width=120), end="")
    else:
        print(plan_table(name, spec, result, resolved.source))
        print()
        print(pools_table(entries))
    return 0


def cmd_crds(args: argparse.Namespace) -> int:
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

    import rightsizer.controller.handlers
    from rightsizer.adapters.settings import OperatorSettings
    from rightsizer.controller.ha import Peering
    from rightsizer.controller.logs import configure_logging
    from rightsizer.controller.runtime import PEERING_KEY

    settings = OperatorSettings()
    namespaces = args.namespace or settings.namespaces
    if settings.webhook_enabled:
        # Admission handlers need a webhook server, so they are registered only when it is enabled.
        import rightsizer.controller.webhooks  # noqa: F401

    configure_logging(verbose=args.verbose, log_format=args.log_format or settings.log_format)
    identity = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    memo = kopf.Memo()
    if args.peering is not None:
        memo[PEERING_KEY] = Peering(args.peering, args.priority, identity, tuple(namespaces))
    kopf.run(
        identity=Identity(identity),  # shared with the background resync's peering check
        standalone=args.peering is None,
        peering_name=args.peering,
        priority=args.priority,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=args.liveness,
        memo=memo,
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
    p.add_argument(
        "--speed",
        metavar="PREFILL,DECODE",
        help="size as if replicas took these multiples of the model's time (a deployment's measured factors, "
        "status.performance), e.g. 1.4,1.4 for 40%% slower",
    )
    p.set_defaults(func=cmd_plan)

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
    except (UsageError, InputFileError, RightsizerError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`rightsizer plan ... | head`): stop quietly, and keep Python's exit-time flush of
        # stdout from raising again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
