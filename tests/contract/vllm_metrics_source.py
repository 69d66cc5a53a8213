"""The Prometheus metrics a vLLM release registers, read statically from its sources.

Every prometheus_client constructor whose name starts with `vllm:` is found, whether called directly (`Counter(...)`)
or through vLLM's overridable classes (`self._counter_cls(...)`, vllm/v1/metrics/loggers.py `PrometheusStatLogger`).
For each: the registered name, its kind, the file and line, and the `if` tests around the registration in its own
function. A registration under `self.show_hidden_metrics` is a deprecated metric that is only exposed with
`--show-hidden-metrics-for-version` (vllm/config/observability.py).

Exposed series follow prometheus_client (prometheus_client/metrics.py): a counter is exposed as `<name>_total`
(a registered name already ending in `_total` is not suffixed twice), a histogram as `_bucket`, `_sum` and `_count`,
a summary as `_sum` and `_count`, a gauge under its own name. The optional `_created` series is left out: vLLM's
multiprocess mode does not export it, so nothing may depend on it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from tests.contract.static_python import terminal_name

PREFIX = "vllm:"
ENGINE_LOGGERS = "vllm/v1/metrics/loggers.py"
V0_ENGINE = "vllm/engine/"  # the V0 LLMEngine's metrics (vllm/engine/metrics.py, until 0.11): not what V1 serves
KIND_OF_CONSTRUCTOR = {
    "Counter": "counter",
    "_counter_cls": "counter",
    "Gauge": "gauge",
    "_gauge_cls": "gauge",
    "Histogram": "histogram",
    "_histogram_cls": "histogram",
    "Summary": "summary",
    "Info": "info",
}
HIDDEN_MARKER = "show_hidden_metrics"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


@dataclass(frozen=True)
class Metric:
    name: str  # as registered
    kind: str  # counter | gauge | histogram | summary | info
    source: str  # file:line
    conditions: tuple[str, ...]  # the `if` tests around the registration ("not (...)" in an else branch)

    @property
    def hidden(self) -> bool:
        return any(HIDDEN_MARKER in c for c in self.conditions)

    @property
    def always_registered(self) -> bool:
        return not self.conditions

    def series(self) -> tuple[str, ...]:
        """The sample names /metrics shows for it."""
        if self.kind == "counter":
            return (self.name.removesuffix("_total") + "_total",)
        if self.kind == "histogram":
            return tuple(self.name + s for s in HISTOGRAM_SUFFIXES)
        if self.kind == "summary":
            return (self.name + "_sum", self.name + "_count")
        if self.kind == "info":
            return (self.name + "_info",)
        return (self.name,)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Metric:
        return cls(data["name"], data["kind"], data["source"], tuple(data["conditions"]))


def metrics_in(path: str, text: str) -> Iterator[Metric]:
    if PREFIX not in text:
        return
    tree = ast.parse(text)
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        kind = KIND_OF_CONSTRUCTOR.get(terminal_name(node.func))
        if kind is None:
            continue
        for name in _names(node, parents):
            if name.startswith(PREFIX):
                yield Metric(name, kind, f"{path}:{node.lineno}", _conditions(node, parents))


def _names(call: ast.Call, parents: dict[ast.AST, ast.AST]) -> list[str]:
    argument = next((k.value for k in call.keywords if k.arg == "name"), call.args[0] if call.args else None)
    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
        return [argument.value]
    if isinstance(argument, ast.Name):  # name = "vllm:cache_config_info"; ...; Gauge(name=name, ...)
        scope = _enclosing(call, parents, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Module))
        return [
            node.value.value
            for node in ast.walk(scope)
            if isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == argument.id for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ]
    return []


def _enclosing(node: ast.AST, parents: dict[ast.AST, ast.AST], kinds: tuple[type, ...]) -> ast.AST:
    while node in parents and not isinstance(node, kinds):
        node = parents[node]
    return node


def _conditions(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> tuple[str, ...]:
    tests: list[str] = []
    child = node
    while child in parents:
        parent = parents[child]
        if isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            break
        if isinstance(parent, ast.If | ast.IfExp) and child is not parent.test:
            test = ast.unparse(parent.test)
            in_else = child in (parent.orelse if isinstance(parent.orelse, list) else [parent.orelse])
            tests.append(f"not ({test})" if in_else else test)
        child = parent
    return tuple(reversed(tests))


def extract_metrics(files: Iterator[tuple[str, str]]) -> tuple[Metric, ...]:
    """All V1-engine registrations in (path, text) pairs, sorted by name then source."""
    found = [m for path, text in files if not path.startswith(V0_ENGINE) for m in metrics_in(path, text)]
    return tuple(sorted(found, key=lambda m: (m.name, m.source)))
