"""Container image references, normalised the way container runtimes read them, and registry-prefix matching.

`vllm/vllm-openai:v0.19.0` and `docker.io/vllm/vllm-openai:v0.19.0` name the same image, so a policy allowing
`docker.io/vllm/` must accept both. A rule is read as the reference it names (distribution/reference: repository,
`:tag`, `@digest`):

- a registry, organisation or repository (`registry.example.com`, `docker.io/vllm/`, `vllm/vllm-openai`) admits
  the images whose repository is under it at a path boundary, with any tag or digest: `registry.example.com` never
  admits `registry.example.com.evil.io/...`, nor `registry.example.com:5000/...` (another registry);
- a pinned tag (`vllm/vllm-openai:v0.19.0`) admits that tag only, and never an image that also names a digest: the
  runtime pulls `repo:tag@sha256:...` by its digest and ignores the tag, so the tag vouches for nothing;
- a pinned digest (`vllm/vllm-openai@sha256:...`) admits that digest only; `repo@` admits any digest of `repo`.
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


def _reference(full: str) -> tuple[str, str | None, str | None]:
    """(repository, tag, digest) of a normalised reference or rule; a colon before the first '/' is a port."""
    rest, at, digest = full.partition("@")
    slash, colon = rest.rfind("/"), rest.rfind(":")
    if slash >= 0 and colon > slash:
        return rest[:colon], rest[colon + 1 :], digest if at else None
    return rest, None, digest if at else None


def _admits(rule: str, image: str) -> bool:
    repository, tag, digest = _reference(image)
    rule_repository, rule_tag, rule_digest = _reference(rule)
    if rule_digest is not None:  # `repo@digest` that digest; `repo@` any digest of repo
        return repository == rule_repository and digest is not None and rule_digest in ("", digest)
    if rule_tag:
        return repository == rule_repository and digest is None and (tag or "latest") == rule_tag
    under = rule_repository if rule_repository.endswith("/") else rule_repository + "/"
    return repository == rule_repository or repository.startswith(under)


def image_allowed(image: str, prefixes: Iterable[str]) -> bool:
    """Whether one of the (normalised) rules `prefixes` admits `image` (see the module docstring)."""
    full = normalise_image(image)
    return any(_admits(p, full) for p in prefixes)


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
