"""Everything a builder needs about one LLMDeployment, resolved once."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

from rightsizer.api import constants as c
from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.api.v1alpha1.plan import Plan
from rightsizer.sizing.pools import GpuPool

LABEL_VALUE_MAX = 63  # Kubernetes: a label value is at most 63 characters of [A-Za-z0-9._-], alphanumeric at both ends


def label_value(text: str) -> str:
    """`text` as a label value: characters outside [A-Za-z0-9._-] become '.', e.g. meta-llama/Llama-3.1-8B-Instruct ->
    meta-llama.Llama-3.1-8B-Instruct; longer than 63 characters, it keeps its start and gets a hash of the whole, so
    two long names stay apart."""
    value = re.sub(r"[^A-Za-z0-9._-]", ".", text).strip("._-")
    if len(value) > LABEL_VALUE_MAX:
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        value = f"{value[: LABEL_VALUE_MAX - 11].rstrip('._-')}-{digest}"
    return value


@dataclass(frozen=True)
class BuildOptions:
    """Operator-level settings that shape the children."""

    image_repository: str = "vllm/vllm-openai"
    startup_base_seconds: int = 300
    startup_seconds_per_weight_gib: float = 4.0
    shm_size: str = "16Gi"
    # The vLLM pods' user: non-root by default (the restricted Pod Security Standard); 0 runs them as root, as the
    # upstream image does on its own (docs/security.md).
    run_as_user: int = 2000
    scratch_size: str = "20Gi"  # each of the writable home and /tmp volumes (compile caches, Ray's session files)


@dataclass(frozen=True)
class BuildContext:
    name: str
    namespace: str
    uid: str
    spec: LLMDeploymentSpec
    plan: Plan
    pool: GpuPool
    replicas: int
    options: BuildOptions = BuildOptions()
    # The overflow workload (kube/placement.py): its own name, and a selector narrowed to its pool so that it never
    # counts the primary's pods. The primary keeps the instance's name and selector (a selector is immutable).
    workload_name: str | None = None
    selects_pool: bool = False

    @property
    def multi_node(self) -> bool:
        return self.plan.nodes_per_replica > 1

    @property
    def gpus_per_pod(self) -> int:
        return self.plan.gpus_per_replica // self.plan.nodes_per_replica

    @property
    def image(self) -> str:
        engine = self.spec.serving.engine
        return engine.image or f"{self.options.image_repository}:v{engine.version}"

    def labels(self) -> dict[str, str]:
        """Labels on every child and pod; the first three are the selector."""
        return {
            **self.selector(),
            c.LABEL_COMPONENT: "server",
            c.LABEL_POOL: self.pool.name,
            c.LABEL_LLMDEPLOYMENT: self.name,
            c.LABEL_MODEL: label_value(self.spec.model.name),
        }

    def selector(self) -> dict[str, str]:
        return {c.LABEL_NAME: c.APP_NAME, c.LABEL_INSTANCE: self.name, c.LABEL_MANAGED_BY: c.MANAGED_BY}

    def workload_selector(self) -> dict[str, str]:
        return {**self.selector(), c.LABEL_POOL: self.pool.name} if self.selects_pool else self.selector()

    def workload_metadata(self) -> dict[str, object]:
        return self.metadata(self.workload_name)

    def owner_reference(self) -> dict[str, object]:
        return {
            "apiVersion": c.API_VERSION,
            "kind": c.LLMD_KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def metadata(self, name: str | None = None) -> dict[str, object]:
        return {
            "name": name or self.name,
            "namespace": self.namespace,
            "labels": self.labels(),
            "ownerReferences": [self.owner_reference()],
        }

    def startup_budget_seconds(self) -> int:
        """Time a pod may take to download and load its weights, compile and capture graphs."""
        weights_per_pod = self.plan.memory.weights_gib_per_gpu * self.gpus_per_pod
        extra = self.options.startup_seconds_per_weight_gib * weights_per_pod
        return int(math.ceil((self.options.startup_base_seconds + extra) / 10.0) * 10)
