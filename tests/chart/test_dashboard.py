"""The Grafana dashboard the chart ships: generated (hack/dashboard.py), off by default, labelled for the Grafana
sidecar, and reading only series the operator exports. That every query returns data, and the values status shows,
is checked against a real Prometheus in tests/integration/test_autoscaling.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

from hack import dashboard, dashboard_picture
from rightsizer.controller import metrics  # noqa: F401  (registers the operator's series)
from tests.chart.render import objects


def test_the_json_is_what_the_generator_writes() -> None:
    assert dashboard.OUTPUT.read_text() == dashboard.render(), "run hack/dashboard.py"


def test_every_query_reads_a_series_the_operator_exports() -> None:
    exported = {m.name for m in REGISTRY.collect() if m.name.startswith("rightsizer_")}
    used = {name for q in dashboard.queries() for name in re.findall(r"\brightsizer_[a-z0-9_]+", q)}
    # prometheus_client names a counter family without its _total suffix
    assert {name.removesuffix("_total") for name in used} <= exported, used
    assert len(used) >= 10


def test_off_by_default_and_a_sidecar_configmap_when_enabled() -> None:
    assert not [key for key in objects() if key[0] == "ConfigMap" and key[1].endswith("-dashboard")]
    enabled = objects({"metrics": {"dashboard": {"enabled": True, "annotations": {"grafana_folder": "LLM"}}}})
    config_map = enabled[("ConfigMap", "rightsizer-dashboard")]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "LLM"}
    assert json.loads(config_map["data"]["rightsizer.json"]) == dashboard.dashboard()
    disabled = objects({"metrics": {"enabled": False, "dashboard": {"enabled": True}}})
    assert ("ConfigMap", "rightsizer-dashboard") not in disabled  # no metrics, nothing to draw


def test_the_picture_labels_series_as_the_dashboard_does(tmp_path: Path) -> None:
    assert dashboard_picture.legend("{{pool}} ({{role}}) ready", {"pool": "h200", "role": "primary"}) == (
        "h200 (primary) ready"
    )
    series = [{"metric": {"source": "observed"}, "values": [[100.0, "0.5"], [102.0, "0.7"]]}]
    dump = {"panels": {"TTFT": [{"legend": "{{source}}", "series": series}]}, "units": {"TTFT": "s"}}
    dashboard_picture.draw(dump, tmp_path / "d.png")
    assert (tmp_path / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
