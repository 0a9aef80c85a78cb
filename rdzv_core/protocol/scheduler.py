"""One process-wide timer that runs the periodic work of every heartbeat.

A thread per handler is what torch's handler uses, and it is what one agent
per process needs. But a process that hosts many handlers (a test, a
benchmark's threads mode, an orchestrator driving several runs) then holds
one thread per handler, each waking once a tick: with hundreds of handlers
those threads fight over the interpreter lock exactly when a round completes
and every handler starts its heartbeat at once. Here a single timer thread
keeps every task's next due time in a heap and hands due tasks to a few
workers; a task that blocks on a slow store holds up one worker, never the
timer or the other workers.

A task is any callable returning the delay until its next run, or ``None``
to stop. :meth:`TaskHandle.cancel` returns once the task is not running and
will never run again, which is what lets a handler stop beating and then
record its own departure without a stale beat landing afterwards.
"""

from __future__ import annotations

import heapq
import itertools
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

#: Worker threads that run due tasks (a blocked store holds up only one).
WORKERS = 4

Task = Callable[[], "float | None"]


class TaskHandle:
    """A scheduled task; :meth:`cancel` stops it."""

    def __init__(self, task: Task) -> None:
        self._task = task
        self._running = threading.RLock()  # held while the task runs
        self.cancelled = False

    def run(self) -> float | None:
        """Run the task once unless cancelled; its delay until the next run."""
        with self._running:
            if self.cancelled:
                return None
            return self._task()

    def cancel(self, timeout: float = 5.0) -> None:
        """Never run again; wait up to ``timeout`` s for a run in progress
        (returns at once when called from within the task itself)."""
        self.cancelled = True
        if self._running.acquire(timeout=timeout):
            self._running.release()


class Scheduler:
    """A timer thread (daemon) plus a few pool workers, started on first use.

    Only the timer thread touches the heap of due times. New and re-armed
    tasks reach it through a ``queue.SimpleQueue`` (a C-level, lock-free
    put), so a thousand handlers starting their heartbeats at once never
    queue up on a Python lock; the timer sleeps on that queue until the
    earliest due time and takes whatever arrived meanwhile in one go.

    The workers are ``concurrent.futures`` threads, which the interpreter
    joins at exit: a beat in progress then finishes (stopped heartbeats never
    run again) rather than dying half-way through a store call.
    """

    def __init__(self, workers: int = WORKERS) -> None:
        self._inbox: queue.SimpleQueue[tuple[float, TaskHandle]] = queue.SimpleQueue()
        self._workers = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rdzv-heartbeat")
        self._timer: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def schedule(self, task: Task, delay: float = 0.0) -> TaskHandle:
        """Run ``task`` after ``delay`` s, then again after each delay it returns."""
        handle = TaskHandle(task)
        self._push(handle, delay)
        if self._timer is None:
            with self._start_lock:
                if self._timer is None:
                    self._timer = threading.Thread(target=self._run_timer, name="rdzv-heartbeat-timer", daemon=True)
                    self._timer.start()
        return handle

    def _push(self, handle: TaskHandle, delay: float) -> None:
        self._inbox.put((time.monotonic() + delay, handle))

    def _run_timer(self) -> None:
        due: list[tuple[float, int, TaskHandle]] = []
        order = itertools.count()
        while True:
            timeout = max(due[0][0] - time.monotonic(), 0.0) if due else None
            try:
                at, handle = self._inbox.get(timeout=timeout)
                heapq.heappush(due, (at, next(order), handle))
                while True:  # everything else that arrived meanwhile
                    at, handle = self._inbox.get_nowait()
                    heapq.heappush(due, (at, next(order), handle))
            except queue.Empty:
                pass
            now = time.monotonic()
            try:
                while due and due[0][0] <= now:
                    handle = heapq.heappop(due)[2]
                    if not handle.cancelled:
                        self._workers.submit(self._run_task, handle)
            except RuntimeError:  # the interpreter is shutting down
                return

    def _run_task(self, handle: TaskHandle) -> None:
        delay = handle.run()
        if delay is not None and not handle.cancelled:
            self._push(handle, delay)


_shared: Scheduler | None = None
_shared_lock = threading.Lock()


def shared_scheduler() -> Scheduler:
    """This process's scheduler, created on first use."""
    global _shared
    if _shared is not None:  # no lock on the common path: handlers start heartbeats all at once
        return _shared
    with _shared_lock:
        if _shared is None:
            _shared = Scheduler()
        return _shared


def _forget_after_fork() -> None:
    """A forked child starts afresh: the parent's threads do not exist there."""
    global _shared, _shared_lock
    _shared, _shared_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
