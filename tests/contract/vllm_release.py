"""What one vLLM release accepts on `vllm serve` and what it exposes on /metrics, read from its PyPI wheel.

Extraction parses a few hundred source files (about a second); the result is cached as JSON next to the wheel
(`<cache>/wheels/vllm-<version>.contract.json`), keyed by the version and a fingerprint of the extractor's own
source, so that changing the extractor re-extracts and CI pays for the download once.

CLI: `hack/vllm_wheel.py --fetch [VERSION ...]` (what CI runs before the contract tests; ~450 MB once per release),
or `python -m tests.contract.vllm_release [VERSION ...]`; the default is rightsizer's pinned release.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rightsizer.api.v1alpha1.llmdeployment import DEFAULT_ENGINE_VERSION
from tests.contract import static_python, vllm_cli, vllm_metrics_source
from tests.contract.static_python import SourceTree
from tests.contract.vllm_cli import ServeParser, ServeParserModel, extract_serve_parser
from tests.contract.vllm_metrics_source import Metric, extract_metrics
from tests.contract.vllm_wheel import Wheel, cache_dir, ensure_wheel

QUANTIZATION_MODULE = "vllm.model_executor.layers.quantization"
EXTRACTOR_MODULES = (static_python, vllm_cli, vllm_metrics_source)


@dataclass(frozen=True)
class ReleaseContract:
    version: str
    wheel: str
    parser_model: ServeParserModel
    metrics: tuple[Metric, ...]
    deprecated_quantization: tuple[str, ...]  # need --allow-deprecated-quantization (vllm/config/model.py)

    def parser(self) -> ServeParser:
        return ServeParser(self.parser_model)

    def problems(self, argv: Sequence[str]) -> list[str]:
        """Why this release's `vllm serve` would refuse `argv`: the parser's verdict, then ModelConfig's check of
        --quantization (vllm/config/model.py `_verify_quantization`): one of QUANTIZATION_METHODS, i.e. the
        QuantizationMethods Literal, and a deprecated one only with --allow-deprecated-quantization."""
        parser = self.parser()
        found = parser.problems(argv)
        if found:
            return found
        option = self.parser_model.option("--quantization")
        allow_deprecated = any(parser.resolve(a) is parser.resolve("--allow-deprecated-quantization") for a in argv)
        for i, arg in enumerate(argv):
            name, eq, inline = arg.partition("=")
            if not name.startswith("-") or parser.resolve(name) is not option:
                continue
            method = inline if eq else argv[i + 1]  # the parser already refused a missing value
            if option.declared_values is not None and method not in option.declared_values:
                found.append(f"--quantization: {method!r} is not one of QUANTIZATION_METHODS {option.declared_values}")
            elif method in self.deprecated_quantization and not allow_deprecated:
                found.append(f"--quantization: {method!r} is deprecated; vLLM needs --allow-deprecated-quantization")
        return found

    def metric(self, name: str) -> Metric | None:
        """The registration of `name` in the engine's stat logger (vllm/v1/metrics/loggers.py), else elsewhere."""
        found = [m for m in self.metrics if m.name == name]
        engine = [m for m in found if m.source.startswith(vllm_metrics_source.ENGINE_LOGGERS)]
        candidates = engine or found
        return candidates[0] if candidates else None

    def exposed_series(self, *, hidden: bool = False) -> frozenset[str]:
        """Every series name /metrics can show with default flags (plus deprecated ones when `hidden`)."""
        return frozenset(s for m in self.metrics if hidden or not m.hidden for s in m.series())

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "wheel": self.wheel,
            "parser": self.parser_model.to_json(),
            "metrics": [m.to_json() for m in self.metrics],
            "deprecated_quantization": list(self.deprecated_quantization),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReleaseContract:
        return cls(
            version=data["version"],
            wheel=data["wheel"],
            parser_model=ServeParserModel.from_json(data["parser"]),
            metrics=tuple(Metric.from_json(m) for m in data["metrics"]),
            deprecated_quantization=tuple(data["deprecated_quantization"]),
        )


def extractor_fingerprint() -> str:
    digest = hashlib.sha256()
    for module in (*EXTRACTOR_MODULES, sys.modules[__name__]):
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()[:16]


def contract_cache_path(version: str) -> Path:
    return cache_dir() / f"vllm-{version}.contract.json"


def extract(version: str, wheel_path: Path) -> ReleaseContract:
    wheel = Wheel(wheel_path)
    try:
        tree = SourceTree(wheel.read)
        parser_model = extract_serve_parser(tree)
        metrics = extract_metrics(_python_files(wheel))
        try:
            deprecated = tree.literal_strings(QUANTIZATION_MODULE, "DEPRECATED_QUANTIZATION_METHODS")
        except LookupError:
            deprecated = ()  # releases before the list existed
        return ReleaseContract(version, wheel_path.name, parser_model, metrics, deprecated)
    finally:
        wheel.close()


def _python_files(wheel: Wheel) -> Iterator[tuple[str, str]]:
    import zipfile

    with zipfile.ZipFile(wheel.path) as archive:
        for member in archive.namelist():
            if member.startswith("vllm/") and member.endswith(".py"):
                yield member, archive.read(member).decode("utf-8")


def load(version: str, *, download: bool = True) -> ReleaseContract:
    """The release's contract: from the JSON cache when the extractor is unchanged, else from the wheel
    (downloaded when missing and `download`). Raises vllm_wheel.WheelUnavailableError."""
    path = contract_cache_path(version)
    fingerprint = extractor_fingerprint()
    if path.exists():
        try:
            cached = json.loads(path.read_text())
            if cached.get("extractor") == fingerprint:
                return ReleaseContract.from_json(cached["contract"])
        except (ValueError, KeyError, TypeError):
            pass  # unreadable or older layout: extract again
    contract = extract(version, ensure_wheel(version, download=download))
    _write_atomically(path, {"extractor": fingerprint, "contract": contract.to_json()})
    return contract


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
    os.replace(handle.name, path)


def main(argv: Sequence[str] | None = None) -> int:
    cli = argparse.ArgumentParser(prog="python -m tests.contract.vllm_release", description=__doc__.splitlines()[0])
    cli.add_argument("versions", nargs="*", default=[DEFAULT_ENGINE_VERSION], help="vLLM releases (default: pinned)")
    args = cli.parse_args(argv)
    for version in args.versions:
        contract = load(version)
        flags = contract.parser_model.flags()
        print(
            f"vllm {version}: {len(contract.parser_model.options)} serve options ({len(flags)} spellings), "
            f"{len({m.name for m in contract.metrics})} metrics, cache {contract_cache_path(version)}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
