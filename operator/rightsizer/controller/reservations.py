"""The validating webhook's GPU reservations, in this process's memory only (policy.quota explains what they are).

Validation writes nothing to the cluster: a forged AdmissionReview must not be able to leave anything behind. A
reservation lives here until the real object's status supersedes it, or `RESERVATION_TTL` after it was made when
no real object backs it (policy.quota.live_reservations). Decisions of one namespace are taken under one lock, so
two concurrent admissions that only one fits cannot both pass this process.

The book is bounded: at most `MAX_RESERVATIONS` entries over all namespaces, the oldest dropped first, so a flood
of forged reviews costs a fixed amount of memory. With several operator replicas each keeps its own book (the
webhook Service spreads requests); the reconciler, which counts only real objects, bounds the replicas a namespace
runs either way (controller.reconcile, policy.bounds).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime, timedelta

from rightsizer.policy import RESERVATION_TTL, AdmissionRequest, GpuCharge, QuotaAdmission, admit
from rightsizer.policy.effective import EffectivePolicy
from rightsizer.policy.quota import Reservation, live_reservations

MAX_RESERVATIONS = 10_000  # about 1 KiB each with their keys: ~10 MiB at worst
LOCK_STRIPES = 64


class ReservationBook:
    def __init__(self, ttl: timedelta = RESERVATION_TTL, limit: int = MAX_RESERVATIONS) -> None:
        self.ttl, self.limit = ttl, limit
        self._lock = threading.Lock()
        # Striped: a lock per namespace name would grow with every name a forged review invents.
        self._stripes = tuple(threading.Lock() for _ in range(LOCK_STRIPES))
        self._by_namespace: dict[str, dict[tuple[str, str], Reservation]] = {}

    def admit(
        self,
        request: AdmissionRequest,
        effective: EffectivePolicy,
        charges: Sequence[GpuCharge],
        now: datetime,
        *,
        record: bool,
    ) -> QuotaAdmission:
        """Decide the request against the namespace's real objects and live reservations; with `record` (not a dry
        run) keep the reservation it gets. Stale reservations of the namespace are dropped on the way."""
        with self._stripes[hash(request.namespace) % LOCK_STRIPES]:
            held = self._by_namespace.get(request.namespace, {})
            live = live_reservations(held.values(), charges, now, self.ttl)
            outcome = admit(request, effective, charges, live, now, ttl=self.ttl)
            kept = {(r.name, r.uid): r for r in live}
            if record and outcome.reservation is not None:
                mine = outcome.reservation
                kept[(mine.name, mine.uid)] = mine
            with self._lock:
                if kept:
                    self._by_namespace[request.namespace] = kept
                else:
                    self._by_namespace.pop(request.namespace, None)
                self._trim()
            return outcome

    def reservations(self, namespace: str) -> tuple[Reservation, ...]:
        """What the book holds for a namespace (live or not yet dropped), for tests and debugging."""
        with self._lock:
            return tuple(self._by_namespace.get(namespace, {}).values())

    def __len__(self) -> int:
        with self._lock:
            return sum(len(held) for held in self._by_namespace.values())

    def _trim(self) -> None:
        """Drop the oldest reservations beyond the limit (namespaces nobody admits into again are never pruned by
        `admit`; a forged flood names many of them)."""
        total = sum(len(held) for held in self._by_namespace.values())
        if total <= self.limit:
            return
        everything = sorted(
            ((r.reserved_at, ns, key) for ns, held in self._by_namespace.items() for key, r in held.items()),
            key=lambda row: row[0],
        )
        for _, ns, key in everything[: total - self.limit]:
            held = self._by_namespace[ns]
            del held[key]
            if not held:
                del self._by_namespace[ns]
