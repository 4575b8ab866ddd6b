"""The in-flight registry: which runs this process is executing (protocol §6.5)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection


class InFlightRegistry:
    """Run ids with a chain executing (or queued) in this process.

    Keyed by run, not step, because a chain advances the step. Registration is atomic, so two
    triggers of the same run in one process cannot both get through.
    """

    def __init__(self, on_count: Callable[[int], None] | None = None) -> None:
        self._changed = threading.Condition()
        self._runs: set[str] = set()
        self._on_count = on_count  # told the new count, under the lock (a metrics gauge)

    def try_register(self, run_id: str) -> bool:
        with self._changed:
            if run_id in self._runs:
                return False
            self._runs.add(run_id)
            self._counted()
            return True

    def unregister(self, run_id: str) -> None:
        with self._changed:
            self._runs.discard(run_id)
            self._counted()
            self._changed.notify_all()

    def _counted(self) -> None:
        if self._on_count is not None:
            self._on_count(len(self._runs))

    def __contains__(self, run_id: object) -> bool:
        with self._changed:
            return run_id in self._runs

    def snapshot(self) -> frozenset[str]:
        with self._changed:
            return frozenset(self._runs)

    def wait_settled(
        self,
        run_ids: Collection[str] | None = None,
        *,
        timeout: float | None = None,
        give_up: Callable[[], bool] = lambda: False,
    ) -> bool:
        """Wait until none of ``run_ids`` (default: any run) is in flight, ``give_up()`` turns
        true (checked whenever the registry changes or :meth:`wake` is called), or the timeout
        passes. True when the runs settled."""
        watched = None if run_ids is None else set(run_ids)

        def settled() -> bool:
            return not (self._runs if watched is None else self._runs & watched)

        with self._changed:
            self._changed.wait_for(lambda: settled() or give_up(), timeout=timeout)
            return settled()

    def wake(self) -> None:
        """Re-evaluate the conditions of every waiter (e.g. after a stop was requested)."""
        with self._changed:
            self._changed.notify_all()
