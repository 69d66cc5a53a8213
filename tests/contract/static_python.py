"""Static lookups in a tree of Python sources (a wheel read as a zip): modules, top-level names, classes, their
dataclass fields, and what a type annotation means. Nothing is imported or executed, so a package whose imports
need torch or a GPU can still be read.

Names are resolved the way a type checker would: through `from x import y` (absolute and relative), module-level
aliases (`CacheDType = Literal[...]`), string annotations and class bases. A name bound differently under
`if TYPE_CHECKING:` and at run time (vLLM's `QuantizationMethods`: a Literal for the checker, `Any` at run time)
resolves to the checker's definition, marked `typing_only`, so that callers can tell what argparse sees at run time
from what the type declares.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

BUILTIN_TYPES = frozenset({"int", "float", "str", "bool", "bytes", "dict", "list", "tuple", "set", "frozenset"})
LITERAL = frozenset({"Literal"})
UNION = frozenset({"Union", "Optional"})
UNWRAP = frozenset({"Annotated", "SkipValidation", "Required", "NotRequired", "Final", "TypeAlias"})
BUILTIN_GENERICS = {"List": "list", "Dict": "dict", "Tuple": "tuple", "Set": "set", "FrozenSet": "frozenset"}
DATACLASS_DECORATORS = frozenset({"dataclass", "config"})  # vllm.config.utils.config makes a pydantic dataclass


@dataclass(frozen=True)
class Symbol:
    """A top-level definition: where it lives and the node that defines it (ClassDef, FunctionDef or an expression)."""

    module: str
    name: str
    node: ast.AST
    typing_only: bool = False


@dataclass(frozen=True)
class TypeAtom:
    """One member of a type annotation after unions, Optional and Annotated are flattened.

    kind: "builtin" (name is int, str, list, ...; args are its subscript), "none", "literal" (values), "class"
    (a class defined in the tree; dataclass tells whether it is one), or "external" (anything not in the tree,
    e.g. torch.dtype or typing.Any).
    """

    kind: str
    name: str = ""
    values: tuple[object, ...] = ()
    args: tuple[TypeAtom | None, ...] = ()
    dataclass: bool = False
    typing_only: bool = False


@dataclass(frozen=True)
class ClassField:
    name: str
    annotation: ast.expr
    default: ast.expr | None
    module: str  # where the annotation is written, for resolving its names


@dataclass
class SourceTree:
    """Python modules by dotted name, parsed on demand from `read(path) -> text | None`."""

    read: Callable[[str], str | None]
    _modules: dict[str, ast.Module | None] = field(default_factory=dict)

    def module(self, dotted: str) -> ast.Module | None:
        if dotted not in self._modules:
            base = dotted.replace(".", "/")
            text = self.read(f"{base}.py")
            if text is None:
                text = self.read(f"{base}/__init__.py")
            self._modules[dotted] = ast.parse(text) if text is not None else None
        return self._modules[dotted]

    def is_package(self, dotted: str) -> bool:
        return self.read(dotted.replace(".", "/") + "/__init__.py") is not None

    # --- names -----------------------------------------------------------------------------------------------

    def resolve(self, module: str, name: str, _seen: frozenset[tuple[str, str]] = frozenset()) -> Symbol | None:
        """The definition `name` refers to at the top level of `module`, following imports."""
        if (module, name) in _seen:
            return None
        seen = _seen | {(module, name)}
        tree = self.module(module)
        if tree is None:
            return None
        found: Symbol | None = None
        for stmt, typing_block in _top_level(tree.body):
            symbol = self._binding(module, stmt, name, seen)
            if symbol is None:
                continue
            if typing_block:
                return Symbol(symbol.module, symbol.name, symbol.node, typing_only=True)
            found = symbol
        return found

    def _binding(self, module: str, stmt: ast.stmt, name: str, seen: frozenset[tuple[str, str]]) -> Symbol | None:
        if isinstance(stmt, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and stmt.name == name:
            return Symbol(module, name, stmt)
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets):
            return Symbol(module, name, stmt.value)
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id == name:
            return Symbol(module, name, stmt.value) if stmt.value is not None else None
        if isinstance(stmt, ast.ImportFrom):
            for alias in stmt.names:
                if (alias.asname or alias.name) != name:
                    continue
                source = self._absolute(module, stmt)
                target = self.resolve(source, alias.name, seen)
                if target is None and self.module(f"{source}.{alias.name}") is not None:
                    return Symbol(f"{source}.{alias.name}", "", ast.Module(body=[], type_ignores=[]))
                if target is None:
                    return Symbol(source, alias.name, ast.Name(id=f"{source}.{alias.name}"))  # outside the tree
                return target
        return None

    def _absolute(self, module: str, stmt: ast.ImportFrom) -> str:
        if not stmt.level:
            return stmt.module or ""
        package = module if self.is_package(module) else module.rpartition(".")[0]
        for _ in range(stmt.level - 1):
            package = package.rpartition(".")[0]
        return f"{package}.{stmt.module}" if stmt.module else package

    def resolve_expr(self, module: str, expr: ast.expr) -> Symbol | None:
        """A Name or dotted Attribute (`me_quant.QuantizationMethods`) to its definition."""
        if isinstance(expr, ast.Name):
            return self.resolve(module, expr.id)
        if isinstance(expr, ast.Attribute):
            owner = self.resolve_expr(module, expr.value)
            if owner is not None and isinstance(owner.node, ast.Module) and owner.name == "":
                return self.resolve(owner.module, expr.attr)
        return None

    # --- classes ---------------------------------------------------------------------------------------------

    def mro(self, cls: Symbol) -> list[Symbol]:
        """The class and its in-tree bases, most derived first (depth-first; enough for single inheritance)."""
        order = [cls]
        assert isinstance(cls.node, ast.ClassDef)
        for base in cls.node.bases:
            resolved = self.resolve_expr(cls.module, base)
            if resolved is not None and isinstance(resolved.node, ast.ClassDef):
                order += [b for b in self.mro(resolved) if b not in order]
        return order

    def fields(self, cls: Symbol) -> dict[str, ClassField]:
        """Annotated class attributes, bases first so that subclasses override: the dataclass fields."""
        result: dict[str, ClassField] = {}
        for klass in reversed(self.mro(cls)):
            assert isinstance(klass.node, ast.ClassDef)
            for stmt in klass.node.body:
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    if _is_classvar(stmt.annotation):
                        continue
                    result[stmt.target.id] = ClassField(stmt.target.id, stmt.annotation, stmt.value, klass.module)
        return result

    def method(self, cls: Symbol, name: str, after: Symbol | None = None) -> tuple[Symbol, ast.FunctionDef] | None:
        """`name` looked up along the class's MRO (starting past `after`, for super()): (defining class, def)."""
        chain = self.mro(cls)
        if after is not None and after in chain:
            chain = chain[chain.index(after) + 1 :]
        for klass in chain:
            assert isinstance(klass.node, ast.ClassDef)
            for stmt in klass.node.body:
                if isinstance(stmt, ast.FunctionDef) and stmt.name == name:
                    return klass, stmt
        return None

    def is_dataclass(self, cls: Symbol) -> bool:
        assert isinstance(cls.node, ast.ClassDef)
        return any(_terminal_name(d) in DATACLASS_DECORATORS for d in cls.node.decorator_list)

    # --- types -----------------------------------------------------------------------------------------------

    def type_atoms(self, module: str, annotation: ast.expr | None) -> list[TypeAtom]:
        """The union members of an annotation, aliases and Literal nesting resolved."""
        return list(self._atoms(module, annotation, frozenset(), typing_only=False))

    def _atoms(
        self, module: str, node: ast.expr | None, seen: frozenset[tuple[str, str]], typing_only: bool
    ) -> Iterator[TypeAtom]:
        if node is None or (isinstance(node, ast.Constant) and node.value is None):
            yield TypeAtom("none", typing_only=typing_only)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):  # a forward reference
            yield from self._atoms(module, ast.parse(node.value, mode="eval").body, seen, typing_only)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            yield from self._atoms(module, node.left, seen, typing_only)
            yield from self._atoms(module, node.right, seen, typing_only)
        elif isinstance(node, ast.Subscript):
            yield from self._subscript_atoms(module, node, seen, typing_only)
        elif isinstance(node, ast.Name | ast.Attribute):
            name = _terminal_name(node)
            if isinstance(node, ast.Name) and name in BUILTIN_TYPES:
                yield TypeAtom("builtin", name, typing_only=typing_only)
                return
            if name == "None":
                yield TypeAtom("none", typing_only=typing_only)
                return
            symbol = self.resolve_expr(module, node)
            key = (symbol.module, symbol.name) if symbol else ("", name)
            if symbol is None or key in seen:
                yield TypeAtom("external", name, typing_only=typing_only)
            elif isinstance(symbol.node, ast.ClassDef):
                yield TypeAtom("class", name, dataclass=self.is_dataclass(symbol), typing_only=typing_only)
            elif isinstance(symbol.node, ast.expr) and not isinstance(symbol.node, ast.Name | ast.Module):
                yield from self._atoms(symbol.module, symbol.node, seen | {key}, typing_only or symbol.typing_only)
            else:
                yield TypeAtom("external", name, typing_only=typing_only)
        else:
            yield TypeAtom("external", ast.unparse(node), typing_only=typing_only)

    def _subscript_atoms(
        self, module: str, node: ast.Subscript, seen: frozenset[tuple[str, str]], typing_only: bool
    ) -> Iterator[TypeAtom]:
        origin = _terminal_name(node.value)
        items = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
        if origin in LITERAL:
            values: list[object] = []
            for item in items:
                if isinstance(item, ast.Constant):
                    values.append(item.value)
                else:  # Literal[OtherLiteral, "x"]
                    values += [v for a in self._atoms(module, item, seen, typing_only) for v in a.values]
            yield TypeAtom("literal", values=tuple(values), typing_only=typing_only)
        elif origin in UNION:
            for item in items:
                yield from self._atoms(module, item, seen, typing_only)
            if origin == "Optional":
                yield TypeAtom("none", typing_only=typing_only)
        elif origin in UNWRAP:
            yield from self._atoms(module, items[0], seen, typing_only)
        elif origin in BUILTIN_TYPES or origin in BUILTIN_GENERICS:
            args: list[TypeAtom | None] = []
            for item in items:
                if isinstance(item, ast.Constant) and item.value is Ellipsis:
                    args.append(None)  # tuple[int, ...]
                else:
                    member = list(self._atoms(module, item, seen, typing_only))
                    args.append(member[0] if len(member) == 1 else TypeAtom("union", values=tuple(member)))
            yield TypeAtom("builtin", BUILTIN_GENERICS.get(origin, origin), args=tuple(args), typing_only=typing_only)
        else:
            yield TypeAtom("external", ast.unparse(node), typing_only=typing_only)

    def literal_strings(self, module: str, name: str) -> tuple[str, ...]:
        """The values of a module-level Literal alias, or of a list/tuple of string constants."""
        symbol = self.resolve(module, name)
        if symbol is None or not isinstance(symbol.node, ast.expr):
            raise LookupError(f"{module}.{name} is not defined in this release")
        if isinstance(symbol.node, ast.List | ast.Tuple | ast.Set):
            return tuple(e.value for e in symbol.node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str))
        values = [v for a in self.type_atoms(symbol.module, symbol.node) for v in a.values]
        return tuple(v for v in values if isinstance(v, str))


def _top_level(body: list[ast.stmt], typing_block: bool = False) -> Iterator[tuple[ast.stmt, bool]]:
    """Module-level statements, descending into if/try blocks; flags those only a type checker sees."""
    for stmt in body:
        if isinstance(stmt, ast.If):
            checking = _terminal_name(stmt.test) == "TYPE_CHECKING"
            yield from _top_level(stmt.body, typing_block or checking)
            if not checking:
                yield from _top_level(stmt.orelse, typing_block)
            else:
                yield from _top_level(stmt.orelse, typing_block=False)
        elif isinstance(stmt, ast.Try):
            for block in (stmt.body, *(h.body for h in stmt.handlers), stmt.orelse, stmt.finalbody):
                yield from _top_level(block, typing_block)
        else:
            yield stmt, typing_block


def _terminal_name(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        return _terminal_name(node.func)
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _is_classvar(annotation: ast.expr) -> bool:
    target = annotation.value if isinstance(annotation, ast.Subscript) else annotation
    return _terminal_name(target) in {"ClassVar", "InitVar"}


def terminal_name(node: ast.AST) -> str:
    """`a.b.c` -> "c", `f(...)` -> the callee's terminal name, `x` -> "x"."""
    return _terminal_name(node)
