"""The executor's Prometheus metrics, recorded through one object per app.

Each app gets its own :class:`ExecutorMetrics` and :class:`~prometheus_client.CollectorRegistry`
(never the global one), so that many apps can live in one process (tests, a host app with two
executors) without duplicate-name errors. Under gunicorn every process writes its values to the
multiprocess directory as well, and ``/metrics`` reads them all (:mod:`.exposition`).

Label values come from bounded sets only (step types, statuses, port and operation names): never
run ids, user ids or record data.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from executor.domain.outcomes import StepStatus
from executor.domain.steps import StepType

PREFIX = "workflow_executor_"
POLL_RESULTS = ("ok", "failed")
CLAIM_SOURCES = ("poll", "trigger")
# Steps run from milliseconds (guidance) to minutes (AI, actions; STEP_TIMEOUT_S defaults to 300).
STEP_BUCKETS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Port calls: a store write is ~1 ms, an orchestrator call tens of ms, a model call seconds.
PORT_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
CHAIN_BUCKETS = (1, 2, 3, 5, 10, 20, 50, 100)


class ExecutorMetrics:
    """Every metric of one executor, and the few verbs the runner records them with."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.polls = Counter(
            PREFIX + "polls_total",
            "Orchestrator poll cycles, by result (ok: the pending runs were fetched).",
            ["result"],
            registry=r,
        )
        self.runs_claimed = Counter(
            PREFIX + "runs_claimed_total",
            "Runs this executor took on (lease taken, chain queued), by how it got them.",
            ["source"],
            registry=r,
        )
        self.steps_executed = Counter(
            PREFIX + "steps_executed_total",
            "Steps executed, by step type and outcome status.",
            ["step_type", "status"],
            registry=r,
        )
        self.step_duration = Histogram(
            PREFIX + "step_duration_seconds",
            "Time to execute one step (preparation included, reporting excluded).",
            ["step_type"],
            buckets=STEP_BUCKETS_S,
            registry=r,
        )
        self.port_call_duration = Histogram(
            PREFIX + "port_call_duration_seconds",
            "Time of one call to a port (orchestrator, agent, AI model, run store, ...).",
            ["port", "operation"],
            buckets=PORT_BUCKETS_S,
            registry=r,
        )
        self.port_call_errors = Counter(
            PREFIX + "port_call_errors_total",
            "Port calls that raised, by port and operation (run store errors: port=run_store).",
            ["port", "operation"],
            registry=r,
        )
        self.runs_in_flight = Gauge(
            PREFIX + "runs_in_flight",
            "Runs with a chain executing or queued.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.chain_depth = Histogram(
            PREFIX + "chain_depth_steps",
            "Steps one chain executed one after the other (the first step counts).",
            buckets=CHAIN_BUCKETS,
            registry=r,
        )
        self.poll_consecutive_failures = Gauge(
            PREFIX + "poll_consecutive_failures",
            "Orchestrator polls failed in a row (0: not backing off); the worst process.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.poll_backoff_seconds = Gauge(
            PREFIX + "poll_backoff_seconds",
            "Wait before the next poll after a failure (0: not backing off); the worst process.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.last_successful_poll = Gauge(
            PREFIX + "last_successful_poll_timestamp_seconds",
            "Unix time of the last successful poll; the most recent process.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self._port_histograms: dict[tuple[str, str], Histogram] = {}
        # Known label values start at 0, so that rates and alerts work before the first event.
        for result in POLL_RESULTS:
            self.polls.labels(result)
        for source in CLAIM_SOURCES:
            self.runs_claimed.labels(source)
        for step_type in StepType:
            self.step_duration.labels(step_type.value)
            for status in StepStatus:
                self.steps_executed.labels(step_type.value, status.value)

    # --- what the runner records ----------------------------------------------------------------

    def poll_succeeded(self) -> None:
        self.polls.labels("ok").inc()
        self.poll_consecutive_failures.set(0)
        self.poll_backoff_seconds.set(0)
        self.last_successful_poll.set(time.time())

    def poll_failed(self, consecutive_failures: int, next_delay_s: float) -> None:
        self.polls.labels("failed").inc()
        self.poll_consecutive_failures.set(consecutive_failures)
        self.poll_backoff_seconds.set(next_delay_s)

    def run_claimed(self, source: str) -> None:
        self.runs_claimed.labels(source).inc()

    def step_executed(self, step_type: StepType, status: StepStatus, duration_s: float) -> None:
        self.steps_executed.labels(step_type.value, status.value).inc()
        self.step_duration.labels(step_type.value).observe(duration_s)

    def chain_ended(self, steps: int) -> None:
        if steps:
            self.chain_depth.observe(steps)

    def in_flight_changed(self, count: int) -> None:
        self.runs_in_flight.set(count)

    def port_called(self, port: str, operation: str, duration_s: float, *, failed: bool) -> None:
        # Every port call lands here: a dict lookup instead of labels() (lock, label checks)
        # keeps a timed call within a few microseconds of an untimed one.
        key = (port, operation)
        histogram = self._port_histograms.get(key)
        if histogram is None:
            histogram = self._port_histograms.setdefault(
                key, self.port_call_duration.labels(port, operation)
            )
        histogram.observe(duration_s)
        if failed:
            self.port_call_errors.labels(port, operation).inc()
