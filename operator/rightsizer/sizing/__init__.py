"""Sizing: every GPU pool × parallelism vLLM accepts, sized with vLLM's own memory accounting (model.memory), the
cheapest plan that serves the declared workload within spec.slo, and a reason for every choice.

Modules: request (what sizing works on), search (shapes -> candidates, ranked), performance (the default
PerformanceHook over the perf model), explain (candidate -> Plan with reasons), planner (plan(): the entry point and
its refusals), pools (GPU pools), vllm_args (the server command line). Pure.
"""

from rightsizer.sizing.explain import to_plan
from rightsizer.sizing.planner import plan
from rightsizer.sizing.request import MEMORY_ONLY, Candidate, PerformanceHook, Rejection, SearchResult, SizingRequest
from rightsizer.sizing.search import search

__all__ = [
    "MEMORY_ONLY",
    "Candidate",
    "PerformanceHook",
    "Rejection",
    "SearchResult",
    "SizingRequest",
    "plan",
    "search",
    "to_plan",
]
