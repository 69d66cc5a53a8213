#!/usr/bin/env python3
"""Writes the Grafana dashboard the chart ships (charts/rightsizer/dashboards/rightsizer.json, off by default:
`dashboard.enabled`). One deployment at a time (the `namespace` and `name` variables): p95 TTFT and ITL observed,
predicted at the observed load and targeted; replicas desired, ready and per pool; arrivals against capacity; the
waiting queue and KV-cache use; GPUs and cost; the model's error; and the autoscaler's replica changes with the
kind of reason as annotations. Every query reads the operator's own series (docs/operator.md, Metrics), so the
panels show what status shows; tests/integration/test_autoscaling.py runs each query against a real Prometheus.

    python hack/dashboard.py          # rewrite the JSON
    python hack/dashboard.py --check  # exit 1 if it is not what this script writes
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "charts" / "rightsizer" / "dashboards" / "rightsizer.json"
UID = "rightsizer-llmdeployment"
ONE = '{namespace="$namespace", name="$name"}'


def selector(**extra: str) -> str:
    labels = ['namespace="$namespace"', 'name="$name"', *(f'{k}="{v}"' for k, v in extra.items())]
    return "{" + ", ".join(labels) + "}"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]


PANELS = (
    Panel(
        "TTFT p95: observed, predicted, target",
        "Time to first token. Observed: the last metrics window. Predicted: the calibrated model at that window's "
        "load per ready replica (absent while the load saturates a replica). Target: spec.slo.ttftP95Ms.",
        "s",
        (Query(f"rightsizer_latency_p95_seconds{selector(metric='ttft')}", "{{source}}"),),
    ),
    Panel(
        "ITL p95: observed, predicted, target",
        "Inter-token latency, as the TTFT panel.",
        "s",
        (Query(f"rightsizer_latency_p95_seconds{selector(metric='itl')}", "{{source}}"),),
    ),
    Panel(
        "Replicas",
        "Desired (status.replicas) and ready, and each pool's ready replicas (status.placement).",
        "short",
        (
            Query(f"rightsizer_replicas{ONE}", "{{state}}"),
            Query(f"rightsizer_pool_replicas{selector(state='ready')}", "{{pool}} ({{role}}) ready"),
        ),
    ),
    Panel(
        "Arrivals and capacity",
        "Requests per second arriving, and what the replicas in force serve within the SLO (calibrated model).",
        "reqps",
        (
            Query(f"rightsizer_request_rate{ONE}", "arrivals"),
            Query(f"rightsizer_capacity_requests_per_second{ONE}", "capacity within SLO"),
        ),
    ),
    Panel(
        "Waiting requests",
        "vLLM's waiting queue summed over the replicas (vllm:num_requests_waiting).",
        "short",
        (Query(f"rightsizer_requests_waiting{ONE}", "waiting"),),
    ),
    Panel(
        "KV-cache use",
        "vLLM's KV-cache use averaged over the replicas (vllm:kv_cache_usage_perc).",
        "percentunit",
        (Query(f"rightsizer_kv_cache_usage_ratio{ONE}", "KV cache"),),
    ),
    Panel(
        "GPUs",
        "GPUs the deployment's pods hold, per product (status.cost).",
        "short",
        (Query(f"rightsizer_gpus{ONE}", "{{gpu_product}}"),),
    ),
    Panel(
        "Cost",
        "Price per hour of the GPUs held, and per million output tokens at the observed load (status.cost).",
        "currencyUSD",
        (
            Query(f"rightsizer_cost_per_hour{ONE}", "$ per hour"),
            Query(f"rightsizer_cost_per_million_tokens{ONE}", "$ per million output tokens"),
        ),
    ),
    Panel(
        "Model error",
        "Observed over predicted mean latency at the observed load, before calibration (1 = exact).",
        "none",
        (Query(f"rightsizer_prediction_error_ratio{ONE}", "{{metric}}"),),
    ),
)

ANNOTATION = Query(f"increase(rightsizer_scaling_events_total{ONE}[1m]) > 0", "scaled {{direction}} on {{cause}}")
VARIABLES = (
    ("namespace", "label_values(rightsizer_replicas, namespace)"),
    ("name", 'label_values(rightsizer_replicas{namespace="$namespace"}, name)'),
)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def panel_json(index: int, panel: Panel) -> dict[str, Any]:
    width, height = 12, 8
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"x": (index % 2) * width, "y": (index // 2) * height, "w": width, "h": height},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": q.expr, "legendFormat": q.legend}
            for i, q in enumerate(panel.queries)
        ],
    }


def dashboard() -> dict[str, Any]:
    templating = [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
        *(
            {
                "name": name,
                "type": "query",
                "datasource": DATASOURCE,
                "query": {"query": query, "refId": name},
                "refresh": 2,
                "sort": 1,
            }
            for name, query in VARIABLES
        ),
    ]
    return {
        "uid": UID,
        "title": "rightsizer: LLMDeployment",
        "description": "One LLMDeployment: latency against its SLO and the model, replicas per pool, load, cost.",
        "tags": ["rightsizer", "vllm"],
        "schemaVersion": 39,
        "editable": True,
        "time": {"from": "now-3h", "to": "now"},
        "refresh": "30s",
        "templating": {"list": templating},
        "annotations": {
            "list": [
                {
                    "name": "Scaling",
                    "datasource": DATASOURCE,
                    "enable": True,
                    "expr": ANNOTATION.expr,
                    "titleFormat": ANNOTATION.legend,
                    "textFormat": "{{namespace}}/{{name}}",
                    "iconColor": "orange",
                    "step": "30s",
                }
            ]
        },
        "panels": [panel_json(i, p) for i, p in enumerate(PANELS)],
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def queries() -> list[str]:
    """Every PromQL expression of the dashboard (panels, then the annotation), with the variables unresolved."""
    return [q.expr for p in PANELS for q in p.queries] + [ANNOTATION.expr]


def main(argv: list[str]) -> int:
    if "--check" in argv:
        if not OUTPUT.exists() or OUTPUT.read_text() != render():
            print(f"{OUTPUT.relative_to(REPO)} is stale: run hack/dashboard.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT.relative_to(REPO)} ({len(PANELS)} panels)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
