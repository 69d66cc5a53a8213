"""The kinds rightsizer serves, with their CRD metadata (names, printer columns, subresources, CEL rules)."""

from __future__ import annotations

from rightsizer.api import constants as c
from rightsizer.api import names
from rightsizer.api.conditions import ConditionType, PolicyConditionType
from rightsizer.api.crdgen import KindSpec, PrinterColumn
from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec, LLMDeploymentStatus
from rightsizer.api.v1alpha1.sizingpolicy import SizingPolicySpec, SizingPolicyStatus

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
        PrinterColumn("Placement", ".status.placement.summary", description="Ready/asked replicas per pool"),
        PrinterColumn("Status", f'.status.conditions[?(@.type=="{ConditionType.READY}")].reason', priority=1),
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
    # Every child and pod name derived from metadata.name is valid (api/names.py), enforced by the API server.
    root_validations=names.cel_rules(),
    metadata_schema=names.METADATA_SCHEMA,
)

SIZINGPOLICY = KindSpec(
    kind=c.POLICY_KIND,
    plural=c.POLICY_PLURAL,
    singular=c.POLICY_SINGULAR,
    short_names=c.POLICY_SHORT_NAMES,
    scope="Cluster",
    description="What a platform team allows the LLMDeployments of the namespaces it selects: GPU products and "
    "pools, limits, a per-namespace GPU quota, approved images and formats, required fields and defaults.",
    spec_model=SizingPolicySpec,
    status_model=SizingPolicyStatus,
    printer_columns=(
        PrinterColumn("Products", ".spec.allowed.gpuProducts", description="Allowed GPU products (empty: any)"),
        PrinterColumn("Max-GPUs", ".spec.limits.maxGpusPerReplica", "integer", description="GPUs per replica"),
        PrinterColumn("Max-Replicas", ".spec.limits.maxReplicas", "integer"),
        PrinterColumn("Accepted", f'.status.conditions[?(@.type=="{PolicyConditionType.ACCEPTED}")].status'),
        PrinterColumn("Quota", ".spec.limits.namespaceQuota", description="GPUs per namespace", priority=1),
        PrinterColumn("Selector", ".spec.namespaceSelector", priority=1),
        PrinterColumn("Pools", ".spec.allowed.pools", priority=1),
        PrinterColumn("Max-Len", ".spec.limits.maxModelLen", "integer", priority=1),
        PrinterColumn("Images", ".spec.allowed.engineImages", priority=1),
        PrinterColumn("Formats", ".spec.allowed.quantizations", priority=1),
    ),
)

KINDS: tuple[KindSpec, ...] = (LLMDEPLOYMENT, SIZINGPOLICY)
