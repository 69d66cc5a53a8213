"""Well-known names: API group, kinds, labels, annotations. One place, so every module agrees."""

from typing import Final

GROUP: Final = "rightsizer.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

LLMD_KIND: Final = "LLMDeployment"
LLMD_PLURAL: Final = "llmdeployments"
LLMD_SINGULAR: Final = "llmdeployment"
LLMD_SHORT_NAMES: Final = ("llmd",)

POLICY_KIND: Final = "SizingPolicy"
POLICY_PLURAL: Final = "sizingpolicies"
POLICY_SINGULAR: Final = "sizingpolicy"
POLICY_SHORT_NAMES: Final = ("sp",)

# Server-side apply field manager for every object rightsizer writes.
FIELD_MANAGER: Final = "rightsizer"
FINALIZER: Final = f"{GROUP}/finalizer"

# Recommended labels (https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/).
LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_INSTANCE: Final = "app.kubernetes.io/instance"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
APP_NAME: Final = "vllm"
MANAGED_BY: Final = "rightsizer"

# Our own labels and annotations.
LABEL_POOL: Final = f"{GROUP}/pool"
# On every child and vLLM pod, for cost allocation (OpenCost/Kubecost aggregate by any label: `label:<key>`).
LABEL_LLMDEPLOYMENT: Final = f"{GROUP}/llmdeployment"  # the LLMDeployment's name
LABEL_MODEL: Final = f"{GROUP}/model"  # spec.model.name as a label value ('/' -> '.'; long names hashed to fit)
ANNOTATION_SPEC_HASH: Final = f"{GROUP}/spec-hash"

# Labels NVIDIA GPU Feature Discovery puts on GPU nodes.
GFD_PRODUCT: Final = "nvidia.com/gpu.product"
GFD_MEMORY_MIB: Final = "nvidia.com/gpu.memory"

# The extended resource the NVIDIA device plugin advertises, and the taint managed GPU pools carry.
GPU_RESOURCE: Final = "nvidia.com/gpu"
GPU_TAINT_KEY: Final = "nvidia.com/gpu"

# The label the API server puts on every namespace (immutable, its own name): policies can select by name with it.
LABEL_NAMESPACE_NAME: Final = "kubernetes.io/metadata.name"

# Upstream vLLM image repository; images are tagged v<release> (vllm/vllm-openai:v0.19.0).
VLLM_IMAGE_REPOSITORY: Final = "vllm/vllm-openai"
