"""Fetch a model's config.json from the Hugging Face Hub (or any server with the Hub's URL layout).

    GET {endpoint}/{repo_id}/resolve/{revision}/config.json      (Authorization: Bearer <token> for gated repos)

Responses are cached on disk keyed by endpoint, repository and revision, so a restarted operator does not depend on
the Hub being up. Errors say what to do: offline, gated, missing, or not JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from rightsizer.errors import ModelConfigError

DEFAULT_ENDPOINT = "https://huggingface.co"
FIELD = "spec.model.name"


@dataclass(frozen=True)
class HubClient:
    endpoint: str = DEFAULT_ENDPOINT
    token: str | None = None
    cache_dir: Path | None = None
    timeout_seconds: float = 10.0

    @classmethod
    def from_env(cls) -> HubClient:
        """HF_ENDPOINT, HF_TOKEN (or HUGGING_FACE_HUB_TOKEN) and RIGHTSIZER_CONFIG_CACHE, as the Hub tools read them."""
        cache = os.environ.get("RIGHTSIZER_CONFIG_CACHE")
        default_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rightsizer" / "configs"
        return cls(
            endpoint=os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/"),
            token=os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"),
            cache_dir=Path(cache) if cache else default_cache,
        )

    def _cache_path(self, repo: str, revision: str) -> Path | None:
        if self.cache_dir is None:
            return None
        key = hashlib.sha256(f"{self.endpoint}|{repo}|{revision}".encode()).hexdigest()[:32]
        return self.cache_dir / f"{key}.json"

    def config(self, repo: str, revision: str | None = None, token: str | None = None) -> dict[str, Any]:
        revision = revision or "main"
        cached = self._cache_path(repo, revision)
        if cached is not None and cached.exists():
            data: dict[str, Any] = json.loads(cached.read_text())
            return data
        data = self._download(repo, revision, token or self.token)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            tmp.replace(cached)
        return data

    def _download(self, repo: str, revision: str, token: str | None) -> dict[str, Any]:
        url = f"{self.endpoint}/{repo}/resolve/{revision}/config.json"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = httpx.get(url, headers=headers, timeout=self.timeout_seconds, follow_redirects=True)
        except httpx.HTTPError as err:
            raise ModelConfigError(
                FIELD,
                f"cannot reach {self.endpoint} to read {repo}'s config.json ({type(err).__name__})",
                "check network access to the Hub, or put the config inline (spec.model.config) or in a ConfigMap "
                "(spec.model.configMapRef)",
            ) from None
        if response.status_code in (401, 403):
            raise ModelConfigError(
                FIELD,
                f"{repo} is gated or private ({response.status_code})",
                "accept its license on the Hub and provide a token (spec.serving.hfTokenSecretRef or HF_TOKEN)",
            )
        if response.status_code == 404:
            raise ModelConfigError(
                FIELD,
                f"{repo} at revision {revision} has no config.json on {self.endpoint}",
                "check the repository id and spec.model.revision",
            )
        if response.status_code != 200:
            raise ModelConfigError(
                FIELD,
                f"{self.endpoint} answered {response.status_code} for {repo}/config.json",
                "retry later, or provide the config inline",
            )
        try:
            data = response.json()
        except ValueError:
            raise ModelConfigError(FIELD, f"{repo}/config.json from {self.endpoint} is not JSON") from None
        if not isinstance(data, dict):
            raise ModelConfigError(FIELD, f"{repo}/config.json is not a JSON object")
        return data
