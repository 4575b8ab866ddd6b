"""Helpers of the reliability suite: executor processes, a fake orchestrator that can fail on
purpose (and be restarted on the same port), an agent that can answer anything, in-process
executors with short timeouts, and the bound the poll backoff puts on retries."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from executor.adapters.agent import AgentClient
from executor.adapters.forest_server import ActivityLogClient, ApprovalClient
from executor.adapters.orchestrator import OrchestratorClient
from executor.adapters.stores.memory import MemoryRunStore
from executor.domain.runs import PendingRuns
from executor.runner.services import Services
from executor.steps.registry import StepRegistry
from tests.conftest import AUTH_SECRET
from tests.fakes.agent import FakeAgent
from tests.fakes.orchestrator import API, ENV_SECRET, FakeOrchestrator
from tests.processes import REPO
from tests.waiting import eventually

PENDING = f"{API}/pending-run"
UPDATE_STEP = f"{API}/update-step"
FAST_RETRIES = (0.01, 0.01, 0.01)

# The protocol's messages (§7.9) that these tests expect on the wire.
STEP_STATE = "An unexpected error occurred while processing this step."
RUN_STORE = "The step state could not be accessed. Please retry."
AGENT_PORT = "An error occurred while accessing your data. Please try again."


# --- executor processes -------------------------------------------------------------------------


class ExecutorProcess:
    """``python -m executor`` in a child process, its JSON log lines in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "executor"],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def records(self) -> list[dict[str, Any]]:
        lines = self.log.read_text(errors="replace").splitlines()
        records = []
        for line in lines:
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:  # a line still being written
                    continue
        return records

    def messages(self) -> list[str]:
        return [str(r.get("message")) for r in self.records()]

    def logged(self, predicate: Callable[[list[str]], bool], timeout: float = 30) -> bool:
        """Wait until the log satisfies ``predicate``; give up early if the process ended."""
        return eventually(
            lambda: self.popen.poll() is not None or predicate(self.messages()), timeout
        ) and predicate(self.messages())

    def wait_running(self, timeout: float = 30) -> None:
        assert self.logged(
            lambda ms: any(m.startswith("Executor ") and m.endswith(" running") for m in ms),
            timeout,
        ), self.log.read_text()

    @property
    def url(self) -> str:
        listening = next(m for m in self.messages() if m.startswith("Listening on"))
        match = re.search(r":(\d+) ", listening)
        assert match is not None, listening
        return f"http://127.0.0.1:{match.group(1)}"

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=30)


# --- a fake orchestrator that fails on purpose --------------------------------------------------


class OutageOrchestrator(FakeOrchestrator):
    """The fake orchestrator, optionally on a fixed port, that can also:

    - answer a status to every request under a path prefix until told otherwise (``outages``);
    - answer raw bodies, once each, to requests under a path prefix (``raw_answers``);
    - swallow the next request under a path prefix whose JSON body satisfies a predicate
      (``swallow``): it is held, then answered 503 unprocessed when :meth:`stop` releases it, as
      if lost on the way;
    - say when each request arrived (``arrivals``).

    :meth:`successor` builds a new orchestrator on the same port that carries this one's state, as
    a restarted orchestrator would (stop this one first).
    """

    def __init__(self, port: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if port:
            self._server.server_close()  # the any-port socket the base class bound
            self._server = make_server("127.0.0.1", port, self._wsgi, threaded=True)
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
        self.outages: dict[str, int] = {}
        self.raw_answers: dict[str, list[tuple[int, bytes]]] = {}
        self.arrivals: list[tuple[float, str]] = []
        self._arrivals_lock = threading.Lock()
        self._busy = 0
        self._swallowed: list[tuple[str, Callable[[Any], bool]]] = []
        self._released = threading.Event()

    @property
    def port(self) -> int:
        return int(self._server.port)

    def successor(self) -> OutageOrchestrator:
        new = OutageOrchestrator(self.port, env_secret=self.env_secret, auto_chain=self.auto_chain)
        new.runs = self.runs
        new.access = self.access
        new.activity_logs = self.activity_logs
        new.approvals = self.approvals
        new.collection_schemas = self.collection_schemas
        new.agent_url = self.agent_url
        return new

    def swallow(self, path_prefix: str, when: Callable[[Any], bool] = lambda body: True) -> None:
        with self._arrivals_lock:
            self._swallowed.append((path_prefix, when))

    def stop(self) -> None:
        self._released.set()
        super().stop()

    def arrived(self, path_prefix: str, since: float = 0.0) -> list[float]:
        """When requests under ``path_prefix`` arrived (``time.monotonic()``), from ``since``."""
        with self._arrivals_lock:
            return [t for t, path in self.arrivals if path.startswith(path_prefix) and t >= since]

    @property
    def busy(self) -> int:
        """Requests being handled (a timed-out request may still be, in its delay)."""
        with self._arrivals_lock:
            return self._busy

    def _handle(self, request: Request) -> Response:
        with self._arrivals_lock:
            self.arrivals.append((time.monotonic(), request.path))
            self._busy += 1
        try:
            return self._answer(request)
        finally:
            with self._arrivals_lock:
                self._busy -= 1

    def _swallows(self, request: Request) -> bool:
        body = request.get_json(silent=True)
        with self._arrivals_lock:
            for rule in self._swallowed:
                prefix, when = rule
                if request.path.startswith(prefix) and when(body):
                    self._swallowed.remove(rule)
                    return True
        return False

    def _answer(self, request: Request) -> Response:
        if self._swallows(request):
            self._released.wait()
            return Response(b'{"errors": [{"detail": "lost"}]}', status=503)
        for prefix, answers in self.raw_answers.items():
            if request.path.startswith(prefix) and answers:
                status, body = answers.pop(0)
                return Response(body, status=status, mimetype="application/json")
        for prefix, status in self.outages.items():
            if request.path.startswith(prefix):
                outage = json.dumps({"errors": [{"detail": "outage"}]})
                return Response(outage, status=status, mimetype="application/json")
        return super()._handle(request)


# --- an agent that answers anything --------------------------------------------------------------


class HostileAgent(FakeAgent):
    """The fake agent, which can also answer raw bodies (``answer``) to requests of a method under
    a path prefix, before any other handling (so the probe can be left alone)."""

    def __init__(self, auth_secret: str = AUTH_SECRET) -> None:
        super().__init__(auth_secret)
        self._raw: list[tuple[str, str, int, bytes]] = []
        self._raw_lock = threading.Lock()
        self.raw_served = 0

    def answer(self, method: str, path_prefix: str, status: int, body: bytes) -> None:
        """Answer ``body`` with ``status`` to every such request from now on (replacing what was
        answered to them before)."""
        with self._raw_lock:
            self._raw = [r for r in self._raw if (r[0], r[1]) != (method, path_prefix)]
            self._raw.append((method, path_prefix, status, body))

    def _handle(self, request: Request, environ: dict[str, Any]) -> Response:
        with self._raw_lock:
            match = next(
                (
                    (status, body)
                    for method, prefix, status, body in self._raw
                    if request.method == method and request.path.startswith(prefix)
                ),
                None,
            )
            if match is not None:
                self.raw_served += 1
        if match is not None:
            return Response(match[1], status=match[0], mimetype="application/json")
        return super()._handle(request, environ)


# --- in-process executors -----------------------------------------------------------------------


def services(
    orchestrator: FakeOrchestrator,
    *,
    store: Any = None,
    workflow: Any = None,
    timeout_s: float = 10.0,
) -> Services:
    """The real adapters against the fakes, with fast retries and the given request timeout."""
    store = store if store is not None else MemoryRunStore()
    return Services(
        workflow=workflow
        or OrchestratorClient(
            orchestrator.url, ENV_SECRET, timeout_s=timeout_s, retry_delays_s=FAST_RETRIES
        ),
        run_store=store,
        leases=store,
        steps=StepRegistry(),
        agent=AgentClient(orchestrator.agent_url, AUTH_SECRET, timeout_s=timeout_s),
        activity_log=ActivityLogClient(
            orchestrator.url, timeout_s=timeout_s, retry_delays_s=FAST_RETRIES
        ),
        approvals=ApprovalClient(orchestrator.url, timeout_s=timeout_s),
    )


class CountingOrchestratorClient(OrchestratorClient):
    """The orchestrator client, noting when each poll started (``time.monotonic()``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self.poll_starts: list[float] = []

    def fetch_pending_runs(self) -> PendingRuns:
        with self._lock:
            self.poll_starts.append(time.monotonic())
        return super().fetch_pending_runs()

    def polls_between(self, start: float, end: float) -> int:
        with self._lock:
            return sum(1 for t in self.poll_starts if start <= t <= end)


def most_polls_allowed(
    window_s: float, interval_s: float, maximum_s: float, *, attempt_s: float = 0.0
) -> int:
    """The most polls that can start within ``window_s`` of failures under the poller's backoff:
    the first at the window's start, then each one failed attempt (at least ``attempt_s``) plus at
    least half its backoff step after the previous one (the n-th consecutive failure waits a random
    time in [d/2, d], d = interval * 2**(n-1) capped at ``maximum_s``)."""
    polls, elapsed, failures = 1, 0.0, 1
    while True:
        least_wait = attempt_s + min(maximum_s, interval_s * 2 ** (failures - 1)) / 2
        if elapsed + least_wait > window_s:
            return polls
        elapsed += least_wait
        polls += 1
        failures += 1


# --- JSON as a client would parse it ------------------------------------------------------------


def strict_json(data: bytes) -> Any:
    """Parse as RFC 8259 JSON: ``NaN`` and ``Infinity`` are not JSON, whatever Python accepts."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(data, parse_constant=refuse)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)

# Settings of the suite's property tests: nothing written to the work tree, no deadline per
# example (the fakes answer over real sockets), fixtures shared by the examples of one test.
FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
DEEP = 100_000  # nesting that no JSON parser built on recursion survives
