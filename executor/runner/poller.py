"""The poll loop: fetch available runs, report malformed ones, start chains (protocol §6.4)."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from executor.domain.runs import Dispatch
from executor.errors import ExecutorError
from executor.monitoring.metrics import ExecutorMetrics
from executor.ports import WorkflowPort
from executor.runner.inflight import InFlightRegistry

log = logging.getLogger(__name__)


class Backoff:
    """Exponential backoff with jitter, capped, that never gives up.

    The n-th consecutive failure waits a random time in [d/2, d] with d = interval * 2**(n-1),
    capped at ``maximum``; jitter keeps many executors from hammering a recovering orchestrator
    in step.
    """

    def __init__(self, interval: float, maximum: float, *, rng: random.Random | None = None):
        self.interval = interval
        self.maximum = max(maximum, interval)
        self.failures = 0
        self._rng = rng or random.Random()

    def record_success(self) -> None:
        self.failures = 0

    def record_failure(self) -> None:
        self.failures += 1

    def ceiling(self) -> float:
        """The longest the next wait can be (the interval when nothing failed)."""
        if self.failures == 0:
            return self.interval
        return min(self.maximum, self.interval * 2.0 ** min(self.failures - 1, 32))

    def next_delay(self) -> float:
        if self.failures == 0:
            return self.interval
        ceiling = self.ceiling()
        return self._rng.uniform(ceiling / 2, ceiling)


class Poller:
    """A named thread that polls until stopped.

    ``start_chain`` tries to start a chain for a dispatch and says whether it did; the poller then
    waits for the chains it started before scheduling the next poll, as the protocol says.
    """

    def __init__(
        self,
        workflow: WorkflowPort,
        in_flight: InFlightRegistry,
        start_chain: Callable[[Dispatch], bool],
        *,
        interval_s: float,
        first_delay_s: float,
        backoff_max_s: float,
        metrics: ExecutorMetrics | None = None,
    ) -> None:
        self._workflow = workflow
        self._in_flight = in_flight
        self._start_chain = start_chain
        self._first_delay_s = first_delay_s
        self.backoff = Backoff(interval_s, backoff_max_s)
        self._metrics = metrics or ExecutorMetrics()
        # For readiness (time.monotonic()): when the loop may first be expected to have polled,
        # when it last fetched successfully, and whether it is waiting for the chains it started.
        self.expected_first_poll_at: float | None = None
        self.last_success_at: float | None = None
        self.waiting_for_chains = False
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="executor-poller", daemon=True)

    def start(self) -> None:
        self.expected_first_poll_at = time.monotonic() + self._first_delay_s
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stopping.is_set()

    def stop(self, timeout: float | None = None) -> None:
        self._stopping.set()
        self._in_flight.wake()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        delay = self._first_delay_s
        while not self._stopping.wait(delay):
            try:
                self.poll_once()
            except Exception:
                log.exception("Poll cycle failed")
            delay = self.backoff.next_delay()

    def poll_once(self) -> None:
        """One cycle: fetch, report malformed runs, start chains and wait for them."""
        try:
            pending = self._workflow.fetch_pending_runs()
        except ExecutorError as error:
            self._on_failure(error)
            return
        self._on_success()

        for malformed in pending.malformed:
            try:
                self._workflow.report_malformed_run(malformed)
            except ExecutorError as error:
                log.warning(
                    "Could not report malformed run: %s", error, extra={"run_id": malformed.run_id}
                )
        runnable = [d for d in pending.dispatches if d.run_id not in self._in_flight]
        counts = {
            "fetched": pending.fetched,
            "dispatching": len(runnable),
            "malformed": len(pending.malformed),
        }
        level = logging.DEBUG if not any(counts.values()) else logging.INFO
        log.log(level, "Poll cycle completed", extra=counts)

        started = [d.run_id for d in runnable if self._start_chain(d)]
        if not started:
            return
        # Waiting here is the protocol's pacing, not a stall: each step has its own timeout.
        self.waiting_for_chains = True
        try:
            self._in_flight.wait_settled(started, give_up=self._stopping.is_set)
        finally:
            self.waiting_for_chains = False

    def _on_failure(self, error: ExecutorError) -> None:
        if self.backoff.failures == 0:
            log.warning("Orchestrator poll failed — backing off and retrying: %s", error)
        else:
            log.debug("Orchestrator poll failed again: %s", error)
        self.backoff.record_failure()
        self._metrics.poll_failed(self.backoff.failures, self.backoff.ceiling())

    def _on_success(self) -> None:
        if self.backoff.failures:
            log.info(
                "Orchestrator poll succeeded again after %d failed attempts", self.backoff.failures
            )
        self.backoff.record_success()
        self.last_success_at = time.monotonic()
        self._metrics.poll_succeeded()
