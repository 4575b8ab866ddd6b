"""Who may read a run: the orchestrator's access check (protocol §5.5), with granted answers reused
for a few seconds.

A front polling ``GET /runs/<id>`` while a step runs would otherwise cost one orchestrator round
trip per request, which dominated the route's time (see the README's benchmarks). Only grants are
reused, and only briefly: a refusal is always asked again (access may have just been given), and a
revoked access stops working within ``ACCESS_CHECK_CACHE_S``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from executor.ports import WorkflowPort

MAX_REMEMBERED_GRANTS = 10_000  # (run, user) pairs; the oldest is forgotten first


class AccessChecks:
    """``WorkflowPort.has_access`` with a bounded, time-limited memory of grants."""

    def __init__(
        self,
        workflow: WorkflowPort,
        *,
        grant_ttl_s: float,
        max_grants: int = MAX_REMEMBERED_GRANTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._workflow = workflow
        self._ttl_s = grant_ttl_s
        self._max_grants = max_grants
        self._clock = clock
        self._grants: OrderedDict[tuple[str, int], float] = OrderedDict()  # → expiry
        self._refusals: OrderedDict[tuple[str, int], int] = OrderedDict()  # → refusals seen
        self._lock = threading.Lock()

    def has_access(self, run_id: str, user_id: int) -> bool:
        """Raises what ``WorkflowPort.has_access`` raises when the orchestrator must be asked."""
        if self._ttl_s <= 0:
            return self._workflow.has_access(run_id, user_id)
        key = (run_id, user_id)
        with self._lock:
            expiry = self._grants.get(key)
            if expiry is not None and expiry > self._clock():
                return True
            asked_at, generation = self._clock(), self._refusals.get(key, 0)
        # Asked outside the lock: one slow answer must not hold up every other reader.
        granted = self._workflow.has_access(run_id, user_id)
        with self._lock:
            if not granted:
                self._grants.pop(key, None)
                # A grant asked for before this refusal, and answered after it, is not kept.
                self._refusals[key] = generation + 1
                self._refusals.move_to_end(key)
                while len(self._refusals) > self._max_grants:
                    self._refusals.popitem(last=False)
            elif self._refusals.get(key, 0) == generation:
                # Counted from the question, not the answer: a slow "yes" is not made younger.
                self._grants[key] = asked_at + self._ttl_s
                self._grants.move_to_end(key)
                while len(self._grants) > self._max_grants:
                    self._grants.popitem(last=False)
        return granted
