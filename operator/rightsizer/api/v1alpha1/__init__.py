"""rightsizer.dev/v1alpha1: LLMDeployment and SizingPolicy."""

from rightsizer.api.v1alpha1.common import Condition, GpuPoolSpec, Toleration
from rightsizer.api.v1alpha1.llmdeployment import (
    SLO,
    Autoscaling,
    Engine,
    GpuRequirements,
    KVCacheDType,
    LLMDeployment,
    LLMDeploymentSpec,
    LLMDeploymentStatus,
    ModelDType,
    ModelSource,
    Quantization,
    Replicas,
    Serving,
    Workload,
)
from rightsizer.api.v1alpha1.plan import MemoryBreakdown, Plan, PredictedPerformance

__all__ = [
    "SLO",
    "Autoscaling",
    "Condition",
    "Engine",
    "GpuPoolSpec",
    "GpuRequirements",
    "KVCacheDType",
    "LLMDeployment",
    "LLMDeploymentSpec",
    "LLMDeploymentStatus",
    "MemoryBreakdown",
    "ModelDType",
    "ModelSource",
    "Plan",
    "PredictedPerformance",
    "Quantization",
    "Replicas",
    "Serving",
    "Toleration",
    "Workload",
]
