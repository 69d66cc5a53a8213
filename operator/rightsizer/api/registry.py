"""The kinds rightsizer serves, with their CRD metadata (names, printer columns, subresources, CEL rules)."""

from __future__ import annotations

from rightsizer.api import constants as c
from rightsizer.api.crdgen import KindSpec, PrinterColumn
from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec, LLMDeploymentStatus

LLMDEPLOYMENT = KindSpec(
    kind=c.LLMD_KIND,
    plural=c.LLMD_PLURAL,
    singular=c.LLMD_SINGULAR,
    short_names=c.LLMD_SHORT_NAMES,
    scope="Namespaced",
    description="One model served by vLLM, sized, placed and scaled by rightsizer.",
    spec_model=LLMDeploymentSpec,
    status_model=LLMDeploymentStatus,
    printer_columns=(
        PrinterColumn("Model", ".spec.model.name"),
        PrinterColumn("GPU", ".status.plan.gpuProduct"),
        PrinterColumn("GPUs", ".status.plan.gpusPerReplica", "integer", description="GPUs per replica"),
        PrinterColumn("TP", ".status.plan.tensorParallelSize", "integer"),
        PrinterColumn("PP", ".status.plan.pipelineParallelSize", "integer"),
        PrinterColumn("Max-Seqs", ".status.plan.maxNumSeqs", "integer"),
        PrinterColumn("Replicas", ".status.replicas", "integer"),
        PrinterColumn("Ready", ".status.readyReplicas", "integer"),
        PrinterColumn("Status", '.status.conditions[?(@.type=="Ready")].reason', priority=1),
        PrinterColumn("Pool", ".status.plan.pool", priority=1),
        PrinterColumn("KV-Tokens", ".status.plan.kvCacheTokens", "integer", priority=1),
        PrinterColumn("Max-Len", ".status.plan.maxModelLen", "integer", priority=1),
    ),
    scale={
        "specReplicasPath": ".spec.replicas.desired",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    },
    spec_validations=(
        {
            "rule": "!has(self.replicas) || !has(self.replicas.max) || self.replicas.max >= self.replicas.min",
            "message": "spec.replicas.max must be at least spec.replicas.min",
            "fieldPath": ".replicas.max",
        },
        {
            "rule": "!has(self.replicas) || !has(self.replicas.desired) || self.replicas.desired >= 0",
            "message": "spec.replicas.desired must not be negative",
            "fieldPath": ".replicas.desired",
        },
    ),
)

KINDS: tuple[KindSpec, ...] = (LLMDEPLOYMENT,)
