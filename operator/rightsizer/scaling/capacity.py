"""Capacity across pools: while replicas overflow onto the next pool (kube.placement), they run that pool's own plan
(its GPU, TP/PP, batch limits), so a replica there serves a different request rate within the SLO than one of the
primary. The decision (scaling.decision) then plans with the capacities of the replicas in force, each at its
pool's rate, rather than the primary's rate for every replica. Pure.

Which replicas a count keeps, and where one more goes, follow the placement: a scale-down removes the overflow's
replicas first (the primary's Pending probes go first, and the overflow shrinks with them), so the replicas in
force are ordered primary first; a scale-up raises the desired count, the primary asks for the new replica first and
only what finds no room there moves to the overflow pool. So one more replica adds the primary's rate, unless the
primary has replicas waiting for room right now, in which case it will land on the overflow pool (when overflow is
allowed) and adds that pool's rate.

A replica in force is one whose pods are all scheduled (Ready or starting). A desired replica still Pending counts
as "one more": its pool is where it will run.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PoolShare:
    """One pool's replicas of a deployment and what one of them serves."""

    pool: str
    in_force: int  # replicas with every pod scheduled: Ready or starting
    capacity_rps: float | None  # one replica of this pool's plan within the SLO (None: the model cannot say)


@dataclass(frozen=True)
class PoolCapacity:
    in_force: tuple[float, ...]  # per-replica capacities, primary's first; empty: every replica at next_rps
    next_rps: float | None  # what one more replica adds (None: unknown, the decision reacts to latency only)
    next_pool: str | None

    @property
    def total_rps(self) -> float | None:
        return sum(self.in_force) if self.in_force else None

    def serving_rps(self, replicas: int) -> float | None:
        """What `replicas` in force serve within the SLO: each at its pool's capacity, or all at next_rps when
        they share one pool (in_force empty)."""
        if self.in_force:
            return sum(self.in_force)
        return None if self.next_rps is None else self.next_rps * replicas


def pool_capacity(
    primary: PoolShare, overflow: PoolShare | None, *, primary_full: bool, overflow_allowed: bool
) -> PoolCapacity:
    """The replicas in force as capacities (the primary's, then the overflow's) and what one more adds.

    Without overflow replicas, and with room on the primary (or no overflow to go to), this is the single-pool case:
    every replica at the primary's rate. An overflow pool the model has no figures for is counted at the
    primary's rate (its replicas still serve; an unknown is not zero)."""
    if primary.capacity_rps is None:
        return PoolCapacity((), None, None)
    spills = overflow is not None and primary_full and overflow_allowed
    if overflow is None or (overflow.in_force == 0 and not spills):
        return PoolCapacity((), primary.capacity_rps, primary.pool)
    overflow_rps = overflow.capacity_rps if overflow.capacity_rps is not None else primary.capacity_rps
    ladder = (primary.capacity_rps,) * primary.in_force + (overflow_rps,) * overflow.in_force
    if spills:
        return PoolCapacity(ladder, overflow_rps, overflow.pool)
    return PoolCapacity(ladder, primary.capacity_rps, primary.pool)
