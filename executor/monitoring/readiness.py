"""Readiness (``GET /ready``): is this process fit to be sent work right now?

Three checks, each ``"ok"`` (or ``"skipped"``) or a short reason an operator can act on: the
runner is running, the run store answers (bounded in time), and the poll loop fetched from the
orchestrator recently. Reasons never carry exception texts: the route is unauthenticated, and the
details are in the logs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from executor.config import Settings
from executor.runner import Runner, RunnerState

log = logging.getLogger(__name__)

OK = "ok"
SKIPPED = "skipped"


class BoundedPing:
    """Calls ``ping`` in a helper thread and waits at most ``timeout_s`` for it.

    A ping that hangs (a database behind a black-holed route) is not started again while it
    hangs: later checks wait on the same attempt, so at most one thread is ever stuck.
    """

    def __init__(self, ping: Callable[[], None], timeout_s: float, *, what: str) -> None:
        self._ping = ping
        self._timeout_s = timeout_s
        self._what = what
        self._lock = threading.Lock()
        self._attempt: _Attempt | None = None

    def check(self) -> str:
        with self._lock:
            attempt = self._attempt
            if attempt is None or attempt.done.is_set():
                attempt = self._attempt = _Attempt(self._ping, self._what)
                pinger = threading.Thread(target=attempt.run, name="executor-ping", daemon=True)
                pinger.start()
        if not attempt.done.wait(self._timeout_s):
            return f"{self._what} did not answer within {self._timeout_s:g} s"
        return OK if attempt.failed is False else f"{self._what} is failing (see the logs)"


class _Attempt:
    def __init__(self, ping: Callable[[], None], what: str) -> None:
        self._ping = ping
        self._what = what
        self.done = threading.Event()
        self.failed: bool | None = None

    def run(self) -> None:
        try:
            self._ping()
            self.failed = False
        except Exception as error:
            log.warning("Readiness: %s ping failed: %s", self._what, error)
            self.failed = True
        finally:
            self.done.set()


def runner_check(runner: Runner) -> str:
    state = runner.state
    return OK if state is RunnerState.RUNNING else f"runner is {state.value}"


def poll_check(runner: Runner, settings: Settings, *, now: float | None = None) -> str:
    """Whether the poll loop fetched pending runs recently (``READY_POLL_MAX_AGE_S``).

    The time the loop spends waiting for the chains it started counts as progress: those chains
    are bounded by the step timeout, and the protocol makes the loop wait for them.
    """
    if not settings.polling_enabled:
        return SKIPPED
    poller = runner.poller
    if poller is None or not poller.running:
        return f"not polling (runner is {runner.state.value})"
    if poller.waiting_for_chains:
        return OK
    reference = poller.last_success_at or poller.expected_first_poll_at
    if reference is None:
        return OK  # started this very instant
    age = (time.monotonic() if now is None else now) - reference
    limit = settings.ready_poll_max_age_s
    if age <= limit:
        return OK
    return f"no successful poll for {age:.0f} s (limit {limit:g} s)"
