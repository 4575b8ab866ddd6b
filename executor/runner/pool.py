"""A bounded pool of worker threads with a bounded backlog."""

from __future__ import annotations

import abc
import logging
import queue
import threading
import time

log = logging.getLogger(__name__)


class Task(abc.ABC):
    @abc.abstractmethod
    def run(self) -> None:
        """Do the work; exceptions are logged by the pool."""

    @abc.abstractmethod
    def cancel(self) -> None:
        """Called instead of :meth:`run` for a task still queued when the pool shuts down."""


class WorkerPool:
    """``workers`` daemon threads; at most ``workers + backlog`` tasks accepted at once.

    Daemon threads, because a host process that exits without stopping the runner must not hang
    on them; the runner's ``stop()`` is what drains work properly.
    """

    def __init__(self, workers: int, backlog: int, *, name: str = "executor-worker") -> None:
        self._capacity = workers + backlog
        self._queue: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._accepted = 0  # queued + running
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i + 1}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def has_room(self) -> bool:
        with self._lock:
            return not self._closed and self._accepted < self._capacity

    def try_submit(self, task: Task) -> bool:
        """Queue ``task``; False (and nothing queued) when the pool is full or shut down."""
        with self._lock:
            if self._closed or self._accepted >= self._capacity:
                return False
            self._accepted += 1
        self._queue.put(task)
        return True

    def shutdown(self, timeout: float | None = None) -> None:
        """Cancel queued tasks, let running ones finish, join the threads (``timeout`` in all)."""
        with self._lock:
            self._closed = True
        for _ in self._threads:
            self._queue.put(None)
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _work(self) -> None:
        while True:
            task = self._queue.get()
            if task is None:
                return
            with self._lock:
                closed = self._closed
            try:
                if closed:
                    task.cancel()
                else:
                    task.run()
            except Exception:
                log.exception("FATAL: in-flight chain rejected")
            finally:
                with self._lock:
                    self._accepted -= 1
