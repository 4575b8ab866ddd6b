"""Collection schemas cached per rendering (protocol §6.10)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from executor.domain.collections import CollectionSchema
from executor.ports import WorkflowPort

MAX_ENTRIES = 1000  # renderings x collections; the least recently used go first


class SchemaCache:
    """``(rendering id, collection name) → schema`` with a TTL. One rendering's schema never
    serves another: the rendering is part of the key."""

    def __init__(
        self,
        workflow: WorkflowPort,
        ttl_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._workflow = workflow
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[int, str], tuple[float, CollectionSchema]] = OrderedDict()

    def get(
        self, run_id: str, rendering_id: int, collection_name: str, *, fresh: bool = False
    ) -> CollectionSchema:
        """The schema from the cache, or from the orchestrator on a miss, a stale entry, or when
        ``fresh`` asks for it (e.g. a field the cached schema lacks may have been added)."""
        key = (rendering_id, collection_name)
        now = self._clock()
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None and not fresh and now - cached[0] < self._ttl_s:
                self._entries.move_to_end(key)
                return cached[1]
        schema = self._workflow.get_collection_schema(run_id, collection_name)
        with self._lock:
            self._entries[key] = (now, schema)
            self._entries.move_to_end(key)
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)
        return schema


class RunSchemas:
    """The schemas one step sees: its run's, for its user's rendering."""

    def __init__(self, cache: SchemaCache, run_id: str, rendering_id: int) -> None:
        self._cache = cache
        self._run_id = run_id
        self._rendering_id = rendering_id

    def get(self, collection_name: str, *, fresh: bool = False) -> CollectionSchema:
        return self._cache.get(self._run_id, self._rendering_id, collection_name, fresh=fresh)
