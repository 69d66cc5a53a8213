"""What one operator process shares between its handlers: the reconciler, its peering, the last pools seen, and
the admission webhook's GPU reservations.

It lives in kopf's memo (`memo.runtime`), created by the startup handler; the command line only passes the peering
in through `kopf.run(memo=...)`. Nothing here is a global: a test builds its own Runtime.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rightsizer.controller.ha import (
    CLUSTER_PEERING_KIND,
    NAMESPACED_PEERING_KIND,
    PEERING_GROUP,
    PEERING_VERSION,
    Peering,
    should_pause,
)
from rightsizer.controller.reconcile import Reconciler
from rightsizer.controller.reservations import ReservationBook
from rightsizer.controller.workqueue import WorkQueue

MEMO_KEY = "runtime"
PEERING_KEY = "peering"


@dataclass
class Runtime:
    reconciler: Reconciler
    peering: Peering | None = None  # None: standalone, always acts
    pools_fingerprint: str = ""
    reservations: ReservationBook = field(default_factory=ReservationBook)  # the validating webhook's, in memory
    # The reconciles (controller.workqueue), made by the startup handler; None: each handler reconciles inline.
    queue: WorkQueue[tuple[str, str]] | None = None
    # The admission handlers' own threads (controller.webhooks): never shared with reconciles or kopf's handlers.
    admission: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=2, thread_name_prefix="rightsizer-admission")
    )

    def paused(self) -> bool:
        """Whether a peer with a higher or equal priority is alive, so this process must not act (see controller.ha)."""
        peering, kube = self.peering, self.reconciler.kube
        if peering is None:
            return False
        api_version, now = PEERING_GROUP + "/" + PEERING_VERSION, datetime.now(UTC)
        if not peering.namespaces:
            peers = kube.read_status(api_version, CLUSTER_PEERING_KIND, peering.name)
            return should_pause(peers or {}, peering, now)
        # kopf pauses everything while any namespace's peering says so (one toggle per namespace, paused if any is on).
        return any(
            should_pause(kube.read_status(api_version, NAMESPACED_PEERING_KIND, peering.name, ns) or {}, peering, now)
            for ns in peering.namespaces
        )


def runtime_of(memo: Mapping[str, Any]) -> Runtime | None:
    """The process's Runtime, or None before the startup handler has made it."""
    runtime = memo.get(MEMO_KEY)
    return runtime if isinstance(runtime, Runtime) else None
