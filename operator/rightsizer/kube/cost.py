"""What an LLMDeployment costs: GPUs held, their price per hour, GPU-hours over the last day, and dollars per
million output tokens at the load it carries. Pure: pods, pools and numbers in, numbers out.

GPUs are counted from the pods, not the plan: a pod holds its GPUs from the moment the scheduler binds it to a node
(spec.nodeName set) until it finishes, whether or not vLLM is Ready yet (loading weights costs the same), and a
Pending pod holds none. The product and price come from the pod's pool (its rightsizer.dev/pool label, set by the
builders): the pool's declared pricePerGpuHour (RIGHTSIZER_POOLS_FILE / the chart's `pools`), else
RIGHTSIZER_DEFAULT_PRICE_PER_GPU_HOUR (status.cost.priceSource says which).

GPU-hours over the last day integrate a step history of the GPU count (status.cost.usage: one entry per change, so a
steady deployment writes nothing), kept by `record`, up to the last full hour (so they move once an hour). The
static-at-peak counterfactual holds the day's peak GPU count for the whole covered span; what the deployment saved is
that minus what it used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rightsizer.api import constants as c
from rightsizer.api.v1alpha1.cost import CostStatus, GpuUsage, ProductGpus
from rightsizer.sizing.pools import GpuPool

GPU_RESOURCE = "nvidia.com/gpu"
DAY = timedelta(days=1)
MAX_USAGE_ENTRIES = 288  # a change every 5 minutes for a day; older changes beyond this are merged away
PRICE_DECLARED, PRICE_DEFAULT, PRICE_MIXED = "declared", "default", "mixed"


@dataclass(frozen=True)
class GpusInUse:
    by_product: dict[str, int]  # GPU product -> GPUs held by this deployment's pods
    price_per_hour: float  # the sum over pods of GPUs × their pool's price per GPU-hour
    price_source: str  # declared, default, or mixed (some pools declared a price, some did not)

    @property
    def total(self) -> int:
        return sum(self.by_product.values())


def _gpus_of(pod: Mapping[str, Any]) -> int:
    total = 0
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        amount = (resources.get("limits") or {}).get(GPU_RESOURCE) or (resources.get("requests") or {}).get(
            GPU_RESOURCE
        )
        try:
            total += int(str(amount)) if amount is not None else 0
        except ValueError:
            continue  # not a whole number: the API server refuses such GPU requests anyway
    return total


def holds_gpus(pod: Mapping[str, Any]) -> bool:
    """Bound to a node and not finished (a deleted pod still holds its GPUs until it is gone)."""
    phase = (pod.get("status") or {}).get("phase")
    return bool((pod.get("spec") or {}).get("nodeName")) and phase not in ("Succeeded", "Failed")


def gpus_in_use(pods: Sequence[Mapping[str, Any]], pools: Sequence[GpuPool], default_price: float) -> GpusInUse:
    by_name = {p.name: p for p in pools}
    by_product: dict[str, int] = {}
    price = 0.0
    sources = set()
    for pod in pods:
        gpus = _gpus_of(pod)
        if gpus == 0 or not holds_gpus(pod):
            continue
        pool = by_name.get(((pod.get("metadata") or {}).get("labels") or {}).get(c.LABEL_POOL, ""))
        product = pool.product if pool is not None else "unknown"
        by_product[product] = by_product.get(product, 0) + gpus
        declared = pool.price_per_gpu_hour if pool is not None else None
        sources.add(PRICE_DECLARED if declared is not None else PRICE_DEFAULT)
        price += gpus * (declared if declared is not None else default_price)
    source = sources.pop() if len(sources) == 1 else (PRICE_MIXED if sources else PRICE_DECLARED)
    return GpusInUse(dict(sorted(by_product.items())), round(price, 6), source)


@dataclass(frozen=True)
class Usage:
    """From `time` on, the deployment held `gpus` GPUs (until the next entry)."""

    time: datetime
    gpus: int


def record(history: Sequence[Usage], now: datetime, gpus: int) -> list[Usage]:
    """The history with the current count: an entry only when the count changes; entries that ended more than a day
    ago dropped (the one in force a day ago is kept: it covers the window's start)."""
    out = list(history)
    if not out or out[-1].gpus != gpus:
        out.append(Usage(now, gpus))
    start = now - DAY
    while len(out) >= 2 and out[1].time <= start:
        out.pop(0)
    while len(out) > MAX_USAGE_ENTRIES:  # merge the two oldest: keep the later count from the earlier time
        out[0:2] = [Usage(out[0].time, max(out[0].gpus, out[1].gpus))]
    return out


@dataclass(frozen=True)
class DayUsage:
    gpu_hours: float  # GPU-hours used over the covered span of the last day
    covered_hours: float  # how much of the last day the history covers (less for a deployment younger than a day)
    peak_gpus: int  # the largest count in that span
    saved_gpu_hours: float  # against holding the peak for the whole covered span (static provisioning at peak)


def last_day(history: Sequence[Usage], now: datetime) -> DayUsage:
    start = now - DAY
    used = 0.0
    peak = 0
    covered_from = None
    for entry, following in zip(history, [*history[1:], None], strict=True):
        begin = max(entry.time, start)
        end = min(following.time, now) if following is not None else now
        if end <= begin:
            continue
        covered_from = begin if covered_from is None else covered_from
        used += entry.gpus * (end - begin).total_seconds() / 3600
        peak = max(peak, entry.gpus)
    covered = (now - covered_from).total_seconds() / 3600 if covered_from is not None else 0.0
    return DayUsage(round(used, 4), round(covered, 4), peak, round(peak * covered - used, 4))


def dollars_per_million_tokens(price_per_hour: float, output_tokens_per_second: float | None) -> float | None:
    """At the observed load; None without tokens (idle, or no metrics): the price of no tokens is not a number."""
    if output_tokens_per_second is None or output_tokens_per_second <= 0:
        return None
    return round(price_per_hour / (output_tokens_per_second * 3600) * 1e6, 6)


def output_tokens_per_second(performance: Mapping[str, Any] | None, ready_replicas: int) -> float | None:
    """From status.performance (the autoscaler's last metrics window): arrivals per second per replica × mean output
    tokens of the finished requests (vllm:request_generation_tokens) × ready replicas. None without that window."""
    perf = performance or {}
    rate, tokens = perf.get("requestRatePerReplica"), perf.get("meanOutputTokens")
    if not isinstance(rate, int | float) or not isinstance(tokens, int | float) or ready_replicas <= 0:
        return None
    return round(float(rate) * float(tokens) * ready_replicas, 4)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _history(previous: Mapping[str, Any] | None) -> list[Usage]:
    """The usage history from the previous status.cost; entries that do not parse are dropped (status is read back
    from older operators and is not trusted to be well-formed)."""
    out = []
    for entry in (previous or {}).get("usage") or []:
        try:
            out.append(Usage(datetime.fromisoformat(str(entry["time"]).replace("Z", "+00:00")), int(entry["gpus"])))
        except (KeyError, TypeError, ValueError):
            continue
    return sorted(out, key=lambda u: u.time)


def cost_status(
    pods: Sequence[Mapping[str, Any]],
    pools: Sequence[GpuPool],
    *,
    default_price: float,
    previous: Mapping[str, Any] | None,
    performance: Mapping[str, Any] | None,
    ready_replicas: int,
    now: str,
) -> CostStatus:
    moment = datetime.fromisoformat(now.replace("Z", "+00:00"))
    use = gpus_in_use(pods, pools, default_price)
    history = record(_history(previous), moment, use.total)
    # The day's figures move with the clock; computed as of the last full hour they change (and cost a status write)
    # once an hour, not on every resync.
    as_of = moment.replace(minute=0, second=0, microsecond=0)
    day = last_day(history, as_of)
    tokens = output_tokens_per_second(performance, ready_replicas)
    return CostStatus(
        gpus=[ProductGpus(product=p, gpus=n) for p, n in use.by_product.items()],
        price_per_hour=use.price_per_hour,
        price_source=use.price_source,
        gpu_hours_last_day=day.gpu_hours,
        covered_hours=day.covered_hours,
        peak_gpus_last_day=day.peak_gpus,
        saved_gpu_hours_last_day=day.saved_gpu_hours,
        output_tokens_per_second=tokens,
        dollars_per_million_tokens=dollars_per_million_tokens(use.price_per_hour, tokens),
        usage=[GpuUsage(time=_rfc3339(u.time), gpus=u.gpus) for u in history],
        day_as_of=_rfc3339(as_of),
    )
