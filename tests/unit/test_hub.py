"""config.json from a server with the Hugging Face Hub's URL layout: a real local HTTP server, not a patched client."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rightsizer.adapters.hub import HubClient
from rightsizer.errors import ModelConfigError
from rightsizer.facts import catalog

TOKEN = "hf_test_token"
# hf_quant_config.json as NVIDIA ModelOpt (< 0.31) writes it beside config.json, e.g. nvidia/Qwen3-235B-A22B-NVFP4.
HF_QUANT_CONFIG = {
    "producer": {"name": "modelopt", "version": "0.29.0"},
    "quantization": {
        "quant_algo": "NVFP4",
        "kv_cache_quant_algo": None,
        "group_size": 16,
        "exclude_modules": ["lm_head"],
    },
}
CONFIG = catalog.lookup("meta-llama/Llama-3.1-8B-Instruct")


class HubHandler(BaseHTTPRequestHandler):
    requests: list[str] = []  # noqa: RUF012 - shared log, inspected by the tests

    def do_GET(self) -> None:
        HubHandler.requests.append(self.path)
        if self.path == "/acme/tiny/resolve/main/config.json":
            self._json(200, CONFIG)
        elif self.path == "/acme/tiny/resolve/v2/config.json":
            self._json(200, {**(CONFIG or {}), "num_hidden_layers": 16})
        elif self.path == "/acme/gated/resolve/main/config.json":
            if self.headers.get("Authorization") == f"Bearer {TOKEN}":
                self._json(200, CONFIG)
            else:
                self._json(401, {"error": "Access to model acme/gated is restricted."})
        elif self.path == "/nvidia/qwen3-nvfp4/resolve/main/config.json":
            self._json(200, catalog.lookup("Qwen/Qwen3-235B-A22B"))
        elif self.path == "/nvidia/qwen3-nvfp4/resolve/main/hf_quant_config.json":
            self._json(200, HF_QUANT_CONFIG)
        elif self.path == "/acme/huge/resolve/main/config.json":
            self.send_response(200)  # no Content-Length: the client must stop reading on its own
            self.end_headers()
            self.wfile.write(b'{"pad": "' + b"x" * 200_000 + b'"}')
        elif self.path == "/acme/garbage/resolve/main/config.json":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<html>not json</html>")
        else:
            self._json(404, {"error": "Entry not found"})

    def _json(self, status: int, body: object) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def hub_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), HubHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_downloads_and_caches(hub_url: str, tmp_path: Path) -> None:
    client = HubClient(endpoint=hub_url, cache_dir=tmp_path)
    HubHandler.requests.clear()
    assert client.config("acme/tiny")["num_hidden_layers"] == 32
    assert client.config("acme/tiny")["num_hidden_layers"] == 32
    assert HubHandler.requests == ["/acme/tiny/resolve/main/config.json"]  # the second read came from the cache


def test_revision_is_part_of_the_url_and_the_cache_key(hub_url: str, tmp_path: Path) -> None:
    client = HubClient(endpoint=hub_url, cache_dir=tmp_path)
    assert client.config("acme/tiny", "v2")["num_hidden_layers"] == 16
    assert client.config("acme/tiny")["num_hidden_layers"] == 32


def test_gated_model_needs_a_token(hub_url: str, tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError, match="gated or private"):
        HubClient(endpoint=hub_url, cache_dir=tmp_path).config("acme/gated")
    assert HubClient(endpoint=hub_url, cache_dir=tmp_path, token=TOKEN).config("acme/gated")["hidden_size"] == 4096


def test_missing_and_garbage(hub_url: str, tmp_path: Path) -> None:
    client = HubClient(endpoint=hub_url, cache_dir=tmp_path)
    with pytest.raises(ModelConfigError, match=r"has no config\.json"):
        client.config("acme/missing")
    with pytest.raises(ModelConfigError, match="not JSON"):
        client.config("acme/garbage")


def test_offline_hub_is_a_clear_error(tmp_path: Path) -> None:
    client = HubClient(endpoint="http://127.0.0.1:9", cache_dir=tmp_path, timeout_seconds=2)
    with pytest.raises(ModelConfigError, match="cannot reach"):
        client.config("acme/tiny")


def test_cli_plans_a_model_from_the_hub(
    hub_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rightsizer.cli.main import main

    monkeypatch.setenv("HF_ENDPOINT", hub_url)
    monkeypatch.setenv("RIGHTSIZER_CONFIG_CACHE", str(tmp_path / "cache"))
    manifest = tmp_path / "m.yaml"
    manifest.write_text("kind: LLMDeployment\nmetadata: {name: t}\nspec:\n  model: {name: acme/tiny}\n")
    assert main(["plan", "-f", str(manifest), "-o", "json", "--gpu", "H100"]) == 0
    assert json.loads(capsys.readouterr().out)["plan"]["gpuProduct"] == "NVIDIA-H100-80GB-HBM3"


@pytest.mark.parametrize(
    ("repo", "revision", "field"),
    [
        ("../../etc/passwd", None, "spec.model.name"),
        ("acme/../other", None, "spec.model.name"),
        ("acme/tiny/resolve/main/x", None, "spec.model.name"),
        ("acme/tiny", "../../other/resolve/main", "spec.model.revision"),
        ("acme/tiny", "main/../v2", "spec.model.revision"),
        ("acme/tiny", "a?b", "spec.model.revision"),
    ],
)
def test_hub_paths_are_built_only_from_validated_names(
    hub_url: str, tmp_path: Path, repo: str, revision: str | None, field: str
) -> None:
    HubHandler.requests.clear()
    with pytest.raises(ModelConfigError, match=field):
        HubClient(endpoint=hub_url, cache_dir=tmp_path).config(repo, revision)
    assert HubHandler.requests == []


def test_a_revision_with_slashes_is_quoted_into_one_path_segment(hub_url: str, tmp_path: Path) -> None:
    HubHandler.requests.clear()
    with pytest.raises(ModelConfigError, match=r"has no config\.json"):
        HubClient(endpoint=hub_url, cache_dir=tmp_path).config("acme/tiny", "refs/pr/1")
    assert HubHandler.requests == ["/acme/tiny/resolve/refs%2Fpr%2F1/config.json"]


def test_download_stops_at_the_size_cap(hub_url: str, tmp_path: Path) -> None:
    client = HubClient(endpoint=hub_url, cache_dir=tmp_path, max_bytes=64 * 1024)
    with pytest.raises(ModelConfigError, match="larger than the 65536 bytes"):
        client.config("acme/huge")
    assert not list(tmp_path.iterdir())  # nothing cached


def test_hf_quant_config_beside_config_json_is_merged(hub_url: str, tmp_path: Path) -> None:
    from rightsizer.adapters.modelsource import resolve
    from rightsizer.api.v1alpha1.llmdeployment import ModelSource
    from rightsizer.model.config import WeightFormat

    hub = HubClient(endpoint=hub_url, cache_dir=tmp_path)
    resolved = resolve(ModelSource(name="nvidia/qwen3-nvfp4"), hub=hub)
    assert resolved.facts.quantization is not None and resolved.facts.quantization.format == WeightFormat.NVFP4
    assert resolved.config["quantization_config"] == HF_QUANT_CONFIG
    # A repository without the file has none (a 404 for it is not an error), and the answer is cached.
    HubHandler.requests.clear()
    assert hub.hf_quant_config("acme/tiny") is None
    assert hub.hf_quant_config("acme/tiny") is None
    assert HubHandler.requests == ["/acme/tiny/resolve/main/hf_quant_config.json"]


def test_the_operator_never_lends_its_own_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """HF_TOKEN in the operator's environment is not used for tenants (before, a tenant without a token read gated
    models with it); the command line, where the token is the user's own, keeps it."""
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert HubClient.from_env(platform_token=False).token is None
    assert HubClient.from_env().token == TOKEN


def test_what_a_token_fetched_is_cached_for_that_namespace_and_token_only(hub_url: str, tmp_path: Path) -> None:
    """team-a's token reads a gated config; team-b, and team-a without the token, do not get it from the cache
    (before, the cache key was endpoint, repository and revision only)."""
    client = HubClient(endpoint=hub_url, cache_dir=tmp_path)
    assert client.config("acme/gated", token=TOKEN, scope="team-a")["hidden_size"] == 4096
    HubHandler.requests.clear()
    assert client.config("acme/gated", token=TOKEN, scope="team-a")["hidden_size"] == 4096
    assert HubHandler.requests == []  # cached for team-a with that token
    with pytest.raises(ModelConfigError, match="gated or private"):
        client.config("acme/gated", scope="team-b")
    with pytest.raises(ModelConfigError, match="gated or private"):
        client.config("acme/gated", scope="team-a")
    with pytest.raises(ModelConfigError, match="gated or private"):
        client.config("acme/gated", token="hf_other", scope="team-b")


def test_the_reconciler_asks_the_hub_with_the_namespaces_own_token(hub_url: str, tmp_path: Path) -> None:
    from rightsizer.adapters.settings import OperatorSettings
    from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
    from rightsizer.controller.reconcile import Reconciler
    from tests.unit.fake_kube import FakeKube

    kube = FakeKube(secrets={("team-a", "hf-token"): {"token": TOKEN}})
    reconciler = Reconciler(kube, OperatorSettings(), HubClient(endpoint=hub_url, cache_dir=tmp_path))
    with_token = LLMDeploymentSpec.model_validate(
        {"model": {"name": "acme/gated"}, "serving": {"hfTokenSecretRef": {"name": "hf-token", "key": "token"}}}
    )
    assert reconciler.resolve_model("team-a", with_token).config["hidden_size"] == 4096
    assert kube.reads == [("Secret", "team-a", "hf-token")]
    with pytest.raises(ModelConfigError, match="gated or private"):
        reconciler.resolve_model("team-b", with_token)  # team-b has no such Secret: no token, no cached copy
    kube.reads.clear()
    with pytest.raises(ModelConfigError, match="gated or private"):
        reconciler.resolve_model("team-a", with_token, reads=False)  # admission: no Secret read, no token
    assert kube.reads == []
