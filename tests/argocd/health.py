"""Run manifests/argocd/llmdeployment-health.lua the way Argo CD does: Lua 5.1, the object as the global `obj`
(decoded from JSON, so numbers are floats and lists are 1-based tables), the script's return value as the health,
and no string or math library (Argo CD's sandbox)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lupa.lua51 import LuaRuntime

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "manifests" / "argocd" / "llmdeployment-health.lua"
FIXTURES = Path(__file__).parent / "fixtures"  # LLMDeployments captured from the local plane
EXPECTED = {  # the health each captured scenario must get
    "ready": "Healthy",
    "rolling-out": "Progressing",
    "not-sized": "Degraded",
    "unschedulable": "Degraded",
    "policy-violation": "Degraded",
    "scaled-to-zero": "Suspended",
    "generation-behind": "Progressing",
}
HEALTH_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
# What Argo CD's Lua VM lacks; a script that touches them fails in Argo CD, so it must fail here too.
SANDBOXED_AWAY = (
    "string",
    "math",
    "io",
    "os",
    "debug",
    "package",
    "require",
    "dofile",
    "loadfile",
    "load",
    "loadstring",
)


def _to_lua(lua: LuaRuntime, value: Any) -> Any:
    if isinstance(value, dict):
        return lua.table_from({k: _to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([_to_lua(lua, v) for v in value])
    return value


def _from_lua(value: Any) -> Any:
    if hasattr(value, "items"):
        return {k: _from_lua(v) for k, v in value.items()}
    return value


def health(obj: dict[str, Any], script: Path = SCRIPT) -> dict[str, str]:
    lua = LuaRuntime(register_eval=False, unpack_returned_tuples=False)
    lua_globals = lua.globals()
    for name in SANDBOXED_AWAY:
        lua_globals[name] = None
    lua_globals.obj = _to_lua(lua, json.loads(json.dumps(obj), parse_int=float))  # JSON numbers, as Argo decodes them
    run = lua.execute  # lupa compiles and runs the chunk; the chunk's `return hs` is its result
    result = _from_lua(run(script.read_text()))
    if not isinstance(result, dict) or result.get("status") not in HEALTH_STATUSES:
        raise ValueError(f"the script returned {result!r}, not a health")
    return {"status": str(result["status"]), "message": str(result.get("message", ""))}
