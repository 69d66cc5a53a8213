"""Container image references, normalised the way container runtimes read them, and registry-prefix matching.

`vllm/vllm-openai:v0.19.0` and `docker.io/vllm/vllm-openai:v0.19.0` name the same image, so a policy allowing
`docker.io/vllm/` must accept both. Prefixes match at a path boundary, so `registry.example.com` never admits
`registry.example.com.evil.io/...`.
"""

from __future__ import annotations

from collections.abc import Iterable

DOCKER_HUB = "docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_BOUNDARIES = ("/", ":", "@")


def _is_registry_host(component: str) -> bool:
    """The rule of distribution/reference: a first component with a dot or a port, or `localhost`, is a host."""
    return "." in component or ":" in component or component == "localhost"


def normalise_image(image: str) -> str:
    """A full reference: `vllm/vllm-openai:v1` -> `docker.io/vllm/vllm-openai:v1`, `ubuntu` ->
    `docker.io/library/ubuntu`."""
    first, slash, rest = image.partition("/")
    if not slash:
        return f"{DOCKER_HUB}/library/{image}"
    if first in _HUB_ALIASES:
        return f"{DOCKER_HUB}/{rest}" if "/" in rest else f"{DOCKER_HUB}/library/{rest}"
    if _is_registry_host(first):
        return image
    return f"{DOCKER_HUB}/{image}"


def normalise_prefix(prefix: str) -> str:
    """A prefix names a registry, an organisation or a repository; one without a registry host means Docker Hub
    (`vllm/` -> `docker.io/vllm/`, `vllm` -> `docker.io/vllm`)."""
    first = prefix.split("/", 1)[0]
    if first in _HUB_ALIASES:
        return DOCKER_HUB + prefix[len(first) :]
    if _is_registry_host(first):
        return prefix
    return f"{DOCKER_HUB}/{prefix}"


def _starts_at_boundary(text: str, prefix: str) -> bool:
    if not text.startswith(prefix):
        return False
    return len(text) == len(prefix) or prefix.endswith(_BOUNDARIES) or text[len(prefix)] in _BOUNDARIES


def image_allowed(image: str, prefixes: Iterable[str]) -> bool:
    """Whether `image` starts with one of the (normalised) `prefixes` at a path boundary."""
    full = normalise_image(image)
    return any(_starts_at_boundary(full, p) for p in prefixes)


def intersect_prefixes(left: Iterable[str], right: Iterable[str]) -> tuple[str, ...]:
    """Normalised prefixes admitting exactly the images both sets admit: of two nested prefixes the longer one.

    An empty result admits nothing (the sets are disjoint)."""
    lefts = {normalise_prefix(p) for p in left}
    rights = {normalise_prefix(p) for p in right}
    both = set()
    for a in lefts:
        for b in rights:
            if _starts_at_boundary(a, b):
                both.add(a)
            elif _starts_at_boundary(b, a):
                both.add(b)
    return minimal_prefixes(both)


def minimal_prefixes(prefixes: Iterable[str]) -> tuple[str, ...]:
    """Sorted, without the prefixes another one in the set already covers."""
    unique = sorted(set(prefixes))
    return tuple(p for p in unique if not any(q != p and _starts_at_boundary(p, q) for q in unique))


def default_image(repository: str, version: str) -> str:
    """The image the operator runs when spec.serving.engine.image is unset: the repository tagged v<release>."""
    return f"{repository}:v{version}"
