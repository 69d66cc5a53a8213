"""Structured logs: one JSON object per line, with the Kubernetes object a line is about and the traceback."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from rightsizer.cli.main import build_parser
from rightsizer.controller.logs import JsonFormatter, configure_logging

REF = {"apiVersion": "rightsizer.dev/v1alpha1", "kind": "LLMDeployment", "namespace": "team-a", "name": "chat"}


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("rightsizer", logging.WARNING, __file__, 1, message, args, None)
    rec.created = 1767225600.25  # 2026-01-01T00:00:00.250Z
    rec.__dict__.update(extra)
    return rec


@pytest.mark.parametrize(
    ("rec", "expected"),
    [
        (
            record("reconcile of %s/%s will be retried", "team-a", "chat"),
            {
                "time": "2026-01-01T00:00:00.250Z",
                "level": "warning",
                "logger": "rightsizer",
                "message": "reconcile of team-a/chat will be retried",
            },
        ),
        (
            record("plan changed", k8s_ref={**REF, "uid": "u-1"}, k8s_skip=False),
            {
                "time": "2026-01-01T00:00:00.250Z",
                "level": "warning",
                "logger": "rightsizer",
                "message": "plan changed",
                "object": REF,
            },
        ),
        (
            record("cluster-scoped", k8s_ref={"apiVersion": "v1", "kind": "Node", "name": "gpu-1", "namespace": None}),
            {
                "time": "2026-01-01T00:00:00.250Z",
                "level": "warning",
                "logger": "rightsizer",
                "message": "cluster-scoped",
                "object": {"apiVersion": "v1", "kind": "Node", "name": "gpu-1"},
            },
        ),
    ],
)
def test_json_lines(rec: logging.LogRecord, expected: dict[str, object]) -> None:
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    assert json.loads(line) == expected


def test_a_traceback_stays_inside_one_line() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        rec = logging.LogRecord("rightsizer", logging.ERROR, __file__, 1, "failed", (), None)
        rec.exc_info = sys.exc_info()
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "error" and "RuntimeError: boom" in entry["error"]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    kopf_level = logging.getLogger("kopf.objects").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("kopf.objects").setLevel(kopf_level)


@pytest.mark.parametrize(("log_format", "is_json"), [("json", True), ("text", False)])
def test_configure_logging_formats_every_logger(restore_logging: None, log_format: str, is_json: bool) -> None:
    configure_logging(verbose=False, log_format=log_format)
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    logging.getLogger("kopf.activities.startup").info("hello %s", "world")
    logging.getLogger("kopf.objects").info("handler succeeded")  # quiet unless --verbose
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    if is_json:
        assert json.loads(lines[0])["message"] == "hello world"
    else:
        assert lines[0].endswith("INFO kopf.activities.startup: hello world")


def test_run_accepts_the_log_format_flag() -> None:
    args = build_parser().parse_args(["run", "--log-format", "json"])
    assert args.log_format == "json"
    assert build_parser().parse_args(["run"]).log_format is None  # then RIGHTSIZER_LOG_FORMAT decides
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--log-format", "xml"])
