"""The operator's log lines: text for people, or one JSON object per line for log pipelines (`--log-format json`).

A JSON line has `time` (RFC 3339, UTC), `level`, `logger`, `message`, `object` (apiVersion, kind, namespace and name
of the Kubernetes object the line is about, when kopf's per-object logger wrote it) and `error` (the traceback).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
OBJECT_KEYS = ("apiVersion", "kind", "namespace", "name")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        ref = getattr(record, "k8s_ref", None)  # set by kopf's object loggers (kopf._core.actions.loggers)
        if isinstance(ref, dict):
            entry["object"] = {key: ref[key] for key in OBJECT_KEYS if ref.get(key)}
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["error"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(*, verbose: bool, log_format: str) -> None:
    """Root handler on stderr in the chosen format; kopf's per-handler success lines only with --verbose."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        # kopf logs every handler success at INFO; keep the log for what rightsizer decides and for problems.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
