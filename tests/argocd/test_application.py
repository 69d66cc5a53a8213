"""The example Argo CD Applications point at what exists and ignore exactly what rightsizer writes."""

from __future__ import annotations

import yaml

from tests.argocd.health import REPO

APPLICATION = REPO / "manifests" / "argocd" / "application.yaml"


def test_the_rightsizer_application_installs_this_chart_and_ignores_the_ca_bundle() -> None:
    apps = {d["metadata"]["name"]: d for d in yaml.safe_load_all(APPLICATION.read_text()) if d}
    rightsizer = apps["rightsizer"]["spec"]
    assert (REPO / rightsizer["source"]["path"] / "Chart.yaml").exists()
    ignored = {(i["kind"], tuple(i["jqPathExpressions"])) for i in rightsizer["ignoreDifferences"]}
    assert ignored == {
        ("MutatingWebhookConfiguration", (".webhooks[]?.clientConfig.caBundle",)),
        ("ValidatingWebhookConfiguration", (".webhooks[]?.clientConfig.caBundle",)),
    }
    assert "RespectIgnoreDifferences=true" in rightsizer["syncPolicy"]["syncOptions"]
    models = apps["team-a-models"]["spec"]
    assert models["ignoreDifferences"] == [
        {"group": "rightsizer.dev", "kind": "LLMDeployment", "jsonPointers": ["/spec/replicas/desired"]}
    ]


def test_the_example_values_are_chart_values() -> None:
    from tests.chart.render import objects

    apps = {d["metadata"]["name"]: d for d in yaml.safe_load_all(APPLICATION.read_text()) if d}
    rendered = objects(apps["rightsizer"]["spec"]["source"]["helm"]["valuesObject"])
    assert ("StatefulSet", "rightsizer") in rendered and ("ConfigMap", "rightsizer-pools") in rendered
