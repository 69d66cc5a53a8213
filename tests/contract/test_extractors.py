"""The static readers on a small source tree shaped like vLLM's, so that they are tested without any wheel: each
construct the real releases use (a kwargs dict per config class, dataclass fields turned into flags, a loop over
literal flags, TYPE_CHECKING-only Literals, hidden metrics) appears once."""

from __future__ import annotations

import pytest

from rightsizer.errors import SizingError, UnsupportedEngineVersionError
from rightsizer.facts import vllm_metrics
from rightsizer.facts.vllm_metrics import Signal
from rightsizer.sizing.extra_args import read_extra_args
from tests.contract.static_python import SourceTree
from tests.contract.vllm_cli import ExtractionError, ServeParser, extract_serve_parser
from tests.contract.vllm_metrics_source import extract_metrics

SERVE = """
from vllm.entrypoints.openai.cli_args import make_arg_parser

class ServeSubcommand:
    def subparser_init(self, subparsers):
        serve_parser = subparsers.add_parser("serve")
        serve_parser = make_arg_parser(serve_parser)
        serve_parser.add_argument("--grpc", action="store_true")
        return serve_parser
"""
CLI_ARGS = """
from dataclasses import dataclass
from vllm.engine.arg_utils import AsyncEngineArgs, get_kwargs

@dataclass
class BaseFrontendArgs:
    api_key: list[str] | None = None

    @classmethod
    def _customize(cls, kw):
        kw["api_key"]["type"] = json.loads
        return kw

    @classmethod
    def add_cli_args(cls, parser):
        kw = get_kwargs(cls)
        kw = cls._customize(kw)
        for key, value in kw.items():
            extra_flags = value.pop("flags", [])
            parser.add_argument(*extra_flags, f"--{key.replace('_', '-')}", **value)
        return parser

@dataclass
class FrontendArgs(BaseFrontendArgs):
    port: int = 8000

    @classmethod
    def _customize(cls, kw):
        kw = super()._customize(kw)
        kw["port"]["flags"] = ["-P"]
        return kw

def make_arg_parser(parser):
    parser.add_argument("model_tag", nargs="?")
    parser = FrontendArgs.add_cli_args(parser)
    parser = AsyncEngineArgs.add_cli_args(parser)
    return parser
"""
CACHE_CONFIG = """
from typing import TYPE_CHECKING, Any, Literal
from pydantic import Field
from vllm.config.utils import config

if TYPE_CHECKING:
    from vllm.quant import Methods
else:
    Methods = Any

CacheDType = Literal["auto", "fp8"]

@config
class CacheConfig:
    cache_dtype: CacheDType = "auto"
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    enable_prefix_caching: bool | None = None
    quantization: Methods | str | None = None
    max_model_len: int = Field(default=None, ge=-1)
"""
ARG_UTILS = """
import argparse
from vllm.config import CacheConfig
from vllm.utils.argparse_utils import FlexibleArgumentParser

def get_kwargs(cls): ...

def _compute_kwargs(cls):
    for field in fields(cls):
        if name == "max_model_len":
            kwargs[name]["type"] = human_readable_int_or_auto

class EngineArgs:
    @staticmethod
    def add_cli_args(parser):
        cache_kwargs = get_kwargs(CacheConfig)
        group = parser.add_argument_group("CacheConfig")
        group.add_argument("--kv-cache-dtype", **cache_kwargs["cache_dtype"])
        group.add_argument("--gpu-memory-utilization", **cache_kwargs["gpu_memory_utilization"])
        group.add_argument("--enable-prefix-caching", **{**cache_kwargs["enable_prefix_caching"], "default": None})
        group.add_argument("--quantization", "-q", **cache_kwargs["quantization"])
        group.add_argument("--max-model-len", **cache_kwargs["max_model_len"])
        for arg, type in [("--old-a", str), ("--old-b", int)]:
            group.add_argument(arg, type=type, deprecated=True)
        parser.add_argument("--disable-log-stats", action="store_true")
        return parser

class AsyncEngineArgs(EngineArgs):
    @staticmethod
    def add_cli_args(parser, async_args_only=False):
        if not async_args_only:
            parser = EngineArgs.add_cli_args(parser)
        parser.add_argument("--enable-log-requests", action=argparse.BooleanOptionalAction)
        current_platform.pre_register_and_update(parser)
        return parser
"""
FILES = {
    "vllm/__init__.py": "",
    "vllm/entrypoints/cli/serve.py": SERVE,
    "vllm/entrypoints/openai/cli_args.py": CLI_ARGS,
    "vllm/config/__init__.py": "from vllm.config.cache import CacheConfig\n",
    "vllm/config/utils.py": "def config(cls):\n    return cls\n",
    "vllm/config/cache.py": CACHE_CONFIG,
    "vllm/quant.py": 'from typing import Literal\nMethods = Literal["fp8", "awq"]\n',
    "vllm/utils/argparse_utils.py": (
        "class FlexibleArgumentParser:\n    def parse_args(self, args):\n        re.match(r'^--model(=.+|$)', a)\n"
    ),
    "vllm/engine/arg_utils.py": ARG_UTILS,
}


@pytest.fixture
def model():  # type: ignore[no-untyped-def]
    return extract_serve_parser(SourceTree(FILES.get))


def test_every_registration_is_found(model) -> None:  # type: ignore[no-untyped-def]
    assert model.flags() == {
        "--grpc",
        "--api-key",
        "--port",
        "-P",
        "--kv-cache-dtype",
        "--gpu-memory-utilization",
        "--enable-prefix-caching",
        "--no-enable-prefix-caching",
        "--quantization",
        "-q",
        "--max-model-len",
        "--old-a",
        "--old-b",
        "--disable-log-stats",
        "--enable-log-requests",
        "--no-enable-log-requests",
        "-h",
        "--help",
    }
    assert model.allow_abbrev and model.model_option_to_positional


def test_config_fields_become_argparse_kwargs_as_vllm_computes_them(model) -> None:  # type: ignore[no-untyped-def]
    kv = model.option("--kv-cache-dtype")
    assert (kv.choices, kv.declared_values) == (("auto", "fp8"), ("auto", "fp8"))
    quantization = model.option("-q")
    assert quantization.choices is None  # Literal | str: a metavar, not choices
    assert quantization.declared_values == ("awq", "fp8")  # through the TYPE_CHECKING import
    assert quantization.open_values and not kv.open_values
    assert quantization.none_allowed
    assert model.option("--gpu-memory-utilization").bounds == (("gt", 0.0), ("le", 1.0))
    assert model.option("--max-model-len").value_type == "human_int_or_auto"
    assert model.option("--api-key").value_type == "json"  # the customising hook's type wins
    assert model.option("--old-b").value_type == "int"  # from the unrolled loop
    assert model.option("-P") is model.option("--port")


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["--model", "m", "--kv-cache-dtype", "fp8", "-q", "awq", "--no-enable-prefix-caching"], ""),
        (["--kv", "fp8"], ""),  # unambiguous prefix
        (["--enable", "x"], "ambiguous option"),
        (["--kv-cache-dtype", "fp16"], "invalid choice"),
        (["--quantization", "gptq"], ""),  # `Literal | str` is open; ReleaseContract adds vLLM's own method check
        (["--kv-cache-dtype=fp8", "-q", "awq"], ""),
        (["--gpu-memory-utilization", "0"], "violates gt 0"),
        (["--max-model-len", "32k", "--max_model_len", "auto"], ""),
        (["--grpc", "yes", "--model", "m"], "unrecognized arguments: yes"),  # --model moved in front first
    ],
)
def test_the_parser_model_checks_arguments(model, argv: list[str], why: str) -> None:  # type: ignore[no-untyped-def]
    problems = ServeParser(model).problems(argv)
    assert (why in problems[0]) if why else problems == [], problems


def test_an_unreadable_registration_fails_loudly() -> None:
    files = dict(FILES)
    files["vllm/engine/arg_utils.py"] = ARG_UTILS.replace(
        'parser.add_argument("--disable-log-stats", action="store_true")', "parser.add_argument(FLAG_NAME)"
    )
    with pytest.raises(ExtractionError, match="flag from a variable"):
        extract_serve_parser(SourceTree(files.get))


LOGGERS = """
class PrometheusStatLogger:
    def __init__(self, vllm_config):
        self.gauge_running = self._gauge_cls(name="vllm:num_requests_running", documentation="")
        self.counter_tokens = self._counter_cls(name="vllm:prompt_tokens", documentation="")
        self.counter_iters = self._counter_cls(name="vllm:iterations_total", documentation="")
        if self.show_hidden_metrics:
            self.old = self._histogram_cls(name="vllm:time_per_output_token_seconds", documentation="")
        else:
            self.new = self._histogram_cls(name="vllm:inter_token_latency_seconds", documentation="")

    def log_metrics_info(self, type):
        name = "vllm:cache_config_info"
        Gauge(name=name, documentation="")
"""


def test_metrics_are_found_with_their_conditions_and_series() -> None:
    metrics = {
        m.name: m
        for m in extract_metrics(
            iter(
                [
                    ("vllm/v1/metrics/loggers.py", LOGGERS),
                    ("vllm/engine/metrics.py", 'Gauge(name="vllm:gpu_cache_usage_perc")'),  # V0 engine: ignored
                ]
            )
        )
    }
    assert set(metrics) == {
        "vllm:num_requests_running",
        "vllm:prompt_tokens",
        "vllm:iterations_total",
        "vllm:time_per_output_token_seconds",
        "vllm:inter_token_latency_seconds",
        "vllm:cache_config_info",
    }
    assert metrics["vllm:prompt_tokens"].series() == ("vllm:prompt_tokens_total",)
    assert metrics["vllm:iterations_total"].series() == ("vllm:iterations_total",)  # not suffixed twice
    assert metrics["vllm:time_per_output_token_seconds"].hidden
    assert metrics["vllm:inter_token_latency_seconds"].conditions == ("not (self.show_hidden_metrics)",)
    assert metrics["vllm:inter_token_latency_seconds"].series()[0] == "vllm:inter_token_latency_seconds_bucket"
    assert metrics["vllm:cache_config_info"].always_registered


# --- the facts and the extraArgs guard, table-driven (the wheels check the same against real releases) ----------------


@pytest.mark.parametrize(
    ("version", "itl", "kv_usage"),
    [
        ("0.9.1", ["vllm:time_per_output_token_seconds"], ["vllm:gpu_cache_usage_perc"]),
        ("0.10.0", ["vllm:time_per_output_token_seconds"], ["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"]),
        (
            "0.10.2",
            ["vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"],
            ["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"],
        ),
        (
            "0.11",
            ["vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"],
            ["vllm:kv_cache_usage_perc"],
        ),
        ("0.12.0", ["vllm:inter_token_latency_seconds"], ["vllm:kv_cache_usage_perc"]),
        ("v0.19.0", ["vllm:inter_token_latency_seconds"], ["vllm:kv_cache_usage_perc"]),
    ],
)
def test_names_per_release(version: str, itl: list[str], kv_usage: list[str]) -> None:
    names = vllm_metrics.metric_names(version)
    assert list(names[Signal.ITL]) == itl
    assert list(names[Signal.KV_CACHE_USAGE]) == kv_usage
    assert names[Signal.TTFT] == ("vllm:time_to_first_token_seconds",)


def test_a_bad_version_names_the_field() -> None:
    with pytest.raises(UnsupportedEngineVersionError, match=r"spec\.serving\.engine\.version"):
        vllm_metrics.names_for(Signal.TTFT, "latest")


@pytest.mark.parametrize(
    ("extra", "refused"),
    [
        (["--max-model-len=4096"], True),
        (["--max_model_len", "4096"], True),  # vLLM reads _ as -
        (["--max-model", "4096"], True),  # an abbreviation argparse resolves
        (["-tp=2"], True),
        (["--enable-prefix-caching", "--kv-cache-dtype-skip-layers", "0"], False),
        (["--model-impl", "vllm", "--max-num-partial-prefills", "2"], False),
        (["--chat-template", "/templates/t.jinja"], False),
    ],
)
def test_the_extra_args_guard(extra: list[str], refused: bool) -> None:
    if refused:
        with pytest.raises(SizingError, match="rightsizer computes it"):
            read_extra_args("0.19.0", extra)
    else:
        read_extra_args("0.19.0", extra)
