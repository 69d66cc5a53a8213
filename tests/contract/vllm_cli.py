"""The `vllm serve` argument parser of one vLLM release, read statically from its sources.

vLLM builds the parser at import time (vllm/entrypoints/cli/serve.py `ServeSubcommand.subparser_init` ->
vllm/entrypoints/openai/cli_args.py `make_arg_parser` -> `FrontendArgs.add_cli_args` and
vllm/engine/arg_utils.py `AsyncEngineArgs.add_cli_args` -> `EngineArgs.add_cli_args`), and importing it needs torch.
So this module walks those functions with `ast` instead: starting at `subparser_init`, it follows every call that is
handed the parser (or a kwargs dict made by `get_kwargs`), and records each `add_argument`. The argparse kwargs vLLM
derives from config-dataclass fields (`**cache_kwargs["cache_dtype"]`) are recomputed from the field's annotation the
way arg_utils.py `_compute_kwargs` does: nested dataclass -> JSON, bool -> BooleanOptionalAction (so `--no-x` too),
Literal -> choices (a metavar when `str` is also allowed), list/tuple/set -> nargs, int/float -> typed, `| None` ->
"None" accepted. The result is a plain list of `CliOption`s, cached as JSON; `ServeParser` rebuilds a real argparse
parser from it, so that flag matching, `--no-` forms and prefix abbreviation behave exactly as argparse does in vLLM.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tests.contract.static_python import ClassField, SourceTree, Symbol, TypeAtom, terminal_name

SERVE_MODULE = "vllm.entrypoints.cli.serve"
ARG_UTILS_MODULE = "vllm.engine.arg_utils"
BOUND_KEYWORDS = ("gt", "ge", "lt", "le")


@dataclass(frozen=True)
class CliOption:
    """One `add_argument` of the serve parser, reduced to what decides whether an argument is accepted."""

    flags: tuple[str, ...]  # option strings as registered ("--quantization", "-q"); empty for a positional
    dest: str
    action: str  # store | store_true | store_false | boolean_optional | append | count | custom
    nargs: str | int | None
    value_type: str  # str | int | float | json | human_int | human_int_or_auto | any
    none_allowed: bool  # vLLM's optional_type: "" and "None" parse to None
    choices: tuple[str, ...] | None  # enforced by argparse
    declared_values: tuple[str, ...] | None  # the values the field's Literal lists
    open_values: bool  # the annotation also takes any `str` (`Literal | str`): values outside the Literal may be valid
    bounds: tuple[tuple[str, float], ...]  # pydantic Field(gt/ge/lt/le) on the config field, checked after parsing
    source: str  # file:line of the add_argument call

    @property
    def takes_value(self) -> bool:
        return self.action in {"store", "append", "custom"}

    def spellings(self) -> tuple[str, ...]:
        """Every exact option string argparse registers: BooleanOptionalAction adds `--no-<name>` for long flags."""
        if self.action != "boolean_optional":
            return self.flags
        return self.flags + tuple(f"--no-{f[2:]}" for f in self.flags if f.startswith("--"))


@dataclass(frozen=True)
class ServeParserModel:
    options: tuple[CliOption, ...]
    allow_abbrev: bool  # argparse accepts unambiguous prefixes of long options unless the parser disables it
    model_option_to_positional: bool  # `serve --model M ...` is rewritten to `serve M ...` before parsing (0.12+)

    def to_json(self) -> dict[str, Any]:
        return {
            "options": [asdict(o) for o in self.options],
            "allow_abbrev": self.allow_abbrev,
            "model_option_to_positional": self.model_option_to_positional,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServeParserModel:
        options = []
        for stored in data["options"]:
            raw = dict(stored)
            raw["flags"] = tuple(raw["flags"])
            raw["bounds"] = tuple((op, value) for op, value in raw["bounds"])
            for key in ("choices", "declared_values"):
                raw[key] = tuple(raw[key]) if raw[key] is not None else None
            options.append(CliOption(**raw))
        return cls(tuple(options), data["allow_abbrev"], data["model_option_to_positional"])

    def flags(self) -> frozenset[str]:
        return frozenset(s for o in self.options for s in o.spellings())

    def option(self, flag: str) -> CliOption:
        for candidate in self.options:
            if flag in candidate.spellings():
                return candidate
        raise KeyError(flag)


# --- extraction ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _KwargsRef:
    """A dict made by `get_kwargs(ConfigClass)` (field None) or one field's entry of it."""

    cls: Symbol
    field: str | None = None


@dataclass
class _Registration:
    flags: list[str]
    positional: str | None
    refs: list[_KwargsRef]
    keywords: dict[str, ast.expr]
    source: str


@dataclass
class _Frame:
    module: str
    func: ast.FunctionDef
    cls: Symbol | None  # what `cls`/`self` is bound to
    defining: Symbol | None  # the class the function is written in (for super())
    parsers: set[str] = field(default_factory=set)
    kwargs: dict[str, _KwargsRef] = field(default_factory=dict)


@dataclass
class _Walker:
    tree: SourceTree
    registrations: list[_Registration] = field(default_factory=list)
    mutations: dict[tuple[str, str, str], list[tuple[str, str, ast.expr | None]]] = field(default_factory=dict)
    visited: set[tuple[int, str]] = field(default_factory=set)

    def walk(self, frame: _Frame) -> None:
        key = (id(frame.func), frame.cls.name if frame.cls else "")
        if key in self.visited:
            return
        self.visited.add(key)
        parents = {child: parent for parent in ast.walk(frame.func) for child in ast.iter_child_nodes(parent)}
        nodes = sorted(
            (n for n in ast.walk(frame.func) if isinstance(n, ast.stmt | ast.expr) and n is not frame.func),
            key=lambda n: (n.lineno, n.col_offset),
        )
        for node in nodes:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                self._bind(frame, node.targets[0], node.value)
                self._mutate(frame, node.targets[0], "set", node.value)
            elif isinstance(node, ast.AugAssign):
                self._mutate(frame, node.target, "extend", node.value)
            elif isinstance(node, ast.Delete):
                for target in node.targets:
                    self._mutate(frame, target, "del", None)
            elif isinstance(node, ast.Call):
                if isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument":
                    self._register(frame, node, parents)
                elif self._passes_tracked(frame, node):
                    self._follow(frame, node)

    def _bind(self, frame: _Frame, target: ast.expr, value: ast.expr) -> None:
        if not isinstance(target, ast.Name):
            return
        ref = self._kwargs_of(frame, value)
        if ref is not None:
            frame.kwargs[target.id] = ref
        elif any(isinstance(n, ast.Name) and n.id in frame.parsers for n in ast.walk(value)):
            frame.parsers.add(target.id)

    def _kwargs_of(self, frame: _Frame, value: ast.expr) -> _KwargsRef | None:
        if isinstance(value, ast.Name):
            return frame.kwargs.get(value.id)
        if isinstance(value, ast.Call) and terminal_name(value.func) == "get_kwargs" and value.args:
            cls = self._class_of(frame, value.args[0])
            return _KwargsRef(cls) if cls is not None else None
        if isinstance(value, ast.Call):  # x = cls._customize_cli_kwargs(x): the same dict, mutated
            for arg in value.args:
                if isinstance(arg, ast.Name) and arg.id in frame.kwargs:
                    return frame.kwargs[arg.id]
        if isinstance(value, ast.Subscript) and isinstance(value.slice, ast.Constant):
            owner = self._kwargs_of(frame, value.value)
            if owner is not None and owner.field is None:
                return _KwargsRef(owner.cls, str(value.slice.value))
        return None

    def _class_of(self, frame: _Frame, expr: ast.expr) -> Symbol | None:
        if isinstance(expr, ast.Name) and expr.id in {"cls", "self"}:
            return frame.cls
        symbol = self.tree.resolve_expr(frame.module, expr)
        return symbol if symbol is not None and isinstance(symbol.node, ast.ClassDef) else None

    def _mutate(self, frame: _Frame, target: ast.expr, op: str, value: ast.expr | None) -> None:
        """`kw["field"]["type"] = ...`, `field_kw["flags"] = [...]`, `del kw["f"]["nargs"]`: remembered per field."""
        if not (isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant)):
            return
        ref = self._kwargs_of(frame, target.value)
        if ref is None or ref.field is None:
            return
        key = (ref.cls.module, ref.cls.name, ref.field)
        self.mutations.setdefault(key, []).append((str(target.slice.value), op, value))

    def _passes_tracked(self, frame: _Frame, call: ast.Call) -> bool:
        args = [*call.args, *(k.value for k in call.keywords)]
        return any(isinstance(a, ast.Name) and (a.id in frame.parsers or a.id in frame.kwargs) for a in args)

    def _follow(self, frame: _Frame, call: ast.Call) -> None:
        target = self._callee(frame, call.func)
        if target is None:
            return  # e.g. current_platform.pre_register_and_update(parser): only out-of-tree platforms add flags
        module, func, bound, defining = target
        params = [a.arg for a in (*func.args.posonlyargs, *func.args.args)]
        decorators = {terminal_name(d) for d in func.decorator_list}
        if "staticmethod" not in decorators and params and params[0] in {"self", "cls"}:
            params = params[1:]
        callee = _Frame(module, func, bound, defining)
        passed = list(zip(params, call.args, strict=False)) + [(k.arg or "", k.value) for k in call.keywords]
        for param, arg in passed:
            if isinstance(arg, ast.Name) and arg.id in frame.parsers:
                callee.parsers.add(param)
            if isinstance(arg, ast.Name) and arg.id in frame.kwargs:
                callee.kwargs[param] = frame.kwargs[arg.id]
        self.walk(callee)

    def _callee(
        self, frame: _Frame, func: ast.expr
    ) -> tuple[str, ast.FunctionDef, Symbol | None, Symbol | None] | None:
        if isinstance(func, ast.Name):
            symbol = self.tree.resolve(frame.module, func.id)
            if symbol is not None and isinstance(symbol.node, ast.FunctionDef):
                return symbol.module, symbol.node, None, None
            return None
        if not isinstance(func, ast.Attribute):
            return None
        owner, after = None, None
        if isinstance(func.value, ast.Call) and terminal_name(func.value.func) == "super":
            owner, after = frame.cls, frame.defining
        else:
            owner = self._class_of(frame, func.value)
        if owner is not None:
            found = self.tree.method(owner, func.attr, after)
            if found is not None:
                defining, method = found
                return defining.module, method, owner, defining
            return None
        symbol = self.tree.resolve_expr(frame.module, func)
        if symbol is not None and isinstance(symbol.node, ast.FunctionDef):
            return symbol.module, symbol.node, None, None
        return None

    def _register(self, frame: _Frame, call: ast.Call, parents: dict[ast.AST, ast.AST]) -> None:
        source = f"{frame.module.replace('.', '/')}.py:{call.lineno}"
        keywords = {k.arg: k.value for k in call.keywords if k.arg is not None}
        if any(isinstance(a, ast.JoinedStr) for a in call.args):
            # for key, value in get_kwargs(cls).items(): add_argument(f"--{key.replace('_', '-')}", **value)
            loop = _enclosing_items_loop(call, parents)
            owner = self._kwargs_of(frame, loop) if loop is not None else None
            if owner is None or owner.field is not None:
                raise ExtractionError(f"{source}: add_argument with a computed flag this reader cannot follow")
            for name in self.tree.fields(owner.cls):
                flag = "--" + name.replace("_", "-")
                self.registrations.append(_Registration([flag], None, [_KwargsRef(owner.cls, name)], keywords, source))
            return
        refs = [r for k in call.keywords if k.arg is None for r in self._unpacked(frame, k.value, keywords)]
        if any(isinstance(a, ast.Name) for a in call.args):  # for arg, type in [("--x", str), ...]: add_argument(arg)
            for unrolled in _unrolled(call, parents, source):
                self._register(frame, unrolled, parents)
            return
        literals = [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if len(literals) != len(call.args):
            raise ExtractionError(f"{source}: add_argument with a non-literal flag this reader cannot follow")
        flags = [s for s in literals if s.startswith("-")]
        positional = next((s for s in literals if not s.startswith("-")), None)
        self.registrations.append(_Registration(flags, positional, refs, keywords, source))

    def _unpacked(self, frame: _Frame, value: ast.expr, keywords: dict[str, ast.expr]) -> Iterator[_KwargsRef]:
        """`**kw["field"]`, `**field_kw`, `**{**kw["field"], "default": None}`."""
        if isinstance(value, ast.Dict):
            for key, item in zip(value.keys, value.values, strict=True):
                if key is None:
                    yield from self._unpacked(frame, item, keywords)
                elif isinstance(key, ast.Constant):
                    keywords[str(key.value)] = item
            return
        ref = self._kwargs_of(frame, value)
        if ref is None or ref.field is None:
            raise ExtractionError(f"{frame.module}: cannot tell which config field `**{ast.unparse(value)}` is")
        yield ref


class ExtractionError(Exception):
    """The release's sources use a construct this reader does not model: better to fail than to guess."""


def _unrolled(call: ast.Call, parents: dict[ast.AST, ast.AST], source: str) -> Iterator[ast.Call]:
    """The call once per element of the literal list its enclosing `for` loops over, loop names substituted."""
    loop: ast.AST = call
    while loop in parents and not isinstance(loop, ast.For):
        loop = parents[loop]
    if not (isinstance(loop, ast.For) and isinstance(loop.iter, ast.List | ast.Tuple)):
        raise ExtractionError(f"{source}: add_argument with a flag from a variable this reader cannot follow")
    targets = loop.target.elts if isinstance(loop.target, ast.Tuple) else [loop.target]
    if not all(isinstance(t, ast.Name) for t in targets):
        raise ExtractionError(f"{source}: add_argument in a loop over something other than plain names")
    names = [t.id for t in targets if isinstance(t, ast.Name)]
    for element in loop.iter.elts:
        values = element.elts if isinstance(element, ast.Tuple) else [element]
        binding = dict(zip(names, values, strict=True))
        unrolled = _Substitute(binding).visit(ast.parse(ast.unparse(call), mode="eval").body)
        yield ast.copy_location(unrolled, call)


class _Substitute(ast.NodeTransformer):
    def __init__(self, binding: dict[str, ast.expr]) -> None:
        self.binding = binding

    def visit_Name(self, node: ast.Name) -> ast.expr:
        return self.binding.get(node.id, node)


def _enclosing_items_loop(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> ast.expr | None:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.For) and isinstance(node.iter, ast.Call):
            method = node.iter.func
            if isinstance(method, ast.Attribute) and method.attr == "items":
                return method.value
    return None


# --- what a registration means -------------------------------------------------------------------------------------


@dataclass
class _Kwargs:
    action: str = "store"
    nargs: str | int | None = None
    value_type: str = "str"
    none_allowed: bool = False
    choices: list[str] | None = None
    declared_values: list[str] | None = None
    open_values: bool = False
    bounds: list[tuple[str, float]] = field(default_factory=list)
    extra_flags: list[str] = field(default_factory=list)
    dest: str | None = None


def special_int_types(tree: SourceTree) -> dict[str, str]:
    """Fields `_compute_kwargs` gives a custom int parser (`if name == "max_model_len": type = ...`)."""
    symbol = tree.resolve(ARG_UTILS_MODULE, "_compute_kwargs")
    if symbol is None or not isinstance(symbol.node, ast.FunctionDef):
        return {}
    special: dict[str, str] = {}
    for node in ast.walk(symbol.node):
        if not (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)):
            continue
        test = node.test
        if not (isinstance(test.left, ast.Name) and test.left.id == "name"):
            continue
        names = [c.value for c in ast.walk(test.comparators[0]) if isinstance(c, ast.Constant)]
        for stmt in node.body:
            if (
                isinstance(stmt, ast.Assign)
                and isinstance(stmt.targets[0], ast.Subscript)
                and isinstance(stmt.targets[0].slice, ast.Constant)
                and stmt.targets[0].slice.value == "type"
            ):
                special.update({str(n): terminal_name(stmt.value) for n in names})
    return special


VALUE_TYPE_OF_PARSER = {"human_readable_int": "human_int", "human_readable_int_or_auto": "human_int_or_auto"}


def field_kwargs(tree: SourceTree, cls: Symbol, name: str, special: dict[str, str]) -> _Kwargs:
    """What `_compute_kwargs` produces for one config field (vllm/engine/arg_utils.py), in its order of precedence."""
    fields = tree.fields(cls)
    if name not in fields:
        raise ExtractionError(f"{cls.module}.{cls.name} has no field {name!r}")
    spec = fields[name]
    atoms = tree.type_atoms(spec.module, spec.annotation)
    # Run time sees a TYPE_CHECKING-only alias as its fallback (vLLM: `QuantizationMethods = Any`).
    runtime = [TypeAtom("external", "Any") if a.typing_only else a for a in atoms]
    literal_values = [str(v) for a in atoms if a.kind == "literal" for v in a.values]
    out = _Kwargs(bounds=_bounds(spec), declared_values=sorted(literal_values) if literal_values else None)
    out.open_values = any(a.kind == "builtin" and a.name == "str" for a in atoms)

    _value_kwargs(out, runtime, name, special)
    if any(a.kind == "none" for a in runtime) and out.action != "boolean_optional":
        out.none_allowed = True
        if out.choices is not None:
            out.choices.append("None")
    return out


def _value_kwargs(out: _Kwargs, runtime: list[TypeAtom], name: str, special: dict[str, str]) -> None:
    """The if/elif chain of `_compute_kwargs`, in vLLM's order: the first matching kind of type wins."""
    kinds = {(a.kind, a.name) for a in runtime}

    def has(builtin: str) -> bool:
        return ("builtin", builtin) in kinds

    runtime_literal = [v for a in runtime if a.kind == "literal" for v in a.values]
    if any(a.kind == "class" and a.dataclass for a in runtime):
        out.value_type = "any"  # pydantic TypeAdapter(cls).validate_json: any JSON object the config accepts
    elif has("bool"):
        out.action = "boolean_optional"
    elif runtime_literal:
        if not has("str"):
            out.choices = sorted(str(v) for v in runtime_literal)
        out.value_type = "int" if isinstance(runtime_literal[0], int) else "str"
    elif has("tuple") or has("list") or has("set"):
        _collection(out, runtime)
    elif has("int"):
        out.value_type = VALUE_TYPE_OF_PARSER.get(special.get(name, ""), "int" if name not in special else "any")
    elif has("float"):
        out.value_type = "float"
    elif has("dict") and (has("str") or any(a.kind not in {"builtin", "none"} for a in runtime)):
        out.value_type = "any"  # union_dict_and_str
    elif has("dict"):
        out.value_type = "json"
    elif has("str") or any(a.kind not in {"builtin", "none"} for a in runtime):
        out.value_type = "str"
    else:
        raise ExtractionError(f"{name}: unsupported type {kinds} (vLLM raises ValueError here too)")


def _collection(out: _Kwargs, runtime: list[TypeAtom]) -> None:
    atom = next(a for a in runtime if a.kind == "builtin" and a.name in {"tuple", "list", "set"})
    elements = [a for a in atom.args if a is not None]
    element = elements[0] if elements else TypeAtom("builtin", "str")
    fixed = atom.name == "tuple" and None not in atom.args
    out.nargs = len(atom.args) if fixed else "+"
    if element.kind == "literal":
        out.choices = sorted(str(v) for v in element.values)
    elif element.kind == "builtin" and element.name in {"int", "float"}:
        out.value_type = element.name
    else:
        out.value_type = "str"


def _bounds(spec: ClassField) -> list[tuple[str, float]]:
    default = spec.default
    if not (isinstance(default, ast.Call) and terminal_name(default.func) == "Field"):
        return []
    bounds = []
    for keyword in default.keywords:
        if keyword.arg in BOUND_KEYWORDS:
            try:
                bounds.append((keyword.arg, float(ast.literal_eval(keyword.value))))
            except ValueError:
                continue  # a bound written as an expression: not modelled
    return bounds


def _apply_mutations(out: _Kwargs, mutations: list[tuple[str, str, ast.expr | None]]) -> None:
    """vLLM edits some kwargs after get_kwargs; unmodelled edits only ever relax what is accepted."""
    for key, op, value in mutations:
        if key == "flags" and isinstance(value, ast.List | ast.Tuple):
            out.extra_flags += [e.value for e in value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
        elif key == "type" and value is not None:
            out.value_type, optional = _value_type_of(value)
            out.none_allowed = out.none_allowed or optional
        elif key == "action" and value is not None:
            out.action = _action_of(value)
        elif key == "choices" and op != "set":
            out.choices = None  # extended with values computed at run time: do not enforce
        elif key == "nargs" and op == "del":
            out.nargs = None


def _apply_keywords(out: _Kwargs, keywords: dict[str, ast.expr]) -> None:
    for key, value in keywords.items():
        if key == "action":
            out.action = _action_of(value)
        elif key == "type":
            out.value_type, optional = _value_type_of(value)
            out.none_allowed = out.none_allowed or optional
        elif key == "choices":  # a literal list, or one computed at run time (plugins): then not enforced here
            elements = value.elts if isinstance(value, ast.List | ast.Tuple) else None
            literal = elements is not None and all(isinstance(e, ast.Constant) for e in elements)
            out.choices = [str(ast.literal_eval(e)) for e in elements] if elements is not None and literal else None
        elif key == "nargs":
            out.nargs = ast.literal_eval(value)
        elif key == "dest" and isinstance(value, ast.Constant):
            out.dest = str(value.value)


def _action_of(value: ast.expr) -> str:
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        return value.value.replace("-", "_")
    if terminal_name(value) == "BooleanOptionalAction":
        return "boolean_optional"
    return "custom"


def _value_type_of(value: ast.expr) -> tuple[str, bool]:
    name = terminal_name(value)
    if isinstance(value, ast.Call) and name == "optional_type" and value.args:
        inner, _ = _value_type_of(value.args[0])
        return inner, True
    if isinstance(value, ast.Attribute) and name == "loads":
        return "json", False
    if isinstance(value, ast.Name) and name in {"int", "float", "str"}:
        return name, False
    return VALUE_TYPE_OF_PARSER.get(name, "any"), False


def _flexible_parser(tree: SourceTree) -> Symbol:
    """vLLM's ArgumentParser subclass (vllm/utils/argparse_utils.py; vllm/utils/__init__.py before 0.12)."""
    symbol = tree.resolve(ARG_UTILS_MODULE, "FlexibleArgumentParser")
    if symbol is None or not isinstance(symbol.node, ast.ClassDef):
        raise ExtractionError("FlexibleArgumentParser not found from vllm/engine/arg_utils.py")
    return symbol


def _allow_abbrev(tree: SourceTree, parser_class: Symbol) -> bool:
    """argparse's default is True; vLLM would have to pass allow_abbrev=False to a parser on the serve path."""
    for module in (SERVE_MODULE, "vllm.entrypoints.cli.main", parser_class.module):
        source = tree.module(module)
        for node in ast.walk(source) if source is not None else ():
            if isinstance(node, ast.keyword) and node.arg == "allow_abbrev" and ast.unparse(node.value) == "False":
                return False
    return True


def _moves_model_option(tree: SourceTree, parser_class: Symbol) -> bool:
    """Whether FlexibleArgumentParser.parse_args looks for `--model` (regex `^--model(=.+|$)`) to make it the
    positional model_tag of `vllm serve`."""
    found = tree.method(parser_class, "parse_args")
    if found is None:
        return False
    _, parse_args = found
    return any(
        isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.startswith("^--model(")
        for n in ast.walk(parse_args)
    )


def extract_serve_parser(tree: SourceTree) -> ServeParserModel:
    command = tree.resolve(SERVE_MODULE, "ServeSubcommand")
    if command is None or not isinstance(command.node, ast.ClassDef):
        raise ExtractionError(f"{SERVE_MODULE}.ServeSubcommand not found")
    found = tree.method(command, "subparser_init")
    if found is None:
        raise ExtractionError("ServeSubcommand.subparser_init not found")
    _, init = found
    walker = _Walker(tree)
    entry = _Frame(SERVE_MODULE, init, command, command)
    entry.parsers.update(a.arg for a in init.args.args if a.arg not in {"self", "cls"})
    walker.walk(entry)
    special = special_int_types(tree)
    options = [_option(tree, walker, r, special) for r in walker.registrations]
    options.append(
        CliOption(("-h", "--help"), "help", "store_true", None, "str", False, None, None, False, (), "argparse")
    )
    parser_class = _flexible_parser(tree)
    return ServeParserModel(tuple(options), _allow_abbrev(tree, parser_class), _moves_model_option(tree, parser_class))


def _option(tree: SourceTree, walker: _Walker, reg: _Registration, special: dict[str, str]) -> CliOption:
    out = _Kwargs()
    for ref in reg.refs:
        assert ref.field is not None
        out = field_kwargs(tree, ref.cls, ref.field, special)
        _apply_mutations(out, walker.mutations.get((ref.cls.module, ref.cls.name, ref.field), []))
    _apply_keywords(out, reg.keywords)
    flags = tuple(out.extra_flags + reg.flags)
    long_flag = next((f for f in flags if f.startswith("--")), flags[0] if flags else "")
    dest = out.dest or reg.positional or long_flag.lstrip("-").replace("-", "_")
    return CliOption(
        flags=flags,
        dest=dest,
        action=out.action,
        nargs=out.nargs,
        value_type=out.value_type,
        none_allowed=out.none_allowed,
        choices=tuple(out.choices) if out.choices is not None else None,
        declared_values=tuple(out.declared_values) if out.declared_values is not None else None,
        open_values=out.open_values,
        bounds=tuple(out.bounds),
        source=reg.source,
    )


# --- checking arguments against the model ---------------------------------------------------------------------------


class RejectedError(Exception):
    """What argparse would print before exiting with status 2."""


class _ReportingParser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse calls this instead of raising; vLLM would exit(2)
        raise RejectedError(message)


_HUMAN_INT = re.compile(r"(\d+(?:\.\d+)?)([kKmMgGtT])")
_DECIMAL_SUFFIX = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_BINARY_SUFFIX = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def _human_int(value: str) -> int:
    """arg_utils.py `human_readable_int`: "25.6k" = 25600, "1K" = 1024 (no decimals with binary suffixes)."""
    match = _HUMAN_INT.fullmatch(value.strip())
    if match is None:
        return int(value)
    number, suffix = match.groups()
    if suffix in _DECIMAL_SUFFIX:
        return int(float(number) * _DECIMAL_SUFFIX[suffix])
    return int(number) * _BINARY_SUFFIX[suffix]


def _human_int_or_auto(value: str) -> int:
    """arg_utils.py `human_readable_int_or_auto`: also "-1" and "auto" (any case) for auto-detection."""
    value = value.strip()
    return -1 if value == "-1" or value.lower() == "auto" else _human_int(value)


CONVERTERS: dict[str, Any] = {
    "str": str,
    "any": str,
    "int": int,
    "float": float,
    "json": json.loads,
    "human_int": _human_int,
    "human_int_or_auto": _human_int_or_auto,
}


def _converter(option: CliOption) -> Any:
    convert = CONVERTERS[option.value_type]
    if not option.none_allowed:
        return convert

    def optional(value: str) -> Any:
        return None if value in {"", "None"} else convert(value)

    return optional


@dataclass
class ServeParser:
    """A real argparse parser with vLLM's option strings, actions, types and choices, plus the checks vLLM's config
    classes make after parsing (declared Literal values, pydantic bounds)."""

    model: ServeParserModel

    def __post_init__(self) -> None:
        self._parser = _ReportingParser(prog="vllm serve", add_help=False, allow_abbrev=self.model.allow_abbrev)
        self._by_dest: dict[str, CliOption] = {}
        for index, option in enumerate(self.model.options):
            dest = f"o{index}"
            self._by_dest[dest] = option
            self._parser.add_argument(*(option.flags or (dest,)), **self._argparse_kwargs(option, dest))

    @staticmethod
    def _argparse_kwargs(option: CliOption, dest: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {} if not option.flags else {"dest": dest}
        if option.action == "boolean_optional":
            return kwargs | {"action": argparse.BooleanOptionalAction}
        if option.action in {"store_true", "store_false", "count"}:
            return kwargs | {"action": option.action}
        kwargs["type"] = _converter(option)
        if option.action == "append":
            kwargs["action"] = "append"
        if option.nargs is not None:
            kwargs["nargs"] = option.nargs
        if option.choices is not None:  # as vLLM passes them, "None" included: argparse compares converted values
            base = CONVERTERS[option.value_type]
            kwargs["choices"] = [c if c == "None" else base(c) for c in option.choices]
        return kwargs

    def normalise(self, argv: Sequence[str]) -> list[str]:
        """FlexibleArgumentParser.parse_args rewrites `vllm serve` arguments before argparse sees them
        (vllm/utils/argparse_utils.py): `--model M` becomes the leading positional (0.12+), `_` -> `-` in a long
        option's name, `-O3` -> `--optimization-level 3`, and `--a.b value` is folded into `--a <json>`."""
        argv = list(argv)
        if self.model.model_option_to_positional:
            at = next((i for i, a in enumerate(argv) if re.match(r"^--model(=.+|$)", a)), None)
            if at is not None and argv[at] == "--model" and at + 1 < len(argv):
                argv = [argv[at + 1], *argv[:at], *argv[at + 2 :]]
            elif at is not None and argv[at] != "--model":
                argv = [argv[at].removeprefix("--model="), *argv[:at], *argv[at + 1 :]]
        out: list[str] = []
        skip = False
        for i, arg in enumerate(argv):
            if skip:
                skip = False
                continue
            if arg.startswith("--"):
                key, eq, value = arg.partition("=")
                name, dot, _ = key.partition(".")
                name = name.replace("_", "-")
                if dot:  # dotted JSON sub-key: the value is merged into a JSON object for `name`
                    skip = not eq and i + 1 < len(argv)
                    out += [name, "{}"]
                    continue
                out.append(f"{name}{eq}{value}")
            elif arg.startswith("-O") and arg != "-O":
                out += ["--optimization-level", arg[3:] if arg[2:3] == "=" else arg[2:]]
            else:
                out.append(arg)
        return out

    def problems(self, argv: Sequence[str]) -> list[str]:
        """Why vLLM would refuse these arguments (empty when it accepts them)."""
        try:
            parsed = self._parser.parse_args(self.normalise(argv))
        except RejectedError as rejected:
            return [str(rejected)]
        found = []
        for dest, value in vars(parsed).items():
            option = self._by_dest[dest]
            if value is None or isinstance(value, bool) or option.takes_value is False:
                continue
            found += _config_problems(option, value)
        return found

    def resolve(self, flag: str) -> CliOption | None:
        """The option argparse binds `flag` to: an exact option string (`--no-` forms included), or, when
        abbreviations are allowed, the one long option it is a prefix of. None when unknown or ambiguous."""
        name = flag.partition("=")[0]
        name = name[:2] + name[2:].partition(".")[0].replace("_", "-") if name.startswith("--") else name
        exact = {s: o for o in self.model.options for s in o.spellings()}
        if name in exact:
            return exact[name]
        if not (self.model.allow_abbrev and name.startswith("--")):
            return None
        matches = {id(o): o for s, o in exact.items() if s.startswith("--") and s.startswith(name)}
        return next(iter(matches.values())) if len(matches) == 1 else None


def _config_problems(option: CliOption, value: Any) -> list[str]:
    name = option.flags[0] if option.flags else option.dest
    values = value if isinstance(value, list) else [value]
    found = []
    for item in values:
        closed = option.declared_values is not None and not option.open_values
        if closed and isinstance(item, str) and item not in (option.declared_values or ()):
            found.append(f"{name}: {item!r} is not one of the values the config declares {option.declared_values}")
        if isinstance(item, int | float):
            for op, bound in option.bounds:
                ok = {"gt": item > bound, "ge": item >= bound, "lt": item < bound, "le": item <= bound}[op]
                if not ok:
                    found.append(f"{name}: {item} violates {op} {bound:g}")
    return found
