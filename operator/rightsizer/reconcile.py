"""One reconcile of one LLMDeployment: parse -> resolve the model -> size -> build -> write what differs -> status.

Level-based and idempotent: it reads only the object, the observed children/pods/nodes (from kopf's indexes, so no
API reads) and the clock, and it writes nothing when nothing differs. A spec that cannot be satisfied becomes a
status condition; the running children are then left exactly as they are.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from rightsizer import metrics
from rightsizer.actions import Apply, ChildKey, Delete, plan_actions
from rightsizer.api import constants as c
from rightsizer.api.v1alpha1.llmdeployment import LLMDeployment, LLMDeploymentSpec
from rightsizer.api.v1alpha1.plan import Plan
from rightsizer.builders.children import desired_children
from rightsizer.builders.context import BuildContext, BuildOptions
from rightsizer.discovery import discover, merge
from rightsizer.errors import ModelConfigError, RightsizerError, SizingError
from rightsizer.hub import HubClient
from rightsizer.k8s import Kube, MissingApiError
from rightsizer.modelsource import resolve
from rightsizer.pools import GpuPool
from rightsizer.settings import OperatorSettings
from rightsizer.sizing import SizingRequest, plan
from rightsizer.status import StatusInputs, observe, status_fields

log = logging.getLogger(__name__)
JSON = Mapping[str, Any]


@dataclass(frozen=True)
class Event:
    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Outcome:
    """What this reconcile decided: the plan in force, the error that stopped sizing, the replica count."""

    plan: Plan | None
    error: tuple[str, str] | None
    replicas: int


@dataclass
class Observed:
    """What kopf's indexes know about the cluster, for one LLMDeployment."""

    children: dict[ChildKey, JSON] = field(default_factory=dict)
    pods: list[JSON] = field(default_factory=list)
    nodes: list[JSON] = field(default_factory=list)


def now_rfc3339() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class PlanCache:
    """Plans are pure functions of (spec, model config, pools): remember the last few hundred."""

    def __init__(self, size: int = 512) -> None:
        self._entries: OrderedDict[str, Plan] = OrderedDict()
        self._size = size

    def get_or_compute(self, key: str, compute: Callable[[], Plan]) -> Plan:
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        value = compute()
        self._entries[key] = value
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return value


def _pool_key(pools: Sequence[GpuPool]) -> list[Any]:
    return [
        (p.name, p.product, p.gpus_per_node, p.max_nodes, p.price_per_gpu_hour, sorted(p.node_selector.items()))
        for p in pools
    ]


def desired_replicas(spec: LLMDeploymentSpec, planned: Plan | None) -> int:
    """spec.replicas.desired (set by /scale or the autoscaler) within min..max; else what the workload needs."""
    replicas = spec.replicas
    wanted = replicas.desired if replicas.desired is not None else (planned.replicas if planned else replicas.min)
    return max(replicas.min, min(wanted, replicas.upper))


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        settings: OperatorSettings,
        hub: HubClient | None = None,
        clock: Callable[[], str] = now_rfc3339,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.hub = hub
        self.clock = clock
        self.plans = PlanCache()
        self.declared_pools: list[GpuPool] = []
        self.options = BuildOptions(
            image_repository=settings.image_repository,
            startup_base_seconds=settings.startup_base_seconds,
            startup_seconds_per_weight_gib=settings.startup_seconds_per_weight_gib,
            shm_size=settings.shm_size,
        )

    def pools(self, nodes: Sequence[JSON]) -> list[GpuPool]:
        return merge(discover(nodes, self.settings.pool_label_keys), self.declared_pools)

    def _plan(self, name: str, namespace: str, spec: LLMDeploymentSpec, pools: list[GpuPool]) -> Plan:
        def read_config_map(cm: str, key: str) -> str:
            return self.kube.read_config_map_key(namespace, cm, key)

        token = None
        if spec.serving.hf_token_secret_ref is not None and spec.model.config is None:
            ref = spec.serving.hf_token_secret_ref
            token = self.kube.read_secret_key(namespace, ref.name, ref.key)
        resolved = resolve(spec.model, read_config_map=read_config_map, hub=self.hub, hub_token=token)
        key = json.dumps([spec.to_wire(), resolved.config, _pool_key(pools)], sort_keys=True, default=str)
        return self.plans.get_or_compute(key, lambda: plan(SizingRequest(spec, resolved.facts, pools), spec.model.name))

    def reconcile(self, body: JSON, observed: Observed) -> list[Event]:
        meta = body.get("metadata", {})
        name, namespace = str(meta["name"]), str(meta["namespace"])
        previous_status = body.get("status") or {}
        events: list[Event] = []
        try:
            llmd = LLMDeployment.model_validate(dict(body))
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            return self._write_status(
                body, observed, Outcome(None, ("InvalidSpec", f"{where}: {first['msg']}"), 0), events
            )

        spec = llmd.spec
        sizing_error: tuple[str, str] | None = None
        planned: Plan | None = None
        try:
            planned = self._plan(name, namespace, spec, self.pools(observed.nodes))
        except ModelConfigError as err:
            sizing_error = ("ModelConfigUnavailable", err.one_line())
        except SizingError as err:
            sizing_error = ("NoFeasiblePlan", err.one_line())
        except RightsizerError as err:
            sizing_error = ("InvalidSpec", err.one_line())

        previous_plan = previous_status.get("plan")
        if sizing_error is not None:
            metrics.SIZING_FAILURES.labels(sizing_error[0]).inc()
            if (previous_status.get("conditions") or [{}])[0].get("message") != sizing_error[1]:
                events.append(Event("Warning", sizing_error[0], sizing_error[1]))
            kept = Plan.model_validate(previous_plan) if previous_plan else None
            replicas = int(previous_status.get("replicas") or 0)
            return self._write_status(body, observed, Outcome(kept, sizing_error, replicas), events)
        assert planned is not None

        if previous_plan != planned.to_wire():
            metrics.PLANS.labels(planned.gpu_product).inc()
            events.append(
                Event(
                    "Normal",
                    "Planned",
                    f"{planned.gpus_per_replica} × {planned.gpu_product} per replica, TP "
                    f"{planned.tensor_parallel_size} PP {planned.pipeline_parallel_size}, max-num-seqs "
                    f"{planned.max_num_seqs}, max-model-len {planned.max_model_len}",
                )
            )
        replicas = desired_replicas(spec, planned)
        pool = next(p for p in self.pools(observed.nodes) if p.name == planned.pool)
        ctx = BuildContext(name, namespace, str(meta["uid"]), spec, planned, pool, replicas, self.options)
        try:
            events += self._apply(desired_children(ctx), observed)
        except MissingApiError as err:
            error = ("MissingAPI", f"{err}; install it to serve plans that span nodes")
            return self._write_status(body, observed, Outcome(planned, error, replicas), events)
        return self._write_status(body, observed, Outcome(planned, None, replicas), events)

    def _apply(self, desired: Sequence[JSON], observed: Observed) -> list[Event]:
        events = []
        for action in plan_actions(desired, observed.children):
            if isinstance(action, Apply):
                applied = self.kube.apply(action.obj)
                observed.children[(str(action.obj["kind"]), str(action.obj["metadata"]["name"]))] = applied
                events.append(
                    Event(
                        "Normal",
                        action.why.capitalize(),
                        f"{action.obj['kind']} {action.obj['metadata']['name']} {action.why}",
                    )
                )
            elif isinstance(action, Delete):
                self.kube.delete(action.api_version, action.kind, action.namespace, action.name)
                observed.children.pop((action.kind, action.name), None)
                events.append(Event("Normal", "Deleted", f"{action.kind} {action.name} no longer needed"))
        return events

    def _write_status(self, body: JSON, observed: Observed, outcome: Outcome, events: list[Event]) -> list[Event]:
        meta = body["metadata"]
        workload = next(
            (obj for (kind, _), obj in observed.children.items() if kind in ("Deployment", "LeaderWorkerSet")), None
        )
        previous = body.get("status") or {}
        from rightsizer.api.v1alpha1.common import Condition

        previous_conditions = [Condition.model_validate(x) for x in previous.get("conditions") or []]
        selector = ",".join(
            f"{k}={v}"
            for k, v in sorted(
                {
                    c.LABEL_NAME: c.APP_NAME,
                    c.LABEL_INSTANCE: str(meta["name"]),
                    c.LABEL_MANAGED_BY: c.MANAGED_BY,
                }.items()
            )
        )
        inputs = StatusInputs(
            generation=int(meta.get("generation", 0)),
            now=self.clock(),
            plan=outcome.plan,
            sizing_error=outcome.error,
            policy_violation=None,
            observation=observe(workload, observed.pods, outcome.replicas),
            replicas=outcome.replicas,
            selector=selector,
            previous_conditions=previous_conditions,
        )
        status = status_fields(inputs)
        if {k: v for k, v in status.items()} != {k: v for k, v in previous.items() if k in status or k == "plan"}:
            self.kube.patch_status(
                c.API_VERSION,
                c.LLMD_KIND,
                str(meta["namespace"]),
                str(meta["name"]),
                {**status, "plan": status.get("plan")},
            )
        return events
