"""In-memory run store and leases: same semantics as the SQL store, gone with the process."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Collection

from marshmallow import ValidationError

from executor.domain.executions import StepExecutionData
from executor.errors import RunStoreError
from executor.ports import RunLeases, RunStore
from executor.schemas.store import validate_step_execution


class MemoryRunStore(RunStore, RunLeases):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, dict[int, StepExecutionData]] = {}
        self._leases: dict[str, tuple[str, float]] = {}

    def init(self) -> None:
        """Nothing to open: the entries live in this object."""

    def close(self) -> None:
        """Nothing to release: entries outlive a runner restart, as they would in a database."""

    def ping(self) -> None:
        """Always answers: the entries live in this object."""

    def get_step_executions(self, run_id: str) -> list[StepExecutionData]:
        with self._lock:
            entries = self._entries.get(run_id, {})
            return [copy.deepcopy(entries[index]) for index in sorted(entries)]

    def save_step_execution(self, run_id: str, data: StepExecutionData) -> None:
        try:
            validate_step_execution(data)
        except ValidationError as error:
            raise RunStoreError(f"Refused an invalid step execution: {error.messages}") from error
        with self._lock:
            self._entries.setdefault(run_id, {})[data["stepIndex"]] = copy.deepcopy(data)

    def delete_step_execution(self, run_id: str, step_index: int) -> None:
        with self._lock:
            self._entries.get(run_id, {}).pop(step_index, None)

    def acquire(self, run_id: str, owner: str, ttl_s: float) -> bool:
        now = time.monotonic()
        with self._lock:
            holder = self._leases.get(run_id)
            if holder is not None and holder[0] != owner and holder[1] > now:
                return False
            self._leases[run_id] = (owner, now + ttl_s)
            return True

    def renew(self, run_ids: Collection[str], owner: str, ttl_s: float) -> None:
        expires = time.monotonic() + ttl_s
        with self._lock:
            for run_id in run_ids:
                if self._leases.get(run_id, ("", 0.0))[0] == owner:
                    self._leases[run_id] = (owner, expires)

    def release(self, run_id: str, owner: str) -> None:
        with self._lock:
            if self._leases.get(run_id, ("", 0.0))[0] == owner:
                del self._leases[run_id]
