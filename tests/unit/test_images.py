"""Image rules (allowed.engineImages) hold for digests and ports, as container runtimes read references.

Before: a rule pinning a tag admitted `repo:tag@sha256:<anything>` (the runtime pulls the digest and ignores the tag),
and a registry rule admitted the same host on another port (another registry)."""

from __future__ import annotations

import pytest

from rightsizer.policy import image_allowed, normalise_prefix

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64

CASES = [
    # a tag rule cannot vouch for a digest
    ("vllm/vllm-openai:v0.19.0", ["vllm/vllm-openai:v0.19.0"], True),
    (f"vllm/vllm-openai:v0.19.0@{OTHER}", ["vllm/vllm-openai:v0.19.0"], False),
    ("vllm/vllm-openai:v0.19.0-evil", ["vllm/vllm-openai:v0.19.0"], False),
    ("vllm/vllm-openai", ["vllm/vllm-openai:latest"], True),
    # a digest rule admits that digest, with or without a tag beside it
    (f"vllm/vllm-openai@{DIGEST}", [f"vllm/vllm-openai@{DIGEST}"], True),
    (f"vllm/vllm-openai:v0.19.0@{DIGEST}", [f"vllm/vllm-openai@{DIGEST}"], True),
    (f"vllm/vllm-openai@{OTHER}", [f"vllm/vllm-openai@{DIGEST}"], False),
    ("vllm/vllm-openai:v0.19.0", [f"vllm/vllm-openai@{DIGEST}"], False),
    (f"vllm/vllm-fork@{DIGEST}", [f"vllm/vllm-openai@{DIGEST}"], False),
    # `repo@`: any digest of repo, no tag alone
    (f"registry.example.com/vllm/vllm-openai@{DIGEST}", ["registry.example.com/vllm/vllm-openai@"], True),
    ("registry.example.com/vllm/vllm-openai:v1", ["registry.example.com/vllm/vllm-openai@"], False),
    # registry, organisation and repository rules: any tag or digest under them, at a path boundary
    (f"registry.example.com/vllm/vllm-openai@{DIGEST}", ["registry.example.com/vllm/"], True),
    (f"vllm/vllm-openai:v1@{DIGEST}", ["vllm/vllm-openai"], True),
    ("registry.example.com:5000/vllm/vllm-openai:v1", ["registry.example.com"], False),
    ("registry.example.com:5000/vllm/vllm-openai:v1", ["registry.example.com:5000"], True),
    ("localhost:5000/vllm:dev", ["localhost:5000/"], True),
]


@pytest.mark.parametrize(("image", "rules", "allowed"), CASES)
def test_image_rules_hold_for_digests_and_ports(image: str, rules: list[str], allowed: bool) -> None:
    assert image_allowed(image, [normalise_prefix(r) for r in rules]) is allowed
