"""The serving plan: what rightsizer computed for one LLMDeployment, in status and in `rightsizer plan -o json`."""

from __future__ import annotations

from pydantic import Field

from rightsizer.api.v1alpha1.common import StatusModel


class MemoryBreakdown(StatusModel):
    """Per-GPU memory of the binding rank (the one with the fewest KV blocks), as vLLM accounts it. GiB = 2^30 B."""

    total_gib_per_gpu: float = Field(alias="totalGiBPerGpu", description="GPU memory as torch sees it.")
    requested_gib_per_gpu: float = Field(
        alias="requestedGiBPerGpu", description="total × gpuMemoryUtilization: the budget vLLM may use."
    )
    weights_gib_per_gpu: float = Field(alias="weightsGiBPerGpu", description="Model weights on this rank.")
    activation_gib_per_gpu: float = Field(
        alias="activationGiBPerGpu", description="Peak activation of vLLM's profiling run (forward and sampler)."
    )
    non_torch_gib_per_gpu: float = Field(
        alias="nonTorchGiBPerGpu", description="Memory outside torch's allocator: NCCL, cuBLAS, all-reduce buffers."
    )
    cuda_graph_gib_per_gpu: float = Field(alias="cudaGraphGiBPerGpu", description="CUDA-graph memory estimate.")
    cuda_graph_subtracted: bool = Field(
        description="Whether this vLLM release subtracts the CUDA-graph estimate before sizing the KV cache."
    )
    kv_cache_gib_per_gpu: float = Field(alias="kvCacheGiBPerGpu", description="What is left for the KV cache.")


class PredictedPerformance(StatusModel):
    """The performance model's prediction for one replica at the declared workload (spec.workload split over
    the replicas; a full replica, max-num-seqs concurrent requests, when the workload declares no load)."""

    concurrency: float = Field(description="Concurrent requests per replica the prediction is for.")
    ttft_p50_ms: float = Field(alias="ttftP50Ms", description="Time to first token, median.")
    ttft_p95_ms: float = Field(alias="ttftP95Ms", description="Time to first token, 95th percentile.")
    itl_p50_ms: float = Field(alias="itlP50Ms", description="Inter-token latency, median.")
    itl_p95_ms: float = Field(alias="itlP95Ms", description="Inter-token latency, 95th percentile.")
    ttft_p95_ms_high: float = Field(
        default=0.0,
        alias="ttftP95MsHigh",
        description="Pessimistic edge of ttftP95Ms: what 90% of held-out published measurements of this kind of "
        "point stay under. spec.slo.ttftP95Ms is checked against it.",
    )
    itl_p95_ms_high: float = Field(
        default=0.0,
        alias="itlP95MsHigh",
        description="Pessimistic edge of itlP95Ms; spec.slo.itlP95Ms is checked against it.",
    )
    interval_basis: str = Field(
        default="", description="The held-out measurements behind the pessimistic edges (kind of point and count)."
    )
    output_tokens_per_second: float = Field(description="Generated tokens per second per replica.")
    max_request_rate: float = Field(description="Requests per second one replica sustains within the SLO.")
    max_concurrency_within_slo: int = Field(
        default=0,
        alias="maxConcurrencyWithinSLO",
        description="Concurrent requests one replica serves within the SLO (0: not even one).",
    )
    meets_slo: bool = Field(alias="meetsSLO", description="Whether the prediction's pessimistic edges meet spec.slo.")
    saturated: bool = Field(
        default=False, description="The load exceeds what a replica serves: requests queue without bound."
    )
    calibrated: bool = Field(
        default=True, description="False when the GPU has no published measurements behind the efficiency factors."
    )


class Plan(StatusModel):
    """Everything vLLM will be started with, and why. Per replica unless a field says otherwise."""

    gpu_product: str = Field(description="GPU product (GPU Feature Discovery name) the plan runs on.")
    pool: str = Field(description="The GPU pool chosen.")
    gpus_per_node: int = Field(description="GPUs per node in the chosen pool.")
    gpus_per_replica: int = Field(description="tensorParallelSize × pipelineParallelSize.")
    nodes_per_replica: int = Field(description="Nodes one replica spans (>1 means a LeaderWorkerSet).")
    tensor_parallel_size: int = Field(description="vLLM --tensor-parallel-size.")
    pipeline_parallel_size: int = Field(description="vLLM --pipeline-parallel-size.")
    expert_parallel: bool = Field(
        default=False,
        description="vLLM --enable-expert-parallel: each GPU holds whole MoE experts (EP = TP) instead of a slice "
        "of every expert; chosen only where vLLM refuses plain TP (e.g. an FP8 block wider than an expert's slice).",
    )
    max_num_seqs: int = Field(description="vLLM --max-num-seqs: concurrent sequences per replica.")
    max_model_len: int = Field(description="vLLM --max-model-len: longest prompt + output in tokens.")
    max_num_batched_tokens: int = Field(description="vLLM --max-num-batched-tokens: chunked-prefill token budget.")
    gpu_memory_utilization: float = Field(description="vLLM --gpu-memory-utilization.")
    dtype: str = Field(description="Activation/weight dtype vLLM resolves (bfloat16, float16, float32).")
    quantization: str = Field(description="Weight format: none, fp8, w8a8, w4a16-gptq, w4a16-awq, mxfp4, nvfp4.")
    kv_cache_dtype: str = Field(description="vLLM --kv-cache-dtype.")
    block_size: int = Field(description="KV block size in tokens vLLM will use.")
    kv_cache_blocks: int = Field(description="KV blocks per replica (the minimum over ranks).")
    kv_cache_tokens: int = Field(description='Tokens vLLM logs as "GPU KV cache size".')
    max_concurrency: float = Field(description="vLLM's maximum concurrency at maxModelLen (its startup log).")
    workload_concurrency: float = Field(
        description="Sequences of the declared workload length the KV cache holds at once."
    )
    replicas: int = Field(description="Replicas the declared workload needs (within spec.replicas).")
    engine_version: str = Field(description="vLLM release whose memory accounting the plan follows.")
    memory: MemoryBreakdown
    performance: PredictedPerformance | None = Field(default=None, description="Predicted latency and throughput.")
    vllm_args: list[str] = Field(description="The exact vLLM server arguments.")
    reasons: list[str] = Field(description="Why each choice was made, for a person.")
    warnings: list[str] = Field(default_factory=list, description="Things that work but deserve attention.")


class PoolPlan(StatusModel):
    """One allowed GPU pool's own plan, in the order sizing ranks the pools: the first is the primary (status.plan),
    the next one that can hold the model is where replicas overflow when the primary pool is full."""

    rank: int = Field(description="1 for the primary pool; pools that cannot hold the model rank last.")
    pool: str = Field(description="The GPU pool.")
    gpu_product: str = Field(description="GPU product (GPU Feature Discovery name) of the pool.")
    fits: bool = Field(description="Whether one replica of the model fits this pool at all.")
    gpus_per_replica: int | None = Field(default=None, description="tensorParallelSize × pipelineParallelSize.")
    nodes_per_replica: int | None = Field(default=None, description="Nodes one replica spans on this pool.")
    tensor_parallel_size: int | None = Field(default=None, description="vLLM --tensor-parallel-size on this pool.")
    pipeline_parallel_size: int | None = Field(default=None, description="vLLM --pipeline-parallel-size.")
    max_num_seqs: int | None = Field(default=None, description="vLLM --max-num-seqs on this pool.")
    max_num_batched_tokens: int | None = Field(default=None, description="vLLM --max-num-batched-tokens.")
    replicas: int | None = Field(default=None, description="Replicas the declared workload needs on this pool.")
    max_request_rate: float | None = Field(
        default=None, description="Requests per second one replica of this pool sustains within the SLO."
    )
    max_concurrency_within_slo: int | None = Field(
        default=None, alias="maxConcurrencyWithinSLO", description="Concurrent requests one replica serves within it."
    )
    meets_slo: bool | None = Field(
        default=None, alias="meetsSLO", description="Whether the prediction meets spec.slo (unset: no prediction)."
    )
    price_per_replica_hour: float | None = Field(
        default=None, description="Price of one replica-hour (GPUs × the pool's price), when the pool has a price."
    )
    why: str = Field(description="Why the pool ranks where it does, or why it cannot hold the model.")
