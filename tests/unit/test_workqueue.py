"""The reconcile work queue (controller.workqueue): a burst of events for one object costs one reconcile, one object
is never reconciled twice at once, an event during its reconcile costs exactly one more, and `wait` covers what was
asked before it."""

from __future__ import annotations

import threading
import time
from collections import Counter

from rightsizer.controller.workqueue import WorkQueue


class Recorder:
    def __init__(self, hold: float = 0.0) -> None:
        self.runs: Counter[str] = Counter()
        self.active: Counter[str] = Counter()
        self.overlaps = 0
        self.hold = hold
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()

    def __call__(self, key: str) -> None:
        with self.lock:
            self.active[key] += 1
            self.overlaps += self.active[key] > 1
        self.started.set()
        self.gate.wait(5)
        time.sleep(self.hold)
        with self.lock:
            self.active[key] -= 1
            self.runs[key] += 1


def test_a_burst_of_events_for_one_object_costs_one_reconcile() -> None:
    work = Recorder()
    work.gate.clear()  # hold the first run of "a" so that "b"'s burst queues behind... nothing: two workers
    coalesced = []
    queue = WorkQueue(work, workers=1, on_coalesced=lambda: coalesced.append(1))
    queue.enqueue("blocker")
    assert work.started.wait(5)
    tickets = {}
    for _ in range(50):  # a create, its children appearing, their status, its pods: all before a worker is free
        tickets.update(queue.enqueue_all(["b"]))
    work.gate.set()
    assert queue.wait(tickets, timeout=5)
    assert work.runs["b"] == 1
    assert len(coalesced) == 49
    queue.stop()


def test_an_event_during_a_reconcile_costs_exactly_one_more_and_never_overlaps() -> None:
    work = Recorder()
    work.gate.clear()
    queue = WorkQueue(work, workers=4)
    queue.enqueue("a")
    assert work.started.wait(5)
    last = 0
    for _ in range(20):  # due again while it runs: four free workers, yet no second run of "a" at the same time
        last = queue.enqueue("a")
    time.sleep(0.05)
    work.gate.set()
    assert queue.wait({"a": last}, timeout=5)
    assert work.runs["a"] == 2
    assert work.overlaps == 0
    queue.stop()


def test_wait_covers_only_runs_that_started_after_the_ticket() -> None:
    work = Recorder()
    work.gate.clear()
    queue = WorkQueue(work, workers=1)
    queue.enqueue("a")
    assert work.started.wait(5)
    ticket = queue.enqueue("a")  # asked while the first run is under way: that run does not count
    work.gate.set()
    time.sleep(0.01)
    assert queue.wait({"a": ticket}, timeout=5)
    assert work.runs["a"] == 2
    assert queue.depth() == 0
    queue.stop()


def test_wait_times_out_behind_a_stuck_reconcile() -> None:
    work = Recorder()
    work.gate.clear()
    queue = WorkQueue(work, workers=1)
    tickets = queue.enqueue_all(["a", "b"])
    assert not queue.wait(tickets, timeout=0.1)  # the resync pass would not complete: its loop turns stale
    work.gate.set()
    assert queue.wait(tickets, timeout=5)
    queue.stop()


def test_many_objects_share_the_workers_and_a_failing_one_does_not_stop_them() -> None:
    seen: Counter[int] = Counter()

    def work(key: int) -> None:
        if key == 3:
            raise RuntimeError("a bug in one reconcile")
        seen[key] += 1

    queue = WorkQueue(work, workers=2)
    tickets = queue.enqueue_all(range(200))
    assert queue.wait(tickets, timeout=10)
    assert sorted(seen) == [k for k in range(200) if k != 3]
    assert set(seen.values()) == {1}
    assert queue._wanted == {} and queue._done == {}  # idle keys are forgotten: memory bounded by keys in flight
    queue.stop()


def test_a_waiter_is_released_when_the_queue_stops() -> None:
    """The resync pass waits in a thread; at shutdown it must not keep the process alive."""
    work = Recorder()
    work.gate.clear()
    queue = WorkQueue(work, workers=1)
    tickets = queue.enqueue_all(["a", "b"])
    released = threading.Event()
    waiter = threading.Thread(target=lambda: released.set() if not queue.wait(tickets) else None)
    waiter.start()
    queue.stop()
    waiter.join(5)
    assert released.is_set()
    work.gate.set()
