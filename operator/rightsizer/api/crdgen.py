"""Generate CustomResourceDefinitions from the pydantic models: the models are the single source of truth.

`rightsizer crds [DIR]` writes one YAML file per kind; `--check` fails when the files on disk are stale.

The pydantic JSON schema is turned into a Kubernetes *structural* schema:
every `$ref` is inlined, titles and defaults are dropped (defaults live in the models, so the API server never
rewrites what a user applied), `Optional[T]` becomes `nullable: true`, free-form mappings keep unknown fields,
numeric exclusive bounds use the OpenAPI v3.0 boolean form, and CEL rules come from the models' schema extras.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from rightsizer.api import constants as c

JSON = dict[str, Any]


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    priority: int = 0
    description: str = ""

    def to_wire(self) -> JSON:
        column: JSON = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            column["description"] = self.description
        if self.priority:
            column["priority"] = self.priority
        return column


@dataclass(frozen=True)
class KindSpec:
    """Everything the CRD of one kind needs besides its schema."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    scope: str
    description: str
    spec_model: type[BaseModel]
    status_model: type[BaseModel] | None
    printer_columns: tuple[PrinterColumn, ...] = ()
    scale: JSON | None = None
    spec_validations: tuple[JSON, ...] = ()
    # Rules at the root of the schema: the only place a rule may read metadata.name (and metadata.generateName).
    root_validations: tuple[JSON, ...] = ()
    metadata_schema: JSON | None = None  # restrictions on metadata.name/generateName, the only ones Kubernetes allows
    categories: tuple[str, ...] = field(default=("rightsizer",))

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{c.GROUP}"

    @property
    def file_name(self) -> str:
        return f"{c.GROUP}_{self.plural}.yaml"


def structural_schema(model: type[BaseModel]) -> JSON:
    """The model's validation schema as a Kubernetes structural schema."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    definitions: Mapping[str, JSON] = raw.pop("$defs", {})
    return _convert(raw, definitions)


def _convert(node: JSON, definitions: Mapping[str, JSON]) -> JSON:  # noqa: C901 - one branch per JSON-schema form
    node = copy.deepcopy(node)
    if "$ref" in node:
        target = definitions[node.pop("$ref").rsplit("/", 1)[-1]]
        merged = {**target, **node}  # a description next to a $ref wins over the target's own
        return _convert(merged, definitions)

    if "anyOf" in node:
        alternatives = node.pop("anyOf")
        variants = [v for v in alternatives if v.get("type") != "null"]
        if len(variants) != 1 or len(alternatives) != 2:
            raise ValueError(f"only Optional[T] unions are structural, got {alternatives}")
        inner = _convert(variants[0], definitions)
        extras = {k: v for k, v in node.items() if k == "description"}
        return {**inner, **extras, "nullable": True}

    for drop in ("title", "default", "examples"):
        node.pop(drop, None)

    if "const" in node:
        node["enum"] = [node.pop("const")]
    if "exclusiveMinimum" in node:
        node["minimum"] = node.pop("exclusiveMinimum")
        node["exclusiveMinimum"] = True
    if "exclusiveMaximum" in node:
        node["maximum"] = node.pop("exclusiveMaximum")
        node["exclusiveMaximum"] = True

    if "properties" in node:
        node["properties"] = {k: _convert(v, definitions) for k, v in node["properties"].items()}
        node.setdefault("type", "object")
        node.pop("additionalProperties", None)
    elif node.get("type") == "object":
        extra = node.pop("additionalProperties", True)
        if extra is True or extra == {}:
            node["x-kubernetes-preserve-unknown-fields"] = True
        else:
            node["additionalProperties"] = _convert(extra, definitions)
    if "items" in node:
        node["items"] = _convert(node["items"], definitions)
    if "required" in node:
        node["required"] = sorted(node["required"])
    return node


def _condition_list(schema: JSON) -> None:
    """Conditions are a map keyed by type, like metav1.Condition lists (server-side apply merges per type)."""
    conditions = schema.get("properties", {}).get("conditions")
    if conditions is not None:
        conditions["x-kubernetes-list-type"] = "map"
        conditions["x-kubernetes-list-map-keys"] = ["type"]


def crd(kind: KindSpec) -> JSON:
    """The full CustomResourceDefinition object for one kind."""
    spec_schema = structural_schema(kind.spec_model)
    if kind.spec_validations:
        spec_schema["x-kubernetes-validations"] = list(kind.spec_validations)
    properties: JSON = {
        "apiVersion": {"type": "string", "description": "APIVersion of this object."},
        "kind": {"type": "string", "description": "Kind of this object."},
        "metadata": copy.deepcopy(kind.metadata_schema) if kind.metadata_schema else {"type": "object"},
        "spec": spec_schema,
    }
    subresources: JSON = {}
    if kind.status_model is not None:
        status_schema = structural_schema(kind.status_model)
        _condition_list(status_schema)
        properties["status"] = status_schema
        subresources["status"] = {}
    if kind.scale is not None:
        subresources["scale"] = kind.scale
    root: JSON = {
        "type": "object",
        "description": kind.description,
        "properties": properties,
        "required": ["spec"],
    }
    if kind.root_validations:
        root["x-kubernetes-validations"] = list(kind.root_validations)
    version: JSON = {
        "name": c.VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": root},
        "subresources": subresources,
        "additionalPrinterColumns": [
            *(col.to_wire() for col in kind.printer_columns),
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": kind.crd_name,
            "labels": {c.LABEL_NAME: "rightsizer", "app.kubernetes.io/part-of": "rightsizer"},
        },
        "spec": {
            "group": c.GROUP,
            "scope": kind.scope,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": list(kind.categories),
            },
            "versions": [version],
        },
    }


HEADER = "# Generated by `rightsizer crds` from operator/rightsizer/api. Do not edit by hand.\n"


def render(kind: KindSpec) -> str:
    return HEADER + yaml.safe_dump(crd(kind), sort_keys=False, width=120)


def write_all(kinds: Iterable[KindSpec], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in kinds:
        path = directory / kind.file_name
        path.write_text(render(kind))
        written.append(path)
    return written


def stale_files(kinds: Iterable[KindSpec], directory: Path) -> list[Path]:
    """Files in `directory` that differ from what the models generate (missing files count as stale)."""
    return [
        directory / kind.file_name
        for kind in kinds
        if not (directory / kind.file_name).exists() or (directory / kind.file_name).read_text() != render(kind)
    ]
