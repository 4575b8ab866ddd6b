"""Waiting for a condition in tests: poll it until a deadline, never sleep a fixed time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def eventually(predicate: Callable[[], object], timeout: float = 10.0, every: float = 0.01) -> bool:
    """True as soon as ``predicate()`` is truthy; False if it is still falsy at the deadline."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        tick.wait(every)
    return True
