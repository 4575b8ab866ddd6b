"""The Runner: one per serving process. It owns the poll thread, the worker pool, the in-flight
registry, the run leases and, when a port is configured, the HTTP server (protocol §6)."""

from __future__ import annotations

import enum
import functools
import logging
import os
import socket
import threading
import typing as t
import uuid
from typing import Any

from executor.domain.runs import Dispatch
from executor.errors import (
    Category,
    ExecutorBusy,
    ExecutorError,
    MalformedRunError,
    RunAlreadyInFlight,
    RunNotFound,
    UserMismatch,
    WorkflowPortError,
)
from executor.monitoring.metrics import ExecutorMetrics
from executor.runner.chain import Chain
from executor.runner.context import StepContexts
from executor.runner.inflight import InFlightRegistry
from executor.runner.poller import Poller
from executor.runner.pool import WorkerPool
from executor.runner.schema_cache import SchemaCache
from executor.runner.services import Services
from executor.servers import GunicornServer, WerkzeugServer
from executor.version import __version__

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from executor.config import Settings

log = logging.getLogger(__name__)


class RunnerState(enum.StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    DRAINING = "draining"
    STOPPED = "stopped"


class RunnerError(ExecutorError):
    """The runner could not start, or is not in a state to accept work."""

    user_message = "The executor is not accepting work right now. Please try again in a moment."
    category = Category.UNAVAILABLE


class Runner:
    """Polls, executes and drains. ``start()``/``stop()`` are idempotent and thread-safe, and a
    stopped runner can be started again.

    ``http_port=None`` starts no server (a host already serves the app); ``0`` picks a free port,
    readable from :attr:`http_port` once started.
    """

    def __init__(
        self,
        settings: Settings,
        services: Services,
        *,
        app: WSGIApplication | None = None,
        http_port: int | None = None,
        http_host: str = "127.0.0.1",
        server: str = "werkzeug",
        metrics: ExecutorMetrics | None = None,
    ) -> None:
        if http_port is not None and server == "werkzeug" and app is None:
            raise ValueError("A Werkzeug server needs the WSGI app to serve")
        self.settings = settings
        self.services = services
        self._app = app
        self._requested_port = http_port
        self._http_host = http_host
        self._server_kind = server
        self._lock = threading.RLock()
        self._state = RunnerState.IDLE
        self.metrics = metrics or ExecutorMetrics()  # a registry of its own unless given one
        self.in_flight = InFlightRegistry(on_count=self.metrics.in_flight_changed)
        self._contexts = StepContexts(
            services, SchemaCache(services.workflow, settings.schema_cache_ttl_s)
        )
        self._pool: WorkerPool | None = None
        self._poller: Poller | None = None
        self._server: WerkzeugServer | GunicornServer | None = None
        self._lease_owner = ""
        self._generation = 0
        self.http_port: int | None = None

    @property
    def state(self) -> RunnerState:
        return self._state

    @property
    def poller(self) -> Poller | None:
        return self._poller

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start polling and executing (and serving, with a port). No-op when running.

        A failed start raises and leaves nothing running.
        """
        with self._lock:
            if self._state is RunnerState.RUNNING:
                return
            if self._state is RunnerState.DRAINING:
                raise RunnerError("The runner is stopping; start it again once it has stopped")
            try:
                self._start_locked()
            except BaseException:
                self._teardown()
                self._state = RunnerState.IDLE
                raise

    def _start_locked(self) -> None:
        settings = self.settings
        self.services.agent.probe()  # before touching the database (protocol §6.3)
        self.services.run_store.init()
        self._lease_owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._generation += 1  # chains of an earlier start must not report into this one
        self._pool = WorkerPool(settings.max_concurrent_runs, settings.max_queued_runs)
        self._state = RunnerState.RUNNING
        threading.Thread(target=self._report_version, name="executor-metadata", daemon=True).start()
        self._poller = Poller(
            self.services.workflow,
            self.in_flight,
            self._start_polled_chain,
            interval_s=settings.polling_interval_s,
            first_delay_s=settings.first_poll_delay_s,
            backoff_max_s=settings.poll_backoff_max_s,
            metrics=self.metrics,
        )
        if settings.polling_enabled:
            self._poller.start()
        # Migration 002 before serving (§6.3): in this process whoever serves the app (this
        # runner's server, or a host such as a gunicorn worker that started this runner).
        self.services.mcp_credentials.init()
        if settings.encryption_key is None:
            log.warning(
                "FOREST_EXECUTOR_ENCRYPTION_KEY is not set: MCP OAuth credentials cannot be stored"
            )
        if self._requested_port is not None:
            self._server = self._make_server(self._requested_port)
            self._server.start()
            self.http_port = self._server.port
            log.info("Listening on %s:%s (%s)", self._http_host, self.http_port, self._server_kind)
        log.info(
            "Executor %s running",
            __version__,
            extra={"polling": settings.polling_enabled, "workers": settings.max_concurrent_runs},
        )

    def _make_server(self, port: int) -> WerkzeugServer | GunicornServer:
        if self._server_kind == "gunicorn":
            # The parent polls; gunicorn's workers execute the runs they are triggered with.
            config = {**self.settings.as_mapping(), "POLLING_ENABLED": False}
            if self.settings.store_url is not None:
                config["DATABASE_URL"] = self.settings.store_url
            return GunicornServer(
                config,
                self._http_host,
                port,
                workers=self.settings.http_workers,
                graceful_timeout_s=self.settings.stop_timeout_s + 5,
            )
        assert self._app is not None
        return WerkzeugServer(self._app, self._http_host, port)

    def stop(self) -> None:
        """Drain in-flight chains (up to ``STOP_TIMEOUT_S``), stop the server, close the store.

        No-op unless running.
        """
        with self._lock:
            if self._state is not RunnerState.RUNNING:
                return
            self._state = RunnerState.DRAINING
        log.info("Executor draining")
        if self._poller is not None:
            self._poller.stop(timeout=self.settings.stop_timeout_s)
        settled = self.in_flight.wait_settled(timeout=self.settings.stop_timeout_s)
        if not settled:
            log.error(
                "Drain timeout — runs still in flight",
                extra={"run_ids": sorted(self.in_flight.snapshot())},
            )
        # Audit status updates go out in the background; they must not be lost on the way out.
        self.services.activity_log.flush(timeout=self.settings.stop_timeout_s)
        with self._lock:
            self._teardown()
            self._state = RunnerState.STOPPED
        log.info("Executor stopped")

    def _teardown(self) -> None:
        """Release whatever a start created; safe on a partial start."""
        server, self._server = self._server, None
        if server is not None:
            try:
                server.stop()
            except Exception:
                log.exception("Failed to stop the HTTP server")
        self.http_port = None
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.stop(timeout=self.settings.stop_timeout_s)
        pool, self._pool = self._pool, None
        if pool is not None:
            # Idle workers exit at once; chains still running had their drain time already.
            pool.shutdown(timeout=1.0)
        try:
            self.services.run_store.close()
        except Exception:
            log.exception("Failed to close the run store")
        try:
            self.services.mcp_credentials.close()
        except Exception:
            log.exception("Failed to close the MCP OAuth credential store")
        if self.services.mcp is not None:
            try:
                self.services.mcp.close()  # protocol §6.9: MCP connections closed on stop
            except Exception:
                log.exception("Failed to close the MCP clients")

    def poll_once(self) -> None:
        """Run one poll cycle now, in the caller's thread (also with polling disabled)."""
        poller = self._poller
        if self._state is not RunnerState.RUNNING or poller is None:
            raise RunnerError(f"Cannot poll: runner is {self._state}")
        poller.poll_once()

    def _report_version(self) -> None:
        try:
            self.services.workflow.report_executor_metadata(__version__)
        except Exception as error:
            log.warning("Could not report the executor version: %s", error)

    # --- work intake ----------------------------------------------------------------------------

    def trigger(self, run_id: str, user_id: int, pending_data: Any = None) -> None:
        """Claim ``run_id`` for ``user_id`` and start its chain in the background.

        Returns once the chain is queued; raises an :class:`ExecutorError` that says why not.
        """
        if self._state is not RunnerState.RUNNING:
            raise RunnerError(f"Trigger refused: runner is {self._state}")
        if not self.in_flight.try_register(run_id):
            log.info("Trigger ignored — run already in flight", extra={"run_id": run_id})
            raise RunAlreadyInFlight(f"Run {run_id} is in flight in this process")
        started = False
        try:
            started = self._claim_and_start(run_id, user_id, pending_data)
        finally:
            if not started:
                self.in_flight.unregister(run_id)

    def _claim_and_start(self, run_id: str, user_id: int, pending_data: Any) -> bool:
        pool = self._pool
        if pool is None or not pool.has_room():
            raise ExecutorBusy(f"No room for run {run_id}")
        leases, owner = self.services.leases, self._lease_owner
        if not leases.acquire(run_id, owner, self.settings.run_lease_ttl_s):
            log.info("Trigger ignored — run in flight in another process", extra={"run_id": run_id})
            raise RunAlreadyInFlight(f"Run {run_id} is leased by another process")
        chain_started = False
        try:
            dispatch = self._claim(run_id)
            if dispatch.step.user.id != user_id:
                log.warning(
                    "Trigger refused — the run belongs to another user",
                    extra={"run_id": run_id, "user_id": user_id},
                )
                raise UserMismatch(f"User {user_id} triggered run {run_id} of another user")
            chain_started = self._submit(dispatch, pending_data)
            if not chain_started:
                raise ExecutorBusy(f"No room for run {run_id}")
            self.metrics.run_claimed("trigger")
            return True
        finally:
            if not chain_started:
                self._release_lease(run_id)

    def _claim(self, run_id: str) -> Dispatch:
        try:
            dispatch = self.services.workflow.claim_run(run_id)
        except MalformedRunError as error:
            try:
                self.services.workflow.report_malformed_run(error.run)  # type: ignore[arg-type]
            except ExecutorError as report_error:
                log.warning("Could not report malformed run: %s", report_error)
            raise
        if dispatch is None:
            raise RunNotFound(f"Run {run_id} has nothing to claim")
        if dispatch.run_id != run_id:
            # Executing it would bypass the guards taken for the run asked for.
            raise WorkflowPortError(f"Claiming run {run_id} answered run {dispatch.run_id}")
        return dispatch

    def _start_polled_chain(self, dispatch: Dispatch) -> bool:
        run_id = dispatch.run_id
        if not self.in_flight.try_register(run_id):
            return False
        started = False
        try:
            if self.services.leases.acquire(
                run_id, self._lease_owner, self.settings.run_lease_ttl_s
            ):
                started = self._submit(dispatch, None)
                if started:
                    self.metrics.run_claimed("poll")
                else:
                    log.warning(
                        "Worker pool full — run left for a later poll", extra={"run_id": run_id}
                    )
                    self._release_lease(run_id)
            else:
                log.debug(
                    "Polled run skipped — leased by another process", extra={"run_id": run_id}
                )
        except ExecutorError as error:
            log.warning("Could not lease polled run: %s", error, extra={"run_id": run_id})
        finally:
            if not started:
                self.in_flight.unregister(run_id)
        return started

    def _submit(self, dispatch: Dispatch, pending_data: Any) -> bool:
        pool = self._pool
        # A poll or trigger that was already past its own checks when a stop began adds nothing.
        if pool is None or self._state is not RunnerState.RUNNING:
            return False
        chain = Chain(
            dispatch,
            pending_data=pending_data,
            services=self.services,
            contexts=self._contexts,
            in_flight=self.in_flight,
            settings=self.settings,
            lease_owner=self._lease_owner,
            is_draining=lambda: self._state is not RunnerState.RUNNING,
            may_report=functools.partial(self._is_current, self._generation),
            metrics=self.metrics,
        )
        return pool.try_submit(chain)

    def _is_current(self, generation: int) -> bool:
        """Whether chains started in ``generation`` may still report (not after their stop)."""
        return self._generation == generation and self._state in (
            RunnerState.RUNNING,
            RunnerState.DRAINING,
        )

    def _release_lease(self, run_id: str) -> None:
        try:
            self.services.leases.release(run_id, self._lease_owner)
        except ExecutorError as error:
            log.warning("Could not release run lease: %s", error, extra={"run_id": run_id})
