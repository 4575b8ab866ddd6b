"""Stored step executions read back: parsed every time, validated once per distinct document.

A run's entries are read again at every step of its chain and on every ``GET /runs/<id>``, and
validating them with marshmallow cost more than the query itself. A document's validity depends
only on its text, so the digests of texts already found valid are remembered (bounded); a text
never seen — written by another process, by an older release, or by hand — is still validated.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict

from executor.domain.executions import StepExecutionData
from executor.schemas.store import validate_step_execution

# About 100 bytes each with the dictionary's overhead: 1 MiB at most. The entries re-read are those
# of runs in flight, a few per run; older digests only fill the memory up to this bound.
MAX_KNOWN_DOCUMENTS = 10_000


class StoredDocuments:
    """``load(text)`` parses a stored document and checks it, skipping texts known to be valid."""

    def __init__(self, max_known: int = MAX_KNOWN_DOCUMENTS) -> None:
        self._max_known = max_known
        self._known: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def load(self, text: str | bytes) -> StepExecutionData:
        """Raises ``ValueError`` for text that is not JSON, ``marshmallow.ValidationError`` for a
        document that is not a valid step execution."""
        raw = text.encode() if isinstance(text, str) else text
        document = json.loads(raw)
        digest = hashlib.blake2b(raw, digest_size=16).digest()
        with self._lock:
            if digest in self._known:
                self._known.move_to_end(digest)
                return document  # type: ignore[no-any-return]
        validate_step_execution(document)
        with self._lock:
            self._known[digest] = None
            while len(self._known) > self._max_known:
                self._known.popitem(last=False)
        return document  # type: ignore[no-any-return]
