"""Scans run in worker processes, one scan per worker at a time, each worker watched on its own.

A worker that dies (out of memory, a crash in compiled code) fails only the scan it was running:
a fresh worker takes the next one. Ctrl-C stops the workers at once and cancels the scans still
queued (``Cancelled`` says which were done, running and queued). Each worker runs with a fixed
number of threads for ITK and torch, set before either is imported.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from tqdm.auto import tqdm

THREAD_VARIABLES = ("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                    "OPENBLAS_NUM_THREADS")


def cpu_count() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int, deterministic: bool) -> int:
    """Threads for each of ``workers`` processes: the cores shared out, or one in deterministic mode."""
    return 1 if deterministic else max(1, cpu_count() // max(workers, 1))


class Cancelled(KeyboardInterrupt):
    """Ctrl-C during a run: what had finished, what was stopped while running, and what never started."""

    def __init__(self, done: dict, running: list, queued: list):
        super().__init__(f"{len(done)} finished, {len(running)} stopped while running, {len(queued)} never started")
        self.done, self.running, self.queued = done, running, queued


def _serve(conn: Connection, work: Callable, threads: int) -> None:
    """A worker: set the thread counts, then run ``work(*args)`` for each task until told to stop."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    if "torch" in sys.modules:  # imported while the worker unpickled its task function: too late for OMP_NUM_THREADS
        sys.modules["torch"].set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    while True:
        task = conn.recv()
        if task is None:
            return
        key, args = task
        conn.send((key, work(*args)))


@dataclass
class _Worker:
    process: Any
    conn: Connection
    task: tuple[Hashable, tuple] | None = None


def run_tasks(tasks: list[tuple[Hashable, tuple]], work: Callable, workers: int, threads: int,
              died: Callable[[Hashable, str], Any], progress: bool = True, desc: str = "") -> dict:
    """``work(*args)`` for every ``(key, args)`` in ``workers`` spawned processes; results by key.

    ``work`` must be a module-level function (it is sent to the workers by name) that reports its own
    failures in its result. A worker that dies gives ``died(key, why)`` as that task's result.
    """
    ctx = multiprocessing.get_context("spawn")
    queue, results, pool = deque(tasks), {}, []
    bar = tqdm(total=len(tasks), desc=desc, unit="scan", disable=not progress)

    def start() -> _Worker:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(child, work, threads), daemon=True)
        proc.start()
        child.close()
        return _Worker(proc, parent)

    def finish(w: _Worker, result: Any) -> None:
        results[w.task[0]] = result  # type: ignore[index]
        w.task = None
        bar.update()

    try:
        pool = [start() for _ in range(min(workers, len(queue)))]
        while queue or any(w.task for w in pool):
            for w in pool:
                if w.task is None and queue:
                    w.task = queue.popleft()
                    try:
                        w.conn.send(w.task)
                    except (BrokenPipeError, OSError):  # died while idle: the task goes back, the worker is replaced
                        queue.appendleft(w.task)
                        w.task = None
            busy = [w for w in pool if w.task]
            if busy:
                wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
            for w in list(pool):
                if w.task is None:
                    if w.process.is_alive():
                        continue
                else:
                    try:
                        if not w.conn.poll():
                            if w.process.is_alive():
                                continue
                            raise EOFError
                        key, result = w.conn.recv()
                        finish(w, result)
                        continue
                    except (EOFError, OSError):
                        w.process.join(5)
                        code = w.process.exitcode
                        why = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                        finish(w, died(w.task[0], f"the worker process running it stopped ({why}: out of memory, or a "
                                                  "crash in compiled code)"))
                pool.remove(w)
                if queue:
                    pool.append(start())
    except KeyboardInterrupt:
        running = [w.task[0] for w in pool if w.task]
        for w in pool:
            w.process.kill()
        raise Cancelled(results, running, [k for k, _ in queue]) from None
    finally:
        for w in pool:
            if w.process.is_alive():
                try:
                    w.conn.send(None)
                except (BrokenPipeError, OSError):
                    pass
        for w in pool:
            w.process.join(10)
            if w.process.is_alive():
                w.process.kill()
            w.conn.close()
        bar.close()
    return results
