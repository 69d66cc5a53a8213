"""Which admission requests policy must judge at all.

Only what changes the spec is judged. Everything else that updates an LLMDeployment — finalizers, labels and
annotations the operator or kopf writes, the last update before deletion — must pass even when a policy tightened
after admission now forbids the stored spec; otherwise the operator's own bookkeeping, and deletion, would be
blocked by a policy change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def needs_evaluation(operation: str, obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    """CREATE always; UPDATE only when spec changed and the object is not being deleted; nothing else."""
    if operation == "CREATE":
        return True
    if operation != "UPDATE":
        return False
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return old is None or obj.get("spec") != old.get("spec")
