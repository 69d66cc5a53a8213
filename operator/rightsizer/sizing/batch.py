"""vLLM's scheduler limits for a plan: --max-num-seqs and --max-num-batched-tokens from the release's server
defaults, spec.serving's pins and vLLM's own checks of them, and the lowering that makes a plan feasible when the
activation peak the defaults cause leaves no room for one request.

vLLM's rules (vllm/config/scheduler.py `SchedulerConfig.verify_max_model_len`, v0.19.0; the same since 0.10):
  max_num_batched_tokens >= max_num_seqs, always ("must be greater than or equal to max_num_seqs");
  max_num_batched_tokens >= max_model_len unless chunked prefill is on (on by default in V1 for every generative
  model: vllm/config/model.py `is_chunked_prefill_supported`; off only with --no-enable-chunked-prefill).
When max_num_seqs is left to vLLM it is capped at max_num_batched_tokens, and when chunked prefill is off the
batched-token default is raised to max_model_len (vllm/engine/arg_utils.py
`_set_default_max_num_seqs_and_batched_tokens_args`): the defaults below follow the same steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from rightsizer.api.v1alpha1.llmdeployment import Serving
from rightsizer.errors import SizingError
from rightsizer.facts.vllm_profiles import SchedulerTier

# vLLM's own smallest batched-token default (SchedulerConfig.DEFAULT_MAX_NUM_BATCHED_TOKENS, and the server default
# on GPUs under 70 GiB). Lowering further frees little memory (the forward pass's share of the activation peak is a
# few hundred MiB at 2048 tokens) while every prompt is prefilled in ever smaller chunks, so the search stops here.
LOWEST_BATCHED_TOKENS = 2048


TOKEN_STEP = 256


@dataclass(frozen=True)
class BatchLimits:
    max_num_seqs: int
    max_num_batched_tokens: int


@dataclass(frozen=True)
class BatchRules:
    """What bounds the limits of every plan of one request: the pins and whether chunked prefill is on."""

    pinned_seqs: int | None
    pinned_tokens: int | None
    max_model_len: int
    chunked_prefill: bool

    def defaults(self, tier: SchedulerTier) -> BatchLimits:
        """The limits a plan starts from on a GPU of `tier`: the pins, else what vLLM itself would pick."""
        tokens = self.pinned_tokens
        if tokens is None:
            tokens = tier.max_num_batched_tokens
            if not self.chunked_prefill:
                tokens = max(tokens, self.max_model_len)
            # rightsizer always passes the batched-token budget, so it can keep a pinned max_num_seqs valid
            # (vLLM's own default would be refused below a larger pinned max_num_seqs).
            tokens = max(tokens, self.pinned_seqs or 0)
        seqs = self.pinned_seqs if self.pinned_seqs is not None else min(tier.max_num_seqs, tokens)
        return BatchLimits(seqs, tokens)

    def lowest_tokens(self, tier: SchedulerTier) -> int:
        """The smallest batched-token budget the feasibility search may lower to."""
        if self.pinned_tokens is not None:
            return self.pinned_tokens
        floor = min(LOWEST_BATCHED_TOKENS, tier.max_num_batched_tokens)
        if not self.chunked_prefill:
            floor = max(floor, self.max_model_len)
        return max(floor, self.pinned_seqs or 1)

    def least(self, tier: SchedulerTier) -> BatchLimits:
        """The smallest limits a plan may run with: one sequence (or the pinned count), the lowest token budget."""
        return BatchLimits(self.pinned_seqs or 1, self.lowest_tokens(tier))

    @property
    def pinned(self) -> bool:
        return self.pinned_seqs is not None or self.pinned_tokens is not None

    def unpinned(self) -> BatchRules:
        return replace(self, pinned_seqs=None, pinned_tokens=None)


def batch_rules(serving: Serving, max_model_len: int, chunked_prefill: bool) -> BatchRules:
    """The pins of spec.serving checked as vLLM checks them at start-up (SizingError naming the field if refused)."""
    seqs, tokens = serving.max_num_seqs, serving.max_num_batched_tokens
    if seqs is not None and tokens is not None and tokens < seqs:
        raise SizingError(
            "spec.serving.maxNumBatchedTokens",
            f"vLLM refuses it: max_num_batched_tokens ({tokens}) must be greater than or equal to max_num_seqs "
            f"({seqs}) (spec.serving.maxNumSeqs)",
            f"raise spec.serving.maxNumBatchedTokens to {seqs} or more, or lower spec.serving.maxNumSeqs",
        )
    if tokens is not None and tokens < max_model_len and not chunked_prefill:
        raise SizingError(
            "spec.serving.maxNumBatchedTokens",
            f"vLLM refuses it: max_num_batched_tokens ({tokens}) is smaller than max_model_len ({max_model_len}) "
            "with chunked prefill disabled (--no-enable-chunked-prefill in spec.serving.engine.extraArgs)",
            f"raise spec.serving.maxNumBatchedTokens to {max_model_len} or more, lower spec.serving.maxModelLen, "
            "or keep chunked prefill on",
        )
    return BatchRules(seqs, tokens, max_model_len, chunked_prefill)


def _largest(low: int, high: int, ok: Callable[[int], bool]) -> int | None:
    """The largest value in [low, high] for which `ok` holds, `ok` being monotone (true up to some value)."""
    if high < low or not ok(low):
        return None
    while low < high:
        mid = (low + high + 1) // 2
        if ok(mid):
            low = mid
        else:
            high = mid - 1
    return low


def lower_to_fit(
    start: BatchLimits, rules: BatchRules, tier: SchedulerTier, fits: Callable[[BatchLimits], bool]
) -> BatchLimits | None:
    """The largest limits at or below `start` for which `fits` holds (one max_model_len request fits in the KV
    cache once the activation peak is paid), changing only what is not pinned; None when even one sequence with
    the smallest batched-token budget does not fit.

    max_num_seqs goes first: it sets the sampler's peak (max_num_seqs x vocabulary logits), the term that
    overflows for large vocabularies. Only when one sequence still does not fit does the batched-token budget
    (the forward pass's peak) come down, and then max_num_seqs is raised again as far as the room allows."""
    tokens = start.max_num_batched_tokens
    if rules.pinned_seqs is None:
        seqs = _largest(1, start.max_num_seqs, lambda n: fits(BatchLimits(n, tokens)))
        if seqs is not None:
            return BatchLimits(seqs, tokens)
    elif fits(start):
        return start
    if rules.pinned_tokens is not None:
        return None
    least_seqs = rules.pinned_seqs or 1
    floor = rules.lowest_tokens(tier)
    # In steps of TOKEN_STEP above the floor: a budget of 5120 rather than 5173 costs a few MiB and reads as chosen.
    steps = _largest(
        0, (tokens - 1 - floor) // TOKEN_STEP, lambda k: fits(BatchLimits(least_seqs, floor + k * TOKEN_STEP))
    )
    if steps is None:
        return None
    lowered = floor + steps * TOKEN_STEP
    if rules.pinned_seqs is not None:
        return BatchLimits(rules.pinned_seqs, lowered)
    seqs = _largest(1, min(start.max_num_seqs, lowered), lambda n: fits(BatchLimits(n, lowered)))
    assert seqs is not None  # one sequence fits at `lowered`: that is how it was found
    return BatchLimits(seqs, lowered)
