"""rightsizer's `vllm serve` arguments and Prometheus metric names against the real vLLM release they target.

The parser and the metrics are read from the release's wheel (tests/contract/vllm_release.py). The plans are made by
the real sizing code, over models, GPUs and spec fields chosen so that every flag server_args() can emit is emitted
at least once (test_the_cases_cover_every_flag_we_emit keeps it so).
"""

from __future__ import annotations

import functools
import json
import shlex
from typing import Any

import pytest

from rightsizer.api.v1alpha1.llmdeployment import DEFAULT_ENGINE_VERSION, LLMDeploymentSpec
from rightsizer.api.v1alpha1.plan import Plan
from rightsizer.errors import RightsizerError, SizingError
from rightsizer.facts import vllm_metrics
from rightsizer.facts.gpus import lookup
from rightsizer.facts.vllm_metrics import Kind, Signal
from rightsizer.facts.vllm_options import RELEASES
from rightsizer.facts.vllm_profiles import profile_for
from rightsizer.facts.vllm_release import parse_release
from rightsizer.kube.builders.children import desired_children
from rightsizer.kube.builders.context import BuildContext
from rightsizer.sizing import SizingRequest, plan
from rightsizer.sizing.extra_args import REFUSED, read_extra_args
from rightsizer.sizing.pools import GpuPool
from tests.contract.conftest import cached_releases, load_or_skip
from tests.contract.vllm_release import ReleaseContract
from tests.unit.fp8_checkpoints import FP8_CHECKPOINTS, fp8_facts
from tests.unit.helpers import facts_of

ENUM_FLAGS = ("--kv-cache-dtype", "--quantization", "--dtype")

# name -> (model, GPU products, spec fields); each exercises a different branch of server_args().
CASES: dict[str, tuple[str, list[str], dict[str, Any]]] = {
    "8b-h100-defaults": ("meta-llama/Llama-3.1-8B-Instruct", ["H100"], {}),
    "70b-bf16-h200-tp2": ("meta-llama/Llama-3.1-70B-Instruct", ["H200"], {}),
    "70b-online-fp8-h200": ("meta-llama/Llama-3.1-70B-Instruct", ["H200"], {"model": {"quantization": "fp8"}}),
    "405b-h100-tp8-pp2": ("meta-llama/Llama-3.1-405B-Instruct", ["H100"], {}),
    "qwen3-moe-fp8-kv": ("Qwen/Qwen3-30B-A3B", ["H100"], {"serving": {"kvCacheDtype": "fp8", "maxModelLen": 32768}}),
    "mistral-fp16-revision-served-name": (
        "mistralai/Mistral-7B-Instruct-v0.3",
        ["L40S"],
        {
            "model": {"dtype": "float16", "revision": "main", "servedName": "chat"},
            "serving": {"gpuMemoryUtilization": 0.85},
        },
    ),
    "gemma3-bf16-fp8-kv-l40s-tp2": (
        "google/gemma-3-27b-it",
        ["L40S"],
        {"model": {"dtype": "bfloat16"}, "serving": {"kvCacheDtype": "fp8"}},
    ),
    "gpt-oss-mxfp4-checkpoint": ("openai/gpt-oss-20b", ["H100"], {}),
    "deepseek-mla-a100": ("deepseek-ai/DeepSeek-V2-Lite-Chat", ["A100-80GB"], {}),
    # TP8 is refused for the FP8 block without expert parallelism: the plan adds --enable-expert-parallel.
    "qwen3-235b-fp8-expert-parallel-l40s": ("Qwen/Qwen3-235B-A22B-FP8", ["L40S"], {}),
    "extra-args": (
        "Qwen/Qwen3-8B",
        ["H100"],
        {"serving": {"engine": {"extraArgs": ["--no-enable-prefix-caching", "--enforce-eager"]}}},
    ),
}


@functools.cache  # sizing is the slow part; the tests only read the plans
def make_plan(case: str, version: str = DEFAULT_ENGINE_VERSION) -> Plan:
    model, products, fields = CASES[case]
    spec: dict[str, Any] = {**fields, "model": {"name": model, **fields.get("model", {})}}
    spec["serving"] = {**fields.get("serving", {})}
    spec["serving"]["engine"] = {**spec["serving"].get("engine", {}), "version": version}
    pools = [GpuPool(lookup(p).short_name.lower(), lookup(p), 8, None, None) for p in products]
    facts = fp8_facts(model) if model in FP8_CHECKPOINTS else facts_of(model)
    return plan(SizingRequest(LLMDeploymentSpec.model_validate(spec), facts, pools), model)


def flag_values(args: list[str]) -> dict[str, str | None]:
    """`--flag value` pairs of a plan's args (a flag followed by another flag has no value)."""
    pairs: dict[str, str | None] = {}
    for i, arg in enumerate(args):
        if arg.startswith("-"):
            following = args[i + 1] if i + 1 < len(args) else None
            pairs[arg] = following if following is not None and not following.startswith("-") else None
    return pairs


def supported(version: str) -> bool:
    try:
        profile_for(version)
    except RightsizerError:  # releases before the V1 accounting rightsizer models
        return False
    return True


# --- arguments ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_the_pinned_parser_accepts_every_plan(pinned: ReleaseContract, case: str) -> None:
    args = make_plan(case).vllm_args
    assert pinned.problems(args) == [], f"vLLM {pinned.version} refuses {args}"


@pytest.mark.parametrize("case", CASES)
def serve_argv(workload: dict[str, Any]) -> list[str]:
    """The arguments `vllm serve` gets in a built workload: the container's args under the image's entrypoint
    (`vllm serve`) for a Deployment, the `exec vllm serve ...` line of the leader's script for a LeaderWorkerSet."""
    if workload["kind"] == "Deployment":
        container = workload["spec"]["template"]["spec"]["containers"][0]
        assert "command" not in container, "a Deployment overriding the image's `vllm serve` entrypoint"
        return list(container["args"])
    leader = workload["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]
    for line in leader["args"][-1].splitlines():
        words = shlex.split(line)
        if words[:3] == ["exec", "vllm", "serve"]:
            return words[3:]
    raise AssertionError("no `exec vllm serve` line in the leader's script")


def build_workload(case: str) -> dict[str, Any]:
    planned = make_plan(case)
    model, products, _ = CASES[case]
    pool = GpuPool(lookup(products[0]).short_name.lower(), lookup(products[0]), 8, None, None)
    spec = LLMDeploymentSpec.model_validate({"model": {"name": model}})
    children = desired_children(BuildContext("chat", "team-a", "uid-1", spec, planned, pool, 1))
    return next(c for c in children if c["kind"] in {"Deployment", "LeaderWorkerSet"})


@pytest.mark.parametrize("case", CASES)
def test_the_pinned_parser_accepts_the_built_workloads(pinned: ReleaseContract, case: str) -> None:
    """What the pods really run, multi-node leader flags (LeaderWorkerSet) included."""
    planned = make_plan(case)
    workload = build_workload(case)
    argv = serve_argv(workload)
    assert argv[: len(planned.vllm_args)] == planned.vllm_args
    assert pinned.problems(argv) == [], f"vLLM {pinned.version} refuses {workload['kind']} args {argv}"


@pytest.mark.parametrize("case", CASES)
def test_every_flag_is_an_exact_option_string(pinned: ReleaseContract, case: str) -> None:
    """Exact, not an abbreviation argparse happens to resolve today: a new vLLM flag would make it ambiguous."""
    flags = pinned.parser_model.flags()
    assert [f for f in flag_values(make_plan(case).vllm_args) if f not in flags] == []


@pytest.mark.parametrize("case", CASES)
def test_enum_values_are_ones_the_release_declares(pinned: ReleaseContract, case: str) -> None:
    for flag, value in flag_values(make_plan(case).vllm_args).items():
        if flag not in ENUM_FLAGS:
            continue
        declared = pinned.parser_model.option(flag).declared_values
        assert declared is not None and value in declared, f"{flag} {value} not in vLLM {pinned.version}: {declared}"
        if flag == "--quantization":  # vllm/config/model.py refuses these without --allow-deprecated-quantization
            assert value not in pinned.deprecated_quantization


def test_the_cases_cover_every_flag_we_emit() -> None:
    emitted = {f for case in CASES for f in flag_values(make_plan(case).vllm_args)}
    computed = {"--tensor-parallel-size", "--pipeline-parallel-size", "--max-model-len", "--max-num-seqs"}
    computed |= {"--max-num-batched-tokens", "--gpu-memory-utilization", "--kv-cache-dtype", "--quantization"}
    computed |= {"--model", "--revision", "--served-model-name", "--port", "--dtype", "--enable-expert-parallel"}
    assert computed <= emitted
    assert {"--enforce-eager", "--no-enable-prefix-caching"} <= emitted  # extraArgs pass through
    assert {build_workload(case)["kind"] for case in CASES} == {"Deployment", "LeaderWorkerSet"}


@pytest.mark.parametrize("version", [v for v in cached_releases() if supported(v)] or [DEFAULT_ENGINE_VERSION])
def test_every_cached_supported_release_accepts_the_plans(version: str) -> None:
    """The same check for each release whose wheel is cached and that rightsizer sizes for (0.10 onwards)."""
    contract = load_or_skip(version, download=version == DEFAULT_ENGINE_VERSION)
    refused = {case: contract.problems(make_plan(case, version).vllm_args) for case in CASES}
    assert {case: p for case, p in refused.items() if p} == {}


@pytest.mark.parametrize("version", ["0.10.2", "0.11.0", "0.19.0"])
def test_the_limit_mm_per_prompt_form_parses_in_each_release(version: str) -> None:
    """`--limit-mm-per-prompt` as the plan emits it: a JSON object of counts, json.loads-typed by each release's
    parser and the legacy count-only form its MultiModalConfig takes (0.10.2/0.11.0 `dict[str, int]`; 0.19.0 maps
    an int to {"count": n})."""
    contract = load_or_skip(version, download=version == DEFAULT_ENGINE_VERSION)
    spec = LLMDeploymentSpec.model_validate(
        {
            "model": {"name": "google/gemma-3-27b-it"},
            "serving": {"engine": {"version": version}, "limitMmPerPrompt": {"image": 0, "video": 2}},
        }
    )
    pools = [GpuPool("h100", lookup("H100"), 8, None, None)]
    args = plan(SizingRequest(spec, facts_of("google/gemma-3-27b-it"), pools), "gemma").vllm_args
    assert contract.problems(args) == [], f"vLLM {version} refuses {args}"
    option = contract.parser_model.option("--limit-mm-per-prompt")
    assert option.value_type == "json" and option.nargs is None
    value = json.loads(args[args.index("--limit-mm-per-prompt") + 1])
    assert value == {"image": 0, "video": 2} and all(type(n) is int for n in value.values())
    assert contract.problems([*BASE, "--limit-mm-per-prompt", "image=0"])  # the checker can fail


def test_every_flag_we_emit_is_refused_in_extra_args(pinned: ReleaseContract) -> None:
    """What rightsizer computes cannot be set again in extraArgs: appended after the computed flags, it would win."""
    parser = pinned.parser()
    appended = {
        a for _, _, fields in CASES.values() for a in fields.get("serving", {}).get("engine", {}).get("extraArgs", [])
    }
    emitted = {f for case in CASES for f in flag_values(make_plan(case).vllm_args)} - appended
    bound = {f: parser.resolve(f) for f in emitted}
    assert all(option is not None for option in bound.values())
    not_refused = sorted(f for f, option in bound.items() if option is not None and option.dest not in REFUSED)
    assert not_refused == []


def test_every_spelling_of_a_refused_option_is_refused(pinned: ReleaseContract) -> None:
    """Each option string (aliases, `--no-` forms), the `_` spelling FlexibleArgumentParser accepts, and every
    abbreviation argparse resolves to it: all refused, naming the argument's index."""
    parser = pinned.parser()
    spellings = set()
    for option in (o for o in pinned.parser_model.options if o.dest in REFUSED and o.flags):
        for flag in option.spellings():
            spellings.add(flag)
            if flag.startswith("--"):
                spellings.add("--" + flag[2:].replace("-", "_"))
                spellings |= {flag[:n] for n in range(3, len(flag)) if parser.resolve(flag[:n]) is option}
    let_through = []
    for spelling in sorted(spellings):
        bound = parser.resolve(spelling)
        args = [spelling] if bound is not None and not bound.takes_value else [spelling, "1"]
        try:
            read_extra_args(pinned.version, ["--enforce-eager", *args])
        except SizingError as error:
            assert error.field == "spec.serving.engine.extraArgs[1]", error
            continue
        let_through.append(spelling)
    assert let_through == []


def test_every_refused_name_is_an_option_of_some_release(pinned: ReleaseContract) -> None:
    """A typo in the refusal table would refuse nothing."""
    known = {o.dest for release in RELEASES.values() for o in release.options}
    assert sorted(set(REFUSED) - known) == []


# --- the checker can fail -------------------------------------------------------------------------------------------

BASE = ["--model", "m", "--tensor-parallel-size", "2"]


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        (["--max-num-sequences", "8"], "unrecognized arguments"),  # made up
        (["--tensor-parallel", "2"], ""),  # an unambiguous prefix: argparse (allow_abbrev) takes it
        (["--max-num", "8"], "ambiguous option"),  # prefix of three options
        (["--kv-cache-dtype", "fp9"], "invalid choice"),
        (["--dtype", "bf16"], "invalid choice"),
        (["--quantization", "fp4x"], "not one of QUANTIZATION_METHODS"),
        (["-q=fbgemm_fp8"], "deprecated"),
        (["-q", "fbgemm_fp8", "--allow-deprecated-quantization"], ""),
        (["--distributed-executor-backend", "my.pkg.Executor"], ""),  # `str | Literal[...]`: a class path is valid
        (["--gpu-memory-utilization", "1.5"], "violates le 1"),
        (["--max-num-seqs", "0"], "violates ge 1"),
        (["--max-model-len", "lots"], "invalid"),
        (["--max-model-len"], "expected one argument"),
        (["--no-max-model-len"], "unrecognized arguments"),  # only booleans have --no- forms
        (["--enforce-eager", "yes"], "unrecognized arguments"),  # a boolean takes no value
        (["--no-enable-prefix-caching"], ""),
        (["-tp", "4", "-q", "fp8", "--max-model-len", "32k", "--max_num_seqs", "4"], ""),
    ],
)
def test_the_parser_model_refuses_what_vllm_refuses(pinned: ReleaseContract, extra: list[str], why: str) -> None:
    problems = pinned.problems(BASE + extra)
    if why:
        assert problems and why in problems[0], problems
    else:
        assert problems == []


def test_a_plan_with_a_made_up_flag_fails_the_contract(pinned: ReleaseContract) -> None:
    args = [*make_plan("8b-h100-defaults").vllm_args, "--kv-cache-fraction", "0.5"]
    assert pinned.problems(args)
    assert "--kv-cache-fraction" not in pinned.parser_model.flags()


def test_known_options_are_extracted_with_their_shape(pinned: ReleaseContract) -> None:
    model = pinned.parser_model
    assert model.option("-tp") is model.option("--tensor-parallel-size")
    assert "--no-enable-prefix-caching" in model.option("--enable-prefix-caching").spellings()
    kv_cache_dtypes = model.option("--kv-cache-dtype").choices
    assert kv_cache_dtypes is not None and "fp8" in kv_cache_dtypes
    assert model.option("--max-model-len").value_type == "human_int_or_auto"
    assert ("le", 1.0) in model.option("--gpu-memory-utilization").bounds
    assert model.option("--port").value_type == "int"  # from FrontendArgs' dataclass fields


def test_the_json_cache_round_trips(pinned: ReleaseContract) -> None:
    assert ReleaseContract.from_json(pinned.to_json()) == pinned


# --- metrics --------------------------------------------------------------------------------------------------------

KIND = {Kind.GAUGE: "gauge", Kind.HISTOGRAM: "histogram"}


@pytest.mark.parametrize("signal", list(Signal))
def test_the_pinned_release_exposes_every_signal(pinned: ReleaseContract, signal: Signal) -> None:
    names = vllm_metrics.names_for(signal, pinned.version)
    assert names, f"no name for {signal} in vLLM {pinned.version}"
    for name in names:
        registered = pinned.metric(name.name)
        assert registered is not None, f"{name.name} is not in vLLM {pinned.version}"
        assert registered.source.startswith("vllm/v1/metrics/loggers.py")
        assert registered.always_registered, f"{name.name} needs {registered.conditions}"
        assert registered.kind == KIND[name.kind]
        assert set(name.series()) <= pinned.exposed_series()


def release_contracts() -> list[str]:
    return cached_releases() or [DEFAULT_ENGINE_VERSION]


@pytest.mark.parametrize("version", release_contracts())
def test_the_per_release_names_match_each_cached_release(version: str) -> None:
    """For every release in the cache: the names given are exposed by default, and every name of a signal that the
    release exposes by default is given (so the rename boundaries are exact, not just safe)."""
    contract = load_or_skip(version, download=version == DEFAULT_ENGINE_VERSION)
    exposed = contract.exposed_series()
    for signal, candidates in vllm_metrics.NAMES.items():
        given = {n.name for n in vllm_metrics.names_for(signal, version)}
        actually = {n.name for n in candidates if set(n.series()) <= exposed}
        assert given == actually, f"{signal} in vLLM {version}: facts say {given}, the wheel exposes {actually}"


@pytest.mark.parametrize("version", release_contracts())
def test_each_name_is_exposed_hidden_or_absent_as_the_facts_say(version: str) -> None:
    contract = load_or_skip(version, download=version == DEFAULT_ENGINE_VERSION)
    release = parse_release(version)
    for name in (n for names in vllm_metrics.NAMES.values() for n in names):
        registered = contract.metric(name.name)
        actual = "absent" if registered is None else "hidden" if registered.hidden else "exposed"
        assert name.state(release) == actual, f"{name.name} in vLLM {version}"


def test_renamed_names_are_gone_from_the_pinned_release(pinned: ReleaseContract) -> None:
    exposed = pinned.exposed_series(hidden=True)
    assert "vllm:gpu_cache_usage_perc" not in exposed
    assert "vllm:time_per_output_token_seconds_bucket" not in exposed
    assert "vllm:prompt_tokens_total" in exposed  # counters gain _total
    assert "vllm:prompt_tokens" not in exposed
