"""spec.serving.engine.extraArgs read as the release's own parser reads them (sizing/extra_args.py): each bypass of
the old flag-name guard found in issues 12 and 13, every spelling argparse accepts, and what vLLM itself refuses."""

from __future__ import annotations

import pytest

from rightsizer.errors import SizingError
from rightsizer.facts.vllm_options import RELEASES
from rightsizer.sizing.extra_args import read_extra_args, release_table

PINNED = "0.19.0"


def refusal(extra: list[str], version: str = PINNED) -> SizingError:
    with pytest.raises(SizingError) as err:
        read_extra_args(version, extra)
    assert "\n" not in str(err.value)
    return err.value


@pytest.mark.parametrize(
    ("extra", "index", "fix"),
    [
        # issue 13: spellings that passed the old guard
        (["-t", "1"], 0, "spec.gpu.tensorParallelSize"),  # a prefix of -tp: argparse takes it
        (["-t=1"], 0, "spec.gpu.tensorParallelSize"),  # Python 3.12's argparse splits single-dash `=` too
        (["-qfp8"], 0, "spec.model.quantization"),  # a one-letter option with its value joined
        (["-q=fp8"], 0, "spec.model.quantization"),
        (["--enforce-eager", "--host", "127.0.0.1"], 1, "every address of the pod"),
        (["--uds", "/tmp/vllm.sock"], 0, "remove it"),
        (["-dp", "2"], 0, "spec.replicas"),
        (["--data-parallel-size-local", "2"], 0, "spec.replicas"),
        (["--speculative-config", '{"method": "ngram"}'], 0, "does not count it"),
        (["-sc", '{"method": "ngram"}'], 0, "does not count it"),
        (["--speculative-config.method", "ngram"], 0, "does not count it"),  # vLLM folds dotted keys into JSON
        (["--hf-overrides", '{"num_hidden_layers": 1}'], 0, "spec.model.config"),
        (["--hf_overrides.num_hidden_layers=1"], 0, "spec.model.config"),
        (["--enable-lora"], 0, "does not count it"),
        (["--lora-modules", "a=/a", "b=/b"], 0, "does not count it"),
        (["--max-lora-rank", "64"], 0, "does not count it"),
        (["-h"], 0, "remove it"),
        (["--help=max"], 0, "remove it"),  # vLLM's help search
        # issue 12: the sizing pins, in every spelling, point at the new spec fields
        (["--max-num-seqs", "64"], 0, "spec.serving.maxNumSeqs"),
        (["--max_num_seqs=64"], 0, "spec.serving.maxNumSeqs"),
        (["--max-num-s", "64"], 0, "spec.serving.maxNumSeqs"),  # an unambiguous prefix
        (["--max-num-batched-tokens=4096"], 0, "spec.serving.maxNumBatchedTokens"),
        (["--max-num-b", "4096"], 0, "spec.serving.maxNumBatchedTokens"),
        (["--kv-cache-mem", "1"], 0, "computes it from the memory model"),
        (["-ep"], 0, "expert parallelism"),
        (["--no-enable-expert-parallel"], 0, "expert parallelism"),
        (["--config", "/etc/vllm.yaml"], 0, "pass the flags in extraArgs"),
        (["--model=other/model"], 0, "spec.model.name"),
        (["--revision", "v2"], 0, "spec.model.revision"),
        (["--cpu-offload-gb", "10"], 0, "does not count it"),
    ],
)
def test_refused_with_the_index_and_the_fix(extra: list[str], index: int, fix: str) -> None:
    error = refusal(extra)
    assert error.field == f"spec.serving.engine.extraArgs[{index}]"
    assert fix in error.fix


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (["--made-up-flag"], "is not an option of vLLM 0.19.0"),
        (["-tp2"], "is not an option"),  # only one-letter options take a joined value
        (["--max-num", "8"], "ambiguous"),  # a prefix of three options
        (["-d", "1"], "ambiguous"),
        (["--enforce-eager=yes"], "takes no value"),
        (["--max-logprobs"], "expects a value"),
        (["--max-logprobs", "--enforce-eager"], "expects a value"),
        (["stray"], "is not an option"),
        (["--enforce-eager", "--", "x"], "ends vLLM's options"),
        (["--max-logprobs", "-0.5"], "dotted option"),
    ],
)
def test_what_vllm_would_refuse_is_refused(extra: list[str], problem: str) -> None:
    assert problem in refusal(extra).problem


@pytest.mark.parametrize(
    "extra",
    [
        ["--enforce-eager", "--no-enable-prefix-caching"],
        ["--max-logprobs", "-1"],  # a negative number is a value, not an option
        ["--api-key", "k1", "k2", "--enforce-eager"],  # nargs="+" stops at the next option
        ["-O3"],  # FlexibleArgumentParser's optimization level
        ["-O", "3"],
        ["--compilation-config.mode", "3"],
        ["--chat-template", "/templates/t.jinja", "--tool-call-parser", "hermes", "--enable-auto-tool-choice"],
        ["--trust-remote-code"],
    ],
)
def test_ordinary_flags_pass(extra: list[str]) -> None:
    read_extra_args(PINNED, extra)


@pytest.mark.parametrize(
    ("extra", "chunked"),
    [
        ([], True),
        (["--no-enable-chunked-prefill"], False),
        (["--no-enable-chunked"], False),  # the abbreviation of the --no- form
        (["--no-enable-chunked-prefill", "--enable-chunked-prefill"], True),  # the last one wins
    ],
)
def test_chunked_prefill_switch_is_read(extra: list[str], chunked: bool) -> None:
    assert read_extra_args(PINNED, extra).chunked_prefill is chunked


def test_each_release_is_read_with_its_own_table() -> None:
    assert release_table("0.10.2").version == "0.10.2"
    assert release_table("0.12.0").version == "0.11.0"  # the newest table at or before it
    assert release_table("0.30.0").version == max(RELEASES, key=lambda v: tuple(map(int, v.split("."))))
    # -ep (0.19's alias of --enable-expert-parallel) does not exist in 0.10.2: vLLM 0.10.2 would refuse it
    assert "is not an option of vLLM 0.10.2" in refusal(["-ep"], "0.10.2").problem
    later = refusal(["--made-up"], "0.12.0").problem
    assert "judged by 0.11.0's option table" in later
