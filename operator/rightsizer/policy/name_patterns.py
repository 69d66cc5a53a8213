"""Name patterns of SizingPolicy allowed.hfTokenSecrets and allowed.modelCacheClaims: `*` matches any run of
characters (none included), every other character matches itself (`hf-token`, `hf-*`, `*-cache`, `team-*-token`).

Globs rather than regular expressions: they read as the names they admit, and they cannot go wrong the way a
regular expression can (an unanchored `hf-.*` admits `evil-hf-x`; `(a+)+$` backtracks exponentially in Python's
`re`). Matching is bounded: the pattern is split at its stars and each literal piece is found left to right, the
leftmost match being always the right one for `*`-only globs, so a check costs at most len(name) x len(pattern)
character comparisons inside `str.find`; patterns and names are at most 253 characters (a DNS-1123 subdomain) and a
policy lists at most 32 patterns. A name longer than that, which Kubernetes would never accept, matches nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from rightsizer.api.v1alpha1.sizingpolicy import NAME_PATTERN_MAX_LENGTH


def name_matches(pattern: str, name: str) -> bool:
    """Whether `name` is one of the names `pattern` admits."""
    if len(name) > NAME_PATTERN_MAX_LENGTH:
        return False
    first, *middle_and_last = pattern.split("*")
    if not middle_and_last:
        return name == pattern
    *middle, last = middle_and_last
    if len(name) < len(first) + len(last) or not name.startswith(first) or not name.endswith(last):
        return False
    position, end = len(first), len(name) - len(last)
    for piece in middle:
        found = name.find(piece, position, end)
        if found < 0:
            return False
        position = found + len(piece)
    return True


def any_matches(patterns: Iterable[str], name: str) -> bool:
    return any(name_matches(pattern, name) for pattern in patterns)
