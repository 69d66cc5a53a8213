"""The integration layer is opt-in: its tests run only when the marker expression names them (`-m integration`).

They start (and on a cold cache, build) the local Kubernetes control plane, so `pytest`, `pytest tests` or
`pytest tests/integration/test_operator.py` without `-m integration` collects and deselects them, saying how to opt
in; nobody starts a control-plane build by accident. A plain `pytest` runs tests/unit (pyproject's testpaths);
`make test` runs every layer, integration included.
"""

from __future__ import annotations

from pathlib import Path

import pytest

INTEGRATION = Path(__file__).parent / "integration"
NOT_SELECTED = pytest.StashKey[int]()


def is_integration(item: pytest.Item) -> bool:
    return item.get_closest_marker("integration") is not None or INTEGRATION in item.path.parents


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "integration" in (config.option.markexpr or ""):
        return  # the expression decides, as pytest evaluates it
    left_out = [item for item in items if is_integration(item)]
    if left_out:
        items[:] = [item for item in items if not is_integration(item)]
        config.hook.pytest_deselected(items=left_out)
    config.stash[NOT_SELECTED] = len(left_out)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    count = config.stash.get(NOT_SELECTED, 0)
    if count:
        terminalreporter.write_line(
            f"{count} integration test(s) not run: they start the local control plane; opt in with -m integration "
            "(make test-integration)",
            yellow=True,
        )
