"""Where a replica's time goes, by term of the performance model, beside the Azure ND H200 v5 article's profile.

    .venv/bin/python bench/step_breakdown.py

The article ("Optimizing Language Model Inference on Azure", Patankar and Affaticati, Azure HPC blog, 2024-10-02,
https://techcommunity.microsoft.com/t5/azure-high-performance-computing/optimizing-language-model-inference-on-azure/ba-p/4248271)
profiled Llama 3 8B on the ND H200 v5 by tensor-parallel degree and split the inference time into computation
(local GEMMs), communication (all-reduce) and attention: computation 83 % at TP1 down to 57 % at TP8, communication
0 % to 25 %, attention under 10 % (its Table 1; its text: "computation consistently accounts for at least 50% and
up to 85% of total inference time. Communication time ranges from 10% to 25%"). It does not print the batch or the
lengths of the profiled run, so this prints the model's split for a static batch of the seeds' shape (32 requests of
1,024 prompt + 128 generated tokens: prefilled together, then decoded to the end), and for two other batches to show
how the split moves. Times are summed over the run's steps; "GPU share" leaves out the per-step CPU overhead, which a
GPU profile does not attribute to any kernel.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `bench` as a package when run as a script

from rightsizer.facts import catalog, gpus  # noqa: E402
from rightsizer.facts.vllm_profiles import profile_for  # noqa: E402
from rightsizer.model.config import WeightFormat, parse  # noqa: E402
from rightsizer.model.memory import EngineSettings, replica_memory  # noqa: E402
from rightsizer.perf import Replica, StepTerms, build_replica  # noqa: E402

MODEL = "meta-llama/Llama-3.1-8B-Instruct"  # the same shape as Llama 3 8B
GPU = "H200"
# (TP, computation %, communication %) from the article's Table 1 as the issue quotes it; attention < 10 % throughout.
ARTICLE = {1: (83, 0), 8: (57, 25)}


@dataclass(frozen=True)
class Split:
    linear: float
    attention: float
    communication: float
    overhead: float

    def gpu_shares(self) -> tuple[float, float, float]:
        gpu = self.linear + self.attention + self.communication
        return self.linear / gpu, self.communication / gpu, self.attention / gpu


def replica(tp: int) -> Replica:
    facts = parse(catalog.lookup(MODEL) or {})
    profile = profile_for("0.19.0")
    gpu = gpus.lookup(GPU)
    settings = EngineSettings(
        tensor_parallel_size=tp,
        pipeline_parallel_size=1,
        max_num_seqs=256,
        max_num_batched_tokens=8192,
        max_model_len=8192,
        gpu_memory_utilization=0.9,
        dtype="bfloat16",
        kv_cache_dtype="auto",
        weight_format=WeightFormat.NONE,
    )
    return build_replica(facts, settings, gpu, replica_memory(facts, settings, gpu, profile))


def static_batch(r: Replica, batch: int, prompt: int, output: int) -> Split:
    """Prefill `batch` prompts together through the token budget, then decode every sequence to the end."""
    parts: list[StepTerms] = []
    total, done = batch * prompt, 0
    while done < total:
        chunk = min(r.max_num_batched_tokens, total - done)
        parts.append(r.step_terms(0, 0, chunk, prompt * done / total, batch * chunk / total))
        done += chunk
    parts += [r.step_terms(batch, prompt + i) for i in range(1, output)]
    return Split(
        sum(p.linear for p in parts),
        sum(p.attention for p in parts),
        sum(p.communication for p in parts),
        sum(p.overhead for p in parts),
    )


def main() -> int:
    workloads = ((32, 1024, 128), (8, 1024, 128), (128, 128, 1024))
    print(f"{MODEL} on {GPU}, vLLM 0.19 accounting, bf16; shares of GPU time (compute / communication / attention)")
    print(f"{'batch x in/out':<18} {'TP':>3} {'compute':>8} {'comm':>6} {'attn':>6} {'run s':>7} {'CPU overhead':>13}")
    for batch, prompt, output in workloads:
        for tp in (1, 2, 4, 8):
            split = static_batch(replica(tp), batch, prompt, output)
            compute, comm, attention = split.gpu_shares()
            run = split.linear + split.attention + split.communication + split.overhead
            print(
                f"{batch:>4} x {prompt:>4}/{output:<5} {tp:>3} {100 * compute:7.0f}% {100 * comm:5.0f}% "
                f"{100 * attention:5.0f}% {run:7.2f} {100 * split.overhead / run:12.0f}%"
            )
    print("\narticle (Table 1): " + ", ".join(f"TP{tp} compute {c}% comm {m}%" for tp, (c, m) in ARTICLE.items()))
    print("                   attention under 10 % at every TP")
    return 0


if __name__ == "__main__":
    sys.exit(main())
