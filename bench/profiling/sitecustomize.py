"""A sampling profiler for the operator process under `bench/reconcile.py --profile DIR` (not part of the operator).

Python imports `sitecustomize` at start-up from any sys.path entry; bench/reconcile.py puts this folder first on
the operator's PYTHONPATH when profiling, so no operator code changes. py-spy cannot attach on the shared machines
(it fails to read the interpreter's version), and cProfile sees only the thread it runs in, so this samples every
thread's stack with sys._current_frames() every RIGHTSIZER_PROFILE_INTERVAL seconds (default 0.005) and writes:
  DIR/stacks-<pid>.txt   collapsed stacks ("thread;file:function;... count"), the input of flamegraph tools;
  DIR/memory-<pid>.txt   with RIGHTSIZER_PROFILE_TRACEMALLOC=1: the 40 largest allocation sites (tracemalloc, 8
                         frames), at the moment of the last dump.
Both are rewritten every 10 s and at exit (kopf exits cleanly on SIGTERM).
"""

from __future__ import annotations

import atexit
import collections
import os
import sys
import threading
import time

_DIR = os.environ.get("RIGHTSIZER_PROFILE_DIR")


def _thread_label(name: str) -> str:
    # ThreadPoolExecutor-0_3 -> ThreadPoolExecutor-0: one row per pool, not per worker
    head, sep, tail = name.rpartition("_")
    return head if sep and tail.isdigit() else name


def _start(directory: str) -> None:
    interval = float(os.environ.get("RIGHTSIZER_PROFILE_INTERVAL", "0.005"))
    if os.environ.get("RIGHTSIZER_PROFILE_TRACEMALLOC") == "1":
        import tracemalloc

        tracemalloc.start(8)
    counts: collections.Counter[str] = collections.Counter()
    pid = os.getpid()

    def dump() -> None:
        with open(os.path.join(directory, f"stacks-{pid}.txt"), "w") as out:
            for stack, n in counts.most_common():
                out.write(f"{stack} {n}\n")
        if os.environ.get("RIGHTSIZER_PROFILE_TRACEMALLOC") == "1":
            import tracemalloc

            snapshot = tracemalloc.take_snapshot()
            with open(os.path.join(directory, f"memory-{pid}.txt"), "w") as out:
                current, peak = tracemalloc.get_traced_memory()
                out.write(f"traced {current / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB\n")
                for stat in snapshot.statistics("traceback")[:40]:
                    out.write(f"{stat.size / 2**20:8.2f} MiB {stat.count:8d} blocks\n")
                    for line in stat.traceback.format()[-16:]:
                        out.write(f"    {line}\n")
                out.write("\nby line:\n")
                for stat in snapshot.statistics("lineno")[:40]:
                    out.write(f"{stat.size / 2**20:8.2f} MiB {stat.count:8d}  {stat.traceback}\n")

    def sample() -> None:
        me = threading.get_ident()  # this thread (not the main thread, which imports this module)
        last_dump = time.monotonic()
        while True:
            time.sleep(interval)
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                parts = []
                f = frame
                while f is not None:
                    code = f.f_code
                    parts.append(f"{os.path.basename(code.co_filename)}:{code.co_name}")
                    f = f.f_back
                parts.append(_thread_label(names.get(ident, "?")))
                counts[";".join(reversed(parts))] += 1
            if time.monotonic() - last_dump > 10:
                dump()
                last_dump = time.monotonic()

    threading.Thread(target=sample, name="bench-profiler", daemon=True).start()
    atexit.register(dump)


if _DIR:
    os.makedirs(_DIR, exist_ok=True)
    _start(_DIR)
