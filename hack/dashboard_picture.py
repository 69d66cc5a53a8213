#!/usr/bin/env python3
"""Draws the Grafana dashboard's panels (hack/dashboard.py) from what its queries returned in an end-to-end run, so
docs/operator.md shows the dashboard without a Grafana:

    RIGHTSIZER_DASHBOARD_DUMP=/tmp/dashboard.json \\
        pytest tests/integration/test_autoscaling.py -m integration -k dashboard
    python hack/dashboard_picture.py /tmp/dashboard.json docs/images/dashboard.png

Each panel is a grid cell with one line per series, labelled as the dashboard's legend format labels it.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any


def legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)


def draw(dump: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: dict[str, list[dict[str, Any]]] = dump["panels"]
    columns = 3
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(15, 3.2 * rows), squeeze=False)
    origin = min(
        (float(v[0]) for qs in panels.values() for q in qs for s in q["series"] for v in s["values"]), default=0.0
    )
    for ax, (title, queries) in zip(axes.flat, panels.items(), strict=False):
        for query in queries:
            for series in query["series"]:
                xs = [(float(t) - origin) for t, _ in series["values"]]
                ys = [float(v) for _, v in series["values"]]
                ax.plot(xs, ys, label=legend(query["legend"], series["metric"]), linewidth=1.4)
        ax.set_title(f"{title} [{dump['units'].get(title, '')}]", fontsize=10)
        ax.set_xlabel("s", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7, loc="best")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle("rightsizer dashboard: one LLMDeployment under a load step (end-to-end run, real Prometheus)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    draw(json.loads(Path(argv[0]).read_text()), Path(argv[1]))
    print(f"wrote {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
