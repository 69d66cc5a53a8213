"""Run one simulated vLLM replica:

    python -m e2e.vllm_sim --llmd examples/llama-3.1-70b-fp8-h200.yaml [--plan plan.json] --port 18000

`--llmd` is the LLMDeployment (model, quantization, served name, SLO); `--plan` the plan it runs (status.plan, or
`rightsizer plan -o json` output); without it the simulator sizes the LLMDeployment offline on one unbounded pool per
GPU product, as `rightsizer plan --offline` does. The model's config.json comes from the built-in catalog or
`--model-config`. It listens on a loopback address only.

`--model-error PREFILL,DECODE` (or VLLM_SIM_MODEL_ERROR) runs the replica at another speed than the model believes:
each step's decode part and prompt part take that many times the model's (perf.Replica.scaled; 1.4,1.4 is 40 %
slower), so the operator's calibration has something to find. Default 1,1: the model itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml
from aiohttp import web

from e2e.vllm_sim.server import Served, SimulatedVllm, build_app
from rightsizer.adapters.modelsource import resolve
from rightsizer.api.v1alpha1.llmdeployment import LLMDeployment
from rightsizer.api.v1alpha1.plan import Plan
from rightsizer.facts.perf_calibration import VLLM
from rightsizer.perf.in_force import replica_of
from rightsizer.sizing import SizingRequest, plan
from rightsizer.sizing.pools import default_pools


def load_plan(path: Path) -> Plan:
    data = json.loads(path.read_text())
    return Plan.model_validate(data.get("plan", data) if isinstance(data, dict) else data)


def build(args: argparse.Namespace) -> tuple[SimulatedVllm, Plan]:
    deployment = LLMDeployment.model_validate(yaml.safe_load(Path(args.llmd).read_text()))
    spec = deployment.spec
    facts = resolve(spec.model, config_file=Path(args.model_config) if args.model_config else None).facts
    chosen = (
        load_plan(Path(args.plan)) if args.plan else plan(SizingRequest(spec, facts, default_pools()), spec.model.name)
    )
    replica = replica_of(spec, facts, chosen)
    if args.model_error != (1.0, 1.0):
        replica = replica.scaled(*args.model_error)
    served = Served(
        model=spec.model.served_name or spec.model.name,
        max_model_len=chosen.max_model_len,
        request_overhead_s=VLLM.request_overhead_s,
        version=chosen.engine_version,
        time_scale=args.time_scale,
    )
    return SimulatedVllm(replica, chosen.kv_cache_blocks, served), chosen


def loopback(host: str) -> str:
    if not ipaddress.ip_address(host).is_loopback:
        raise argparse.ArgumentTypeError(f"{host} is not a loopback address; the simulator serves on loopback only")
    return host


def model_error(text: str) -> tuple[float, float]:
    """PREFILL,DECODE factors (one number: both)."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    values = values * 2 if len(values) == 1 else values
    if len(values) != 2 or not all(0 < v < math.inf for v in values):
        raise argparse.ArgumentTypeError(f"model error {text!r}: give PREFILL,DECODE factors > 0, e.g. 1.4,1.4")
    return values[0], values[1]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m e2e.vllm_sim", description=__doc__.split("\n\n")[0])
    p.add_argument("--llmd", required=True, help="LLMDeployment YAML")
    p.add_argument("--plan", help="plan JSON (status.plan or `rightsizer plan -o json`); default: size offline")
    p.add_argument("--model-config", help="the model's config.json, when it is not in the catalog")
    p.add_argument("--host", type=loopback, default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--time-scale", type=float, default=1.0, help="run k× faster than the model (latencies stay)")
    p.add_argument("--startup-seconds", type=float, default=0.0, help="wait this long before listening (loading)")
    p.add_argument(
        "--model-error",
        type=model_error,
        default=os.environ.get("VLLM_SIM_MODEL_ERROR", "1,1"),
        metavar="PREFILL,DECODE",
        help="run steps this many times the model's time (default $VLLM_SIM_MODEL_ERROR or 1,1)",
    )
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    sim, chosen = build(args)
    await asyncio.sleep(args.startup_seconds)
    runner = web.AppRunner(build_app(sim), handle_signals=True)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port).start()
    print(
        f"vllm-sim serving {sim.served.model} on http://{args.host}:{args.port}: {chosen.gpus_per_replica} × "
        f"{chosen.gpu_product}, TP {chosen.tensor_parallel_size}, max-num-seqs {chosen.max_num_seqs}, "
        f"{chosen.kv_cache_blocks} KV blocks",
        file=sys.stderr,
        flush=True,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
