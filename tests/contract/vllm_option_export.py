"""A release's serve parser (tests/contract/vllm_cli.py) reduced to the option table the operator ships
(rightsizer/facts/vllm_options.py): every option's spellings and how many values it takes. Shared by the generator
(hack/vllm_options.py) and the contract test that keeps the shipped table equal to the wheel's parser."""

from __future__ import annotations

from rightsizer.facts.vllm_option_table import Arity, ReleaseOptions, VllmOption
from tests.contract.vllm_cli import CliOption, ServeParserModel

_ARITY_OF_NARGS: dict[str | int | None, Arity] = {None: Arity.ONE, "?": Arity.OPTIONAL, "+": Arity.SOME, "*": Arity.ANY}


def _arity(option: CliOption) -> Arity:
    if not option.takes_value:
        return Arity.NONE
    if option.nargs not in _ARITY_OF_NARGS:
        raise ValueError(f"{option.flags}: nargs {option.nargs!r} has no Arity; extend facts/vllm_option_table.py")
    return _ARITY_OF_NARGS[option.nargs]


def release_options(version: str, parser: ServeParserModel) -> ReleaseOptions:
    options = tuple(
        VllmOption(o.dest, o.flags, _arity(o), negatable=o.action == "boolean_optional")
        for o in parser.options
        if o.flags  # the positional model tag: rightsizer passes the model itself
    )
    return ReleaseOptions(version, options, parser.allow_abbrev)
