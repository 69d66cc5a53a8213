"""Fetch a model's config.json (and ModelOpt's hf_quant_config.json) from the Hugging Face Hub, or any server with
the Hub's URL layout.

    GET {endpoint}/{repo_id}/resolve/{revision}/{file}      (Authorization: Bearer <token> for gated repos)

The repository id and revision are tenant input: both are validated (the Hub's own naming rules, no `..`) and the
revision is URL-quoted, so a spec cannot steer the request to another path. Downloads are streamed and stop at the
config size limit (model/limits.py). Responses are cached on disk keyed by endpoint, repository, revision and file,
so a restarted operator does not depend on the Hub being up. Errors say what to do: offline, gated, missing, too
large, or not JSON.

Tokens. The operator asks the Hub with the token of the LLMDeployment's own namespace (its hfTokenSecretRef) or
with none: it never lends a token of its own (`from_env(platform_token=False)`), so a tenant without a token
cannot read a gated model through the platform's account. What a token fetched is cached under that namespace and
a digest of that token, so another namespace (or the same one without the token) never reads it from the cache;
anonymous fetches share one entry (they hold only what anyone may download).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from rightsizer.errors import ModelConfigError
from rightsizer.model.limits import MAX_CONFIG_BYTES

DEFAULT_ENDPOINT = "https://huggingface.co"
FIELD = "spec.model.name"
CONFIG_FILE = "config.json"
HF_QUANT_CONFIG_FILE = "hf_quant_config.json"  # NVIDIA ModelOpt < 0.31 keeps the quantization settings here

# huggingface_hub's validate_repo_id: an optional namespace and a name of letters, digits, '-', '_' and '.', at most
# 96 characters each, not starting or ending with '-' or '.', with no '--' or '..'.
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?"
_REPO_ID = re.compile(rf"^(?:{_NAME}/)?{_NAME}$")
# Branches, tags, commits and refs/pr/N: git ref characters, no '..', no leading '/'.
_REVISION = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+/-]{0,254}$")


def validate_repo_id(repo: str) -> None:
    if not _REPO_ID.match(repo) or ".." in repo or "--" in repo:
        raise ModelConfigError(
            FIELD,
            f"{repo[:100]!r} is not a Hugging Face repository id",
            "use owner/name with letters, digits, '-', '_' and '.' (no '..' or '--')",
        )


def validate_revision(revision: str) -> None:
    if not _REVISION.match(revision) or ".." in revision or "//" in revision or revision.endswith("/"):
        raise ModelConfigError(
            "spec.model.revision",
            f"{revision[:100]!r} is not a branch, tag or commit",
            "use a branch or tag name, or a commit hash",
        )


@dataclass(frozen=True)
class HubClient:
    endpoint: str = DEFAULT_ENDPOINT
    token: str | None = None
    cache_dir: Path | None = None
    timeout_seconds: float = 10.0
    max_bytes: int = MAX_CONFIG_BYTES

    @classmethod
    def from_env(cls, *, platform_token: bool = True) -> HubClient:
        """HF_ENDPOINT, HF_TOKEN (or HUGGING_FACE_HUB_TOKEN) and RIGHTSIZER_CONFIG_CACHE, as the Hub tools read them.

        `platform_token=False` (the operator) ignores HF_TOKEN: tenants bring their own (spec.serving.hfTokenSecretRef).
        The command line keeps it: there the token is the user's own."""
        cache = os.environ.get("RIGHTSIZER_CONFIG_CACHE")
        default_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rightsizer" / "configs"
        token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
        return cls(
            endpoint=os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/"),
            token=token if platform_token else None,
            cache_dir=Path(cache) if cache else default_cache,
        )

    def _cache_path(self, repo: str, revision: str, file: str, token: str | None, scope: str) -> Path | None:
        if self.cache_dir is None:
            return None
        name = "" if file == CONFIG_FILE else f"|{file}"  # config.json keeps the key it always had
        # Fetched with a token: only that scope (namespace) with that very token reads it back.
        owner = "" if token is None else f"|{scope}|{hashlib.sha256(token.encode()).hexdigest()}"
        key = hashlib.sha256(f"{self.endpoint}|{repo}|{revision}{name}{owner}".encode()).hexdigest()[:32]
        return self.cache_dir / f"{key}.json"

    def config(
        self, repo: str, revision: str | None = None, token: str | None = None, *, scope: str = ""
    ) -> dict[str, Any]:
        """config.json of `repo` at `revision` (default main), asked with `token` (else the client's own, if any);
        `scope` (the namespace the token came from) keys what a token fetched in the cache."""
        data = self._file(repo, revision, token, CONFIG_FILE, required=True, scope=scope)
        assert data is not None
        return data

    def hf_quant_config(
        self, repo: str, revision: str | None = None, token: str | None = None, *, scope: str = ""
    ) -> dict[str, Any] | None:
        """hf_quant_config.json beside config.json, or None when the repository has none."""
        return self._file(repo, revision, token, HF_QUANT_CONFIG_FILE, required=False, scope=scope)

    def _file(
        self, repo: str, revision: str | None, token: str | None, file: str, *, required: bool, scope: str
    ) -> dict[str, Any] | None:
        revision = revision or "main"
        validate_repo_id(repo)
        validate_revision(revision)
        token = token or self.token
        cached = self._cache_path(repo, revision, file, token, scope)
        if cached is not None and cached.exists():
            stored = json.loads(cached.read_text())
            return stored if isinstance(stored, dict) else None
        data = self._download(repo, revision, token, file, required=required)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            tmp.replace(cached)
        return data

    def _download(
        self, repo: str, revision: str, token: str | None, file: str, *, required: bool
    ) -> dict[str, Any] | None:
        url = f"{self.endpoint}/{repo}/resolve/{quote(revision, safe='')}/{file}"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            with httpx.stream(
                "GET", url, headers=headers, timeout=self.timeout_seconds, follow_redirects=True
            ) as response:
                status = response.status_code
                body = self._read_capped(response, f"{repo}/{file}") if status == 200 else b""
        except httpx.HTTPError as err:
            raise ModelConfigError(
                FIELD,
                f"cannot reach {self.endpoint} to read {repo}'s {file} ({type(err).__name__})",
                "check network access to the Hub, or put the config inline (spec.model.config) or in a ConfigMap "
                "(spec.model.configMapRef)",
            ) from None
        if status in (401, 403):
            raise ModelConfigError(
                FIELD,
                f"{repo} is gated or private ({status})",
                "accept its license on the Hub and provide a token (spec.serving.hfTokenSecretRef or HF_TOKEN)",
            )
        if status == 404:
            if not required:
                return None
            raise ModelConfigError(
                FIELD,
                f"{repo} at revision {revision} has no {file} on {self.endpoint}",
                "check the repository id and spec.model.revision",
            )
        if status != 200:
            raise ModelConfigError(
                FIELD,
                f"{self.endpoint} answered {status} for {repo}/{file}",
                "retry later, or provide the config inline",
            )
        try:
            data = json.loads(body)
        except ValueError:
            raise ModelConfigError(FIELD, f"{repo}/{file} from {self.endpoint} is not JSON") from None
        if not isinstance(data, dict):
            raise ModelConfigError(FIELD, f"{repo}/{file} is not a JSON object")
        return data

    def _read_capped(self, response: httpx.Response, where: str) -> bytes:
        """The body, refused as soon as it (or its declared length) passes max_bytes: never held whole."""
        too_large = ModelConfigError(
            FIELD,
            f"{where} is larger than the {self.max_bytes} bytes a config may have",
            "point spec.model.name at a real model",
        )
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)
