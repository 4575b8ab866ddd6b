"""Chains: execute a run's step, report it, and go on with the next step the orchestrator hands
back (protocol §6.7, §6.8)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from executor.domain.outcomes import StepOutcome, StepStatus
from executor.domain.runs import Dispatch
from executor.errors import (
    NON_DOMAIN_STEP_ERROR_MESSAGE,
    UNEXPECTED_ERROR_MESSAGE,
    ExecutorError,
    StepTimeout,
    WorkflowPortError,
)
from executor.monitoring.metrics import ExecutorMetrics
from executor.runner.context import StepContexts
from executor.runner.inflight import InFlightRegistry
from executor.runner.pool import Task
from executor.runner.services import Services

if TYPE_CHECKING:
    from executor.config import Settings

log = logging.getLogger(__name__)


def step_log_fields(dispatch: Dispatch) -> dict[str, Any]:
    step = dispatch.step
    return {
        "run_id": step.run_id,
        "step_id": step.step_id,
        "step_index": step.step_index,
        "step_type": step.definition.type.value,
        "collection": step.base_record_ref.collection_name,
    }


class Chain(Task):
    """One run's chain of steps, from a first dispatch until there is nothing more to do now.

    The run is registered in flight and its lease is held before the chain is queued; both are
    given back when the chain ends, whatever happens.
    """

    def __init__(
        self,
        first: Dispatch,
        *,
        pending_data: Any,
        services: Services,
        contexts: StepContexts,
        in_flight: InFlightRegistry,
        settings: Settings,
        lease_owner: str,
        is_draining: Callable[[], bool],
        may_report: Callable[[], bool],
        metrics: ExecutorMetrics | None = None,
    ) -> None:
        self.run_id = first.run_id
        self._first = first
        self._pending_data = pending_data
        self._services = services
        self._contexts = contexts
        self._in_flight = in_flight
        self._settings = settings
        self._lease_owner = lease_owner
        self._is_draining = is_draining
        self._may_report = may_report
        self._metrics = metrics or ExecutorMetrics()
        self._steps_executed = 0
        self._queued_at = time.monotonic()

    def run(self) -> None:
        try:
            if self._still_leased():
                self._run_chain()
        finally:
            self._release()

    def _still_leased(self) -> bool:
        """A chain that waited in the queue may have outlived its lease, and another process may
        have taken and even finished the run meanwhile: renew the lease before acting, or give
        the run up (the orchestrator offers it again) once the lease may have lapsed."""
        waited = time.monotonic() - self._queued_at
        ttl = self._settings.run_lease_ttl_s
        if waited < ttl / 3:
            return True  # renewed nowhere, but far from expiring
        if waited >= ttl * 0.9:
            log.warning(
                "Queued run given up — it waited past its lease", extra={"run_id": self.run_id}
            )
            return False
        try:
            if self._services.leases.acquire(
                self.run_id, self._lease_owner, self._settings.run_lease_ttl_s
            ):
                return True
            log.warning(
                "Queued run given up — its lease ran out and another process took it",
                extra={"run_id": self.run_id},
            )
        except ExecutorError as error:
            log.warning(
                "Queued run given up — lease unknown: %s", error, extra={"run_id": self.run_id}
            )
        return False

    def cancel(self) -> None:
        log.info("Queued run dropped by shutdown", extra={"run_id": self.run_id})
        self._release()

    def _release(self) -> None:
        try:
            self._services.leases.release(self.run_id, self._lease_owner)
        except ExecutorError as error:
            # The lease runs out by itself; another process can take the run after its TTL.
            log.warning("Could not release run lease: %s", error, extra={"run_id": self.run_id})
        finally:
            self._in_flight.unregister(self.run_id)

    # --- the chain loop -------------------------------------------------------------------------

    def _run_chain(self) -> None:
        self._steps_executed = 0
        try:
            self._chain_steps()
        finally:
            self._metrics.chain_ended(self._steps_executed)

    def _chain_steps(self) -> None:
        current = self._first
        pending_data = self._pending_data
        chained = 0
        while True:
            started = time.monotonic()
            try:
                outcome = self._execute_step(current, pending_data)
            except Exception:
                log.exception(
                    "FATAL: executor contract violated — reporting synthetic error outcome",
                    extra=step_log_fields(current),
                )
                outcome = _synthetic_error(current)
                self._count_step(current, outcome, started)
                self._report(current, outcome)
                return
            self._count_step(current, outcome, started)
            next_dispatch = self._report(current, outcome)
            if next_dispatch is None:
                return
            if (
                next_dispatch.run_id != current.run_id
                or next_dispatch.step.step_index <= current.step.step_index
            ):
                log.error(
                    "Orchestrator returned an unexpected next step (run %s, step %s)",
                    next_dispatch.run_id,
                    next_dispatch.step.step_index,
                    extra=step_log_fields(current),
                )
                return
            if chained >= self._settings.max_chain_depth:
                log.info(
                    "Chain depth limit reached — the next step waits for the next poll",
                    extra=step_log_fields(current),
                )
                return
            if self._is_draining():
                log.info("Chain stopped — executor draining", extra=step_log_fields(current))
                return
            chained += 1
            current = next_dispatch
            pending_data = None  # pendingData belongs to the first step only

    def _count_step(self, dispatch: Dispatch, outcome: StepOutcome, started: float) -> None:
        self._steps_executed += 1
        self._metrics.step_executed(
            dispatch.step.definition.type, outcome.status, time.monotonic() - started
        )

    def _report(self, dispatch: Dispatch, outcome: StepOutcome) -> Dispatch | None:
        if not self._may_report():
            # The runner stopped while this step ran past the drain deadline: leave the step
            # unreported (the orchestrator offers it again) rather than report it half-done.
            log.warning(
                "Outcome not reported — the executor stopped before the step ended",
                extra=step_log_fields(dispatch),
            )
            return None
        try:
            next_dispatch = self._services.workflow.report_outcome(dispatch.run_id, outcome)
        except WorkflowPortError as error:
            log.error("Failed to report step outcome: %s", error, extra=step_log_fields(dispatch))
            return None
        if next_dispatch is None:
            log.info(
                "Chain completed — orchestrator returned no further step",
                extra=step_log_fields(dispatch),
            )
        return next_dispatch

    # --- one step -------------------------------------------------------------------------------

    def _execute_step(self, dispatch: Dispatch, pending_data: Any) -> StepOutcome:
        """Run the step in a thread of its own so that a deadline can be kept without killing it
        (the protocol lets late work finish in the background and discards its result)."""
        fields = step_log_fields(dispatch)
        try:
            executor = self._services.steps.build(self._contexts.build(dispatch, pending_data))
        except ExecutorError as error:
            log.warning("Step could not be prepared: %s", error, extra=fields)
            return _error(dispatch, error.user_message)
        except Exception:
            log.exception("Step could not be prepared", extra=fields)
            return _error(dispatch, UNEXPECTED_ERROR_MESSAGE)
        attempt = _StepAttempt(executor.execute, dispatch, fields)
        started = time.monotonic()
        worker = threading.Thread(
            target=attempt.run,
            name=f"step-{dispatch.run_id}-{dispatch.step.step_index}",
            daemon=True,
        )
        worker.start()
        deadline = started + self._settings.step_timeout_s
        renew_every = self._settings.run_lease_ttl_s / 3
        while not attempt.done.wait(max(0.0, min(renew_every, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                attempt.abandon()
                log.warning(
                    "Step timed out", extra={**fields, "timeout_s": self._settings.step_timeout_s}
                )
                return _error(dispatch, StepTimeout.user_message)
            self._renew_lease()
        outcome = attempt.outcome
        assert outcome is not None
        log.info(
            "Step executed",
            extra={
                **fields,
                "status": outcome.status.value,
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
            },
        )
        return outcome

    def _renew_lease(self) -> None:
        try:
            self._services.leases.renew(
                [self.run_id], self._lease_owner, self._settings.run_lease_ttl_s
            )
        except ExecutorError as error:
            log.warning("Could not renew run lease: %s", error, extra={"run_id": self.run_id})


class _StepAttempt:
    """Runs a step executor and turns whatever happens into an outcome (steps never crash)."""

    def __init__(
        self, execute: Callable[[], StepOutcome], dispatch: Dispatch, fields: dict[str, Any]
    ):
        self._execute = execute
        self._dispatch = dispatch
        self._fields = fields
        self._abandoned = False
        self.done = threading.Event()
        self.outcome: StepOutcome | None = None

    def abandon(self) -> None:
        self._abandoned = True

    def run(self) -> None:
        try:
            self.outcome = self._execute()
        except ExecutorError as error:
            late = " (after its timeout)" if self._abandoned else ""
            log.warning("Step failed%s: %s", late, error, extra=self._fields)
            self.outcome = _error(self._dispatch, error.user_message)
        except Exception as error:
            if self._abandoned:
                log.warning("Step failed after its timeout: %r", error, extra=self._fields)
            else:
                log.exception("Step raised an unexpected error", extra=self._fields)
            self.outcome = _error(self._dispatch, NON_DOMAIN_STEP_ERROR_MESSAGE)
        finally:
            self.done.set()


def _error(dispatch: Dispatch, message: str) -> StepOutcome:
    step = dispatch.step
    return StepOutcome(
        type=step.definition.type.outcome_type,
        step_id=step.step_id,
        step_index=step.step_index,
        status=StepStatus.ERROR,
        error=message,
    )


def _synthetic_error(dispatch: Dispatch) -> StepOutcome:
    return _error(dispatch, UNEXPECTED_ERROR_MESSAGE)
