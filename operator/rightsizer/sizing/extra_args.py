"""spec.serving.engine.extraArgs read the way the release's own `vllm serve` parser reads them, then refused where they
would fight the plan or the pod.

Reading: the release's option table (facts/vllm_options.py, generated from its wheel) and the rules of the parser
vLLM builds from it: FlexibleArgumentParser's rewriting first (vllm/utils/argparse_utils.py `parse_args`: `_` -> `-`
in a long option's name, `--a.b value` folded into `--a <json>`, `-O3` -> `--optimization-level 3`, `--config FILE`
read as more arguments), then argparse (Python 3.12, what the vllm/vllm-openai image runs: `_parse_optional` and
`_get_option_tuples`): exact option strings, `--opt=value`, unambiguous prefixes of long options (allow_abbrev),
single-dash options by prefix (`-t` is `-tp`) and with their value joined (`-qfp8` is `-q fp8`), and values
consumed by each option's nargs.

Refused, each with one line naming `spec.serving.engine.extraArgs[i]` and the fix: what rightsizer computes (the
sizing, parallelism, quantization, model-identity and network flags), what changes memory in ways the plan does not
count (LoRA, speculative decoding, offloading), what stops the server from serving (`--help`, `--headless`), and
anything the release's parser would itself refuse (unknown or ambiguous options, missing values, stray words).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rightsizer.errors import SizingError
from rightsizer.facts.vllm_option_table import Arity, ReleaseOptions, VllmOption
from rightsizer.facts.vllm_options import RELEASES
from rightsizer.model.multimodal import MM_ENCODER_TP_FLAG

FIELD = "spec.serving.engine.extraArgs"
_NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")  # argparse's _negative_number_matcher

COMPUTED = "rightsizer computes it"
_SIZING = "remove it: rightsizer computes it from the memory model"
_UNSIZED = "remove it: rightsizer's memory model does not count it, so the plan would not fit"

# dest -> (why it is refused, the fix). Every dest named here exists in some release's table (tests/unit check it).
REFUSED: dict[str, tuple[str, str]] = {
    # model identity
    "model": (COMPUTED, "set spec.model.name instead"),
    "served_model_name": (COMPUTED, "set spec.model.servedName instead"),
    "revision": (COMPUTED, "set spec.model.revision instead"),
    "hf_overrides": ("it changes the architecture rightsizer sized", "set spec.model.config instead"),
    "hf_config_path": ("it changes the architecture rightsizer sized", "set spec.model.config instead"),
    "runner": ("rightsizer sizes a generative server", "remove it"),
    "convert": ("rightsizer sizes a generative server", "remove it"),
    "config": ("a config file can set any flag, past these checks", "pass the flags in extraArgs instead"),
    # parallelism
    "tensor_parallel_size": (COMPUTED, "set spec.gpu.tensorParallelSize instead"),
    "pipeline_parallel_size": (COMPUTED, "set spec.gpu.pipelineParallelSize instead"),
    "enable_expert_parallel": (COMPUTED, "set spec.serving.expertParallel instead (it pins expert parallelism)"),
    "data_parallel_size": (COMPUTED, "set spec.replicas instead: each replica is one engine"),
    "data_parallel_size_local": (COMPUTED, "set spec.replicas instead: each replica is one engine"),
    "data_parallel_rank": (COMPUTED, "set spec.replicas instead: each replica is one engine"),
    "data_parallel_start_rank": (COMPUTED, "set spec.replicas instead: each replica is one engine"),
    "data_parallel_address": (COMPUTED, "set spec.replicas instead: each replica is one engine"),
    "data_parallel_rpc_port": (COMPUTED, "set spec.replicas instead: each replica is one engine"),
    "data_parallel_backend": (COMPUTED, "set spec.replicas instead: each replica is one engine"),
    "data_parallel_hybrid_lb": (COMPUTED, "set spec.replicas instead: each replica is one engine"),
    "data_parallel_external_lb": (COMPUTED, "set spec.replicas instead: each replica is one engine"),
    "decode_context_parallel_size": ("it changes the KV cache per GPU rightsizer sized", _UNSIZED),
    "prefill_context_parallel_size": ("it changes the KV cache per GPU rightsizer sized", _UNSIZED),
    "nnodes": (COMPUTED, "remove it: rightsizer lays out multi-node replicas (LeaderWorkerSet)"),
    "node_rank": (COMPUTED, "remove it: rightsizer lays out multi-node replicas (LeaderWorkerSet)"),
    "master_addr": (COMPUTED, "remove it: rightsizer lays out multi-node replicas (LeaderWorkerSet)"),
    "master_port": (COMPUTED, "remove it: rightsizer lays out multi-node replicas (LeaderWorkerSet)"),
    "enable_eplb": ("redundant experts add memory the plan does not count", _UNSIZED),
    "eplb_config": ("redundant experts add memory the plan does not count", _UNSIZED),
    "enable_elastic_ep": ("elastic expert parallelism changes the layout rightsizer sized", _UNSIZED),
    # quantization and dtypes
    "quantization": (COMPUTED, "set spec.model.quantization instead"),
    "dtype": (COMPUTED, "set spec.model.dtype instead"),
    "kv_cache_dtype": (COMPUTED, "set spec.serving.kvCacheDtype instead"),
    "load_format": ("a load format can quantize the weights on load, which the plan does not count", _UNSIZED),
    "mamba_cache_dtype": ("it changes the state memory rightsizer sized", _UNSIZED),
    "mamba_ssm_cache_dtype": ("it changes the state memory rightsizer sized", _UNSIZED),
    # sizing
    "max_model_len": (COMPUTED, "set spec.serving.maxModelLen instead"),
    "limit_mm_per_prompt": (COMPUTED, "set spec.serving.limitMmPerPrompt instead"),
    "language_model_only": (COMPUTED, "set spec.serving.limitMmPerPrompt to 0 for every modality instead"),
    "max_num_seqs": (COMPUTED, "set spec.serving.maxNumSeqs instead"),
    "max_num_batched_tokens": (COMPUTED, "set spec.serving.maxNumBatchedTokens instead"),
    "gpu_memory_utilization": (COMPUTED, "set spec.serving.gpuMemoryUtilization instead"),
    "kv_cache_memory_bytes": (COMPUTED, _SIZING),
    "num_gpu_blocks_override": (COMPUTED, _SIZING),
    "block_size": (COMPUTED, _SIZING),
    "mamba_block_size": (COMPUTED, _SIZING),
    "disable_sliding_window": ("it changes the KV cache rightsizer sized", _UNSIZED),
    "disable_hybrid_kv_cache_manager": ("it changes the KV cache rightsizer sized", _UNSIZED),
    "cpu_offload_gb": ("offloading changes the weights per GPU rightsizer sized", _UNSIZED),
    "cpu_offload_params": ("offloading changes the weights per GPU rightsizer sized", _UNSIZED),
    "offload_backend": ("offloading changes the weights per GPU rightsizer sized", _UNSIZED),
    "offload_group_size": ("offloading changes the weights per GPU rightsizer sized", _UNSIZED),
    "offload_num_in_group": ("offloading changes the weights per GPU rightsizer sized", _UNSIZED),
    "offload_prefetch_step": ("offloading changes the weights per GPU rightsizer sized", _UNSIZED),
    "offload_params": ("offloading changes the weights per GPU rightsizer sized", _UNSIZED),
    "speculative_config": ("a draft model and speculative tokens add memory the plan does not count", _UNSIZED),
    # LoRA: adapters and their static buffers take GPU memory the plan does not count
    **{
        dest: ("LoRA adapters add memory the plan does not count", _UNSIZED)
        for dest in (
            "enable_lora",
            "lora_modules",
            "max_loras",
            "max_lora_rank",
            "lora_dtype",
            "max_cpu_loras",
            "fully_sharded_loras",
            "lora_target_modules",
            "default_mm_loras",
            "enable_tower_connector_lora",
            "specialize_active_lora",
            "lora_extra_vocab_size",
        )
    },
    # network: the Service, the probes and the Prometheus scrape expect plain HTTP on rightsizer's port
    "host": (COMPUTED, "remove it: vLLM must listen on every address of the pod for its Service"),
    "port": (COMPUTED, "remove it: the Service, probes and metrics use rightsizer's port"),
    "uds": ("a Unix socket leaves the Service, probes and metrics with nothing to reach", "remove it"),
    "headless": ("a headless engine serves no API: the probes never pass", "remove it"),
    "grpc": ("the probes and metrics expect vLLM's HTTP server", "remove it"),
    "ssl_keyfile": ("the probes and metrics expect plain HTTP", "remove it; terminate TLS at a gateway"),
    "ssl_certfile": ("the probes and metrics expect plain HTTP", "remove it; terminate TLS at a gateway"),
    "ssl_ca_certs": ("the probes and metrics expect plain HTTP", "remove it; terminate TLS at a gateway"),
    "ssl_cert_reqs": ("the probes and metrics expect plain HTTP", "remove it; terminate TLS at a gateway"),
    "ssl_ciphers": ("the probes and metrics expect plain HTTP", "remove it; terminate TLS at a gateway"),
    "enable_ssl_refresh": ("the probes and metrics expect plain HTTP", "remove it; terminate TLS at a gateway"),
    # what stops the server
    "help": ("vLLM prints its help and exits: the pod would never serve", "remove it"),
}


# vLLM's MMEncoderTPMode = Literal["weights", "data"] (config/multimodal.py@v0.11.0 and v0.19.0; config/__init__.py
# at v0.10.2): argparse refuses any other value.
MM_ENCODER_TP_MODES = ("weights", "data")
# Options whose value the plan follows, read outside this parser (model.multimodal.encoder_tp_data): only their full
# spelling is taken, so every reader agrees (tests/contract/test_vllm_options.py knows this).
FULL_SPELLING_ONLY = {"mm_encoder_tp_mode": MM_ENCODER_TP_FLAG}


@dataclass(frozen=True)
class BoundArg:
    """One option of extraArgs as vLLM's parser binds it."""

    index: int  # position of the option's name in extraArgs
    written: str  # as written in extraArgs
    option: VllmOption
    matched: str  # the option string argparse matched (a `--no-` form, the full name of an abbreviation)
    value: str | None = None  # its value (joined or the next argument) when it takes exactly one


@dataclass(frozen=True)
class ExtraArgs:
    """What the plan needs to know of accepted extraArgs."""

    bound: tuple[BoundArg, ...]
    release: str  # the release whose table read them

    @property
    def chunked_prefill(self) -> bool:
        """False when extraArgs turn chunked prefill off (the last switch wins, as in argparse)."""
        switches = [b for b in self.bound if b.option.dest == "enable_chunked_prefill"]
        return not switches or not switches[-1].matched.startswith("--no-")

    @property
    def trust_remote_code(self) -> BoundArg | None:
        """The switch that leaves vLLM running the model repository's own Python code (the last of
        --trust-remote-code / --no-trust-remote-code wins, as in argparse), or None."""
        switches = [b for b in self.bound if b.option.dest == "trust_remote_code"]
        return switches[-1] if switches and not switches[-1].matched.startswith("--no-") else None


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def release_table(version: str) -> ReleaseOptions:
    """The table of `version`, else of the newest release before it that has one, else of the oldest known."""
    known = sorted(RELEASES, key=_version_key)
    wanted = _version_key(version)
    at_or_before = [v for v in known if _version_key(v) <= wanted]
    return RELEASES[at_or_before[-1] if at_or_before else known[0]]


class _Reader:
    def __init__(self, table: ReleaseOptions, extra: Sequence[str], version: str) -> None:
        self.table, self.extra, self.version = table, list(extra), version
        self.spellings = table.by_spelling()
        self.release = f"an option of vLLM {version}" + (
            "" if table.version == version else f" (judged by {table.version}'s option table, the nearest one known)"
        )

    def error(self, index: int, problem: str, fix: str) -> SizingError:
        return SizingError(f"{FIELD}[{index}]", problem, fix)

    def _looks_like_option(self, arg: str) -> bool:
        """argparse's test for whether an argument is an option name rather than a value."""
        if not arg.startswith("-") or arg == "-":
            return False
        if arg in self.spellings:
            return True
        matches = self._matches(arg)
        if not matches and _NEGATIVE_NUMBER.match(arg):
            return False
        return bool(matches) or " " not in arg

    def _matches(self, arg: str) -> list[tuple[VllmOption, str, str | None]]:
        """argparse's candidate (option, option string, explicit value) readings of one argument."""
        if arg in self.spellings:
            return [(self.spellings[arg], arg, None)]
        name, eq, value = arg.partition("=")
        if eq and name in self.spellings:
            return [(self.spellings[name], name, value)]
        found = []
        if arg.startswith("--"):
            if self.table.allow_abbrev:
                found = [(o, s, value if eq else None) for s, o in self.spellings.items() if s.startswith(name)]
        elif len(arg) > 1:
            short, joined = arg[:2], arg[2:]
            for s, o in self.spellings.items():
                if s == short:
                    found.append((o, s, joined))
                elif s.startswith(name):
                    found.append((o, s, value if eq else None))
        return found

    def read(self) -> ExtraArgs:
        bound: list[BoundArg] = []
        i = 0
        while i < len(self.extra):
            i = self._read_one(i, bound)
        return ExtraArgs(tuple(bound), self.table.version)

    def _read_one(self, i: int, bound: list[BoundArg]) -> int:
        arg = self.extra[i]
        if arg == "--":
            raise self.error(i, "`--` ends vLLM's options: what follows would be read as a second model", "remove it")
        if not self._looks_like_option(arg):
            raise self.error(
                i,
                f"{arg!r} is not an option: vLLM would refuse it as an unrecognized argument",
                "write it as --option value, or as a value right after its option",
            )
        name, eq, inline = ("--help", "", "") if arg.startswith("--help=") else arg.partition("=")
        dotted = "." in name
        if dotted:  # `--a.b value` / `--a.b=value`: vLLM folds it into `--a <json>`
            name = name.split(".", 1)[0]
        if name.startswith("--"):
            name = "--" + name[2:].replace("_", "-")
        if name.startswith("-O") and not dotted:
            # FlexibleArgumentParser turns `-O3`, `-O=3` and `-O 3` into the optimization level (0.10/0.11 register
            # `-O` as --compilation-config's alias instead): allowed, with its value joined or next.
            option = next(o for o in self.table.options if o.dest in {"optimization_level", "compilation_config"})
            bound.append(BoundArg(i, arg, option, "-O"))
            return self._consume_values(i, arg, option, None if arg == "-O" else arg[2:].removeprefix("="))
        matches = self._matches(name + (eq + inline if eq and not dotted else ""))
        distinct = {id(o): o for o, _, _ in matches}
        if len(distinct) > 1:
            names = ", ".join(sorted({s for _, s, _ in matches})[:6])
            raise self.error(
                i,
                f"{arg!r} is ambiguous to vLLM's parser: it could be {names}",
                "write the option's full name",
            )
        if not matches:
            raise self.error(
                i,
                f"{name!r} is not {self.release}",
                "check the name against `vllm serve --help` for that release, or remove it",
            )
        option, matched, explicit = matches[0]
        if dotted:
            explicit = inline if eq else None
        end = self._consume_values(i, arg, option, explicit)
        value = explicit if explicit is not None else self.extra[i + 1] if end == i + 2 else None
        if option.dest == "mm_encoder_tp_mode":
            self._check_encoder_tp_mode(i, arg, value)
        bound.append(BoundArg(i, arg, option, matched, value))
        return end

    def _check_encoder_tp_mode(self, i: int, arg: str, value: str | None) -> None:
        """The weights follow --mm-encoder-tp-mode (model.multimodal.encoder_tp_data reads it for sizing and for the
        in-force performance model alike), so only its full spelling is taken, with one of vLLM's two values."""
        if arg.partition("=")[0] != FULL_SPELLING_ONLY["mm_encoder_tp_mode"]:
            raise self.error(i, f"{arg!r} sets how the vision encoder is sharded", f"write it as {MM_ENCODER_TP_FLAG}")
        if value not in MM_ENCODER_TP_MODES:
            raise self.error(
                i, f"{arg!r}: vLLM accepts only {' or '.join(MM_ENCODER_TP_MODES)}", f"{MM_ENCODER_TP_FLAG} data"
            )

    def _consume_values(self, i: int, arg: str, option: VllmOption, explicit: str | None) -> int:
        arity = Arity.ONE if "." in arg.partition("=")[0] else option.arity
        if arity == Arity.NONE:
            if explicit is not None:
                raise self.error(i, f"{arg!r}: {option.flags[0]} takes no value", f"write {option.flags[0]} alone")
            return i + 1
        if explicit is not None:
            return i + 1
        values = 0
        j = i + 1
        while j < len(self.extra) and not self._looks_like_option(self.extra[j]) and self.extra[j] != "--":
            value = self.extra[j]
            if value.startswith("-") and "." in value:
                raise self.error(
                    j,
                    f"{value!r}: vLLM would read a value starting with '-' and holding '.' as a dotted option",
                    f"join it to its option: {option.flags[0]}={value}",
                )
            values += 1
            j += 1
            if arity in (Arity.ONE, Arity.OPTIONAL):
                break
        if values == 0 and arity in (Arity.ONE, Arity.SOME):
            raise self.error(i, f"{arg!r}: {option.flags[0]} expects a value", f"add one: {option.flags[0]} VALUE")
        return j


def read_extra_args(version: str, extra: Sequence[str]) -> ExtraArgs:
    """Bind each argument to the option the release's parser would bind it to; SizingError where vLLM would refuse
    the arguments or where an option is one rightsizer refuses."""
    read = _Reader(release_table(version), extra, version).read()
    for arg in read.bound:
        refused = REFUSED.get(arg.option.dest)
        if refused is None:
            continue
        why, fix = refused
        spelled = arg.written.partition("=")[0]
        canonical = next((f for f in arg.option.flags if f.startswith("--")), arg.option.flags[0])
        alias = "" if spelled in arg.option.spellings() else f" (vLLM reads it as {canonical})"
        raise SizingError(f"{FIELD}[{arg.index}]", f"{spelled}{alias} is refused: {why}", fix)
    return read
