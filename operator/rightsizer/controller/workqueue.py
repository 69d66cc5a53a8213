"""A coalescing work queue for reconciles, with a small fixed pool of worker threads.

Every watch event that concerns an LLMDeployment (its own, its children's, its pods', a node's, a policy's, a
namespace's) only marks its key (namespace, name) as due; the workers reconcile due keys from the indexes' latest
state. So a burst of events for one object costs one reconcile, not one per event: a key already waiting is not
queued twice, and a key that is being reconciled when it becomes due again runs once more afterwards (never twice at
the same time). The kopf handlers that enqueue are async and return at once: reconciles no longer occupy kopf's
thread pool, where the synchronous index functions and probes run, and the admission webhook has its own threads
(controller.webhooks), so an apply is never queued behind a burst of reconciles.

Workers are few on purpose (RIGHTSIZER_RECONCILE_WORKERS, default 2): a reconcile is CPU-bound Python (the
assessment, building the children, status), so more threads only share the same interpreter lock, and every thread
that holds it delays the admission webhook's answer.

`wait` lets the periodic resync (a safety net) wait until every key it enqueued was reconciled at least once after it
asked, so the supervision of that loop (controller.supervision) still sees a stuck reconcile as a stale loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(
        self,
        work: Callable[[K], None],
        workers: int = 2,
        *,
        name: str = "rightsizer-reconcile",
        on_coalesced: Callable[[], None] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("a work queue needs at least one worker")
        self._work = work
        self._on_coalesced = on_coalesced
        self._cond = threading.Condition()
        self._queue: deque[K] = deque()
        self._queued: set[K] = set()
        self._running: set[K] = set()
        self._again: set[K] = set()  # due again while running: queued once it ends
        # Tickets: enqueue hands out increasing numbers; _done[key] is the ticket a finished run covered. Both are
        # dropped when a key is idle, so memory is bounded by the keys in flight.
        self._ticket = 0
        self._wanted: dict[K, int] = {}
        self._done: dict[K, int] = {}
        self._stopped = False
        self._threads = [threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def enqueue(self, key: K) -> int:
        """Mark `key` due; returns its ticket (for `wait`). Cheap and non-blocking: safe on the event loop."""
        with self._cond:
            self._ticket += 1
            self._wanted[key] = self._ticket
            if key in self._queued or key in self._again:
                self._coalesced()
            elif key in self._running:
                self._again.add(key)
            else:
                self._queued.add(key)
                self._queue.append(key)
                self._cond.notify()
            return self._ticket

    def enqueue_all(self, keys: Iterable[K]) -> dict[K, int]:
        return {key: self.enqueue(key) for key in keys}

    def _coalesced(self) -> None:
        if self._on_coalesced is not None:
            self._on_coalesced()

    def wait(self, tickets: dict[K, int], timeout: float | None = None) -> bool:
        """Until every key has been reconciled by a run that started after its ticket was handed out (False: the
        timeout passed or the queue was stopped)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                pending = [k for k, t in tickets.items() if k in self._wanted and self._done.get(k, 0) < t]
                if not pending:
                    return True
                if self._stopped:  # shutting down: nothing will run any more (a waiter must not hold up the exit)
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)

    def depth(self) -> int:
        """Keys waiting (not counting those being reconciled)."""
        with self._cond:
            return len(self._queue)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                key = self._queue.popleft()
                self._queued.discard(key)
                self._running.add(key)
                ticket = self._wanted.get(key, 0)
            try:
                self._work(key)
            except Exception:  # the work logs its own errors; a worker must outlive anything
                log.exception("reconcile of %s failed", key)
            finally:
                with self._cond:
                    self._running.discard(key)
                    self._done[key] = ticket
                    if key in self._again:
                        self._again.discard(key)
                        self._queued.add(key)
                        self._queue.append(key)
                    elif self._wanted.get(key) == ticket:  # idle: forget the key
                        self._wanted.pop(key, None)
                        self._done.pop(key, None)
                    self._cond.notify_all()
