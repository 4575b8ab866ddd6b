"""Shared pieces of the benchmarks: instrumented fakes, executor processes, PostgreSQL schemas,
statistics and tables.

The fakes are subclassed here, never edited: the subclasses time every request in a WSGI
middleware, timestamp each ``update-step`` when it arrives, keep their request logs bounded (a
10,000-step run would otherwise make the fakes slower and bigger as it goes), and wake whoever
waits for a run to end.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import itertools
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx

from tests.conftest import AUTH_SECRET, make_token
from tests.fakes.agent import FakeAgent, collection_schemas
from tests.fakes.orchestrator import (
    API,
    FakeOrchestrator,
    _awaiting,
    _json,
    guidance_step,
    record_step,
)
from tests.processes import REPO, executor_environment, free_port

# The fakes' Werkzeug servers log one line per request: silence them (it also slows them).
logging.getLogger("werkzeug").setLevel(logging.ERROR)

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
USER_ID = 7
RECORD_ID = "1"  # customer 1 of the fake agent's dataset (its company is "Acme")
PENDING_INPUT = {"userInput": "benchmark note"}
UPDATE_STEP = f"{API}/update-step"


def chain_steps() -> list[dict[str, Any]]:
    """The deterministic 5-step chain: no AI anywhere, every record step pinned to
    workflow-start (after a load-related step an unpinned source would be the AI's choice)."""
    start = {"selectedRecordStepId": "workflow-start"}
    return [
        guidance_step("manual"),  # answered by the trigger's pendingData
        record_step("get-data", fieldNames=["name", "email"], **start),
        record_step("update-data", fieldName="tier", value="silver", **start),
        record_step("load-related-record", relationName="company", **start),
        record_step("trigger-action", actionName="send-invoice", **start),
    ]


def one_step() -> list[dict[str, Any]]:
    """A single manual guidance step (answered by the trigger's pendingData)."""
    return [guidance_step("manual")]


def pg_url() -> str:
    return os.environ.get("EXECUTOR_TEST_POSTGRES_URL") or DEFAULT_PG_URL


# --- timing middleware ----------------------------------------------------------------------------

_ID_SEGMENT = re.compile(r"^(\d+|idx|[^/]*%7C[^/]*|[^/]*\|[^/]*)$")


def route_of(method: str, path: str) -> str:
    """``GET /forest/customers/:id``: the request's method and path, ids folded."""
    parts = [":id" if _ID_SEGMENT.match(p) else p for p in path.split("/")]
    return f"{method} {'/'.join(parts)}"


class TimedWsgi:
    """Wraps a WSGI app and adds up, per route, how many requests it served and for how long."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.app(environ, start_response)
        finally:
            elapsed = time.perf_counter() - started
            route = route_of(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""))
            with self._lock:
                total = self._totals[route]
                total[0] += 1
                total[1] += elapsed

    def snapshot(self) -> dict[str, tuple[int, float]]:
        with self._lock:
            return {k: (int(v[0]), v[1]) for k, v in self._totals.items()}

    @staticmethod
    def diff(
        after: dict[str, tuple[int, float]], before: dict[str, tuple[int, float]]
    ) -> dict[str, tuple[int, float]]:
        out = {}
        for route, (count, seconds) in after.items():
            c0, s0 = before.get(route, (0, 0.0))
            if count - c0:
                out[route] = (count - c0, seconds - s0)
        return out


# --- a keep-alive server for the fakes ------------------------------------------------------------


class _KeepAliveHandler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 with persistent connections for a WSGI app that answers with whole bodies.

    Werkzeug's development server, which the fakes use, answers every request with
    ``Connection: close``: each call of the executor would then pay a TCP connect (and the fake a
    new thread), which a real orchestrator or agent behind keep-alive does not cost.
    """

    protocol_version = "HTTP/1.1"
    server: KeepAliveServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(path).encode().decode("latin-1"),
            "QUERY_STRING": query,
            "RAW_URI": self.path,
            "REQUEST_URI": self.path,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": str(self.server.port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": self.client_address[1],
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(length) if length else "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name in set(self.headers.keys()):
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                environ[key] = ",".join(self.headers.get_all(name) or [])
        answer: dict[str, Any] = {}

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            answer["status"], answer["headers"] = status, headers
            return lambda data: None

        result = self.server.app(environ, start_response)
        try:
            payload = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        code, _, reason = answer["status"].partition(" ")
        self.send_response(int(code), reason)
        for key, value in answer["headers"]:
            if key.lower() not in ("content-length", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        # Headers and body in one write: two small writes would meet Nagle and delayed ACKs.
        self._headers_buffer.append(b"\r\n" + payload)  # type: ignore[attr-defined]
        self.flush_headers()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class KeepAliveServer(http.server.ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections must not hold up the exit

    def __init__(self, app: Callable[..., Any]) -> None:
        super().__init__(("127.0.0.1", 0), _KeepAliveHandler)
        self.app = app

    @property
    def port(self) -> int:
        return int(self.server_address[1])


def _instrument(fake: Any, keep_alive: bool) -> TimedWsgi:
    """Time the fake's WSGI app; with ``keep_alive`` serve it from a :class:`KeepAliveServer`
    (the fake is not started yet: its thread is made again for the new server)."""
    timing = TimedWsgi(fake._server.app)
    if keep_alive:
        fake._server.server_close()
        fake._server = KeepAliveServer(timing)
        fake._thread = threading.Thread(
            target=fake._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
    else:
        fake._server.app = timing
    return timing


# --- instrumented fakes ---------------------------------------------------------------------------


class BenchOrchestrator(FakeOrchestrator):
    """The fake orchestrator, timed and bounded, with an ``update-step`` arrival log.

    ``trigger_fed``: polls never hand out a run's first step (a guidance step whose answer only a
    trigger carries), so a poller cannot steal it; later steps stay pollable (recovery path).
    ``forget_finished``: finished runs are dropped so the fake's own cost stays flat.
    """

    def __init__(
        self, *, trigger_fed: bool = True, forget_finished: bool = True, keep_alive: bool = True
    ) -> None:
        super().__init__()
        self.requests = deque(maxlen=256)  # type: ignore[assignment]
        self.timing = _instrument(self, keep_alive)
        self.trigger_fed = trigger_fed
        self.forget_finished = forget_finished
        self._arrival = threading.local()
        # (arrival perf_counter, run id, step index, status) of every update-step
        self.update_log: list[tuple[float, str, int, str]] = []
        self._ended: dict[str, threading.Event] = {}
        self._log_ids = itertools.count(1)
        self.audit_counts: dict[str, int] = defaultdict(int)

    def expect(self, run_id: int) -> threading.Event:
        """An event set when the run's chain stops (finished, awaiting input, or failed)."""
        event = threading.Event()
        with self._changed:
            self._ended[str(run_id)] = event
        return event

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        self._arrival.t = time.perf_counter()
        return super()._wsgi(environ, start_response)

    def _update(self, body: Any) -> dict[str, Any] | None:
        arrived = getattr(self._arrival, "t", time.perf_counter())
        answer = super()._update(body)
        run_id = str(body["runId"])
        update = body["stepUpdate"]
        status = str(update["attributes"]["context"].get("status"))
        with self._changed:
            self.update_log.append((arrived, run_id, int(update["stepIndex"]), status))
            if answer is None:
                run = self.runs.get(run_id)
                if self.forget_finished and run is not None and run.finished:
                    del self.runs[run_id]
                event = self._ended.pop(run_id, None)
                if event is not None:
                    event.set()
        return answer

    def _pending(self) -> list[dict[str, Any]]:
        if not self.trigger_fed:
            return super()._pending()
        with self._changed:
            ready = [
                r
                for r in self.runs.values()
                if r.available
                and not r.claimed
                and not _awaiting(r)
                and r.history[-1].get("stepIndex", 0) > 0
            ]
            for run in ready:
                run.claimed = True
            return [run.envelope() for run in ready]

    def _activity_log(self, request: Any, body: Any) -> Any:
        # Constant time and memory (the base fake keeps every entry and scans them per mark).
        with self._changed:
            if request.method == "POST":
                self.audit_counts["created"] += 1
                entry_id = str(next(self._log_ids))
                return _json({"data": {"id": entry_id, "attributes": {"index": "idx"}}})
            self.audit_counts[str(body.get("status"))] += 1
            return _json({})


class BenchAgent(FakeAgent):
    """The fake agent, timed, with bounded request logs."""

    def __init__(self, *, keep_alive: bool = True) -> None:
        super().__init__(AUTH_SECRET)
        self.requests = deque(maxlen=256)  # type: ignore[assignment]
        self.updates = deque(maxlen=64)  # type: ignore[assignment]
        self.executions = deque(maxlen=64)  # type: ignore[assignment]
        self.timing = _instrument(self, keep_alive)


@contextlib.contextmanager
def fakes(
    *, keep_alive: bool = True, **orchestrator_options: Any
) -> Iterator[tuple[BenchOrchestrator, BenchAgent]]:
    """The fake agent and orchestrator, instrumented; ``keep_alive=False`` keeps their stock
    Werkzeug servers (a new connection per request)."""
    with (
        BenchAgent(keep_alive=keep_alive) as agent,
        BenchOrchestrator(keep_alive=keep_alive, **orchestrator_options) as orchestrator,
    ):
        orchestrator.agent_url = agent.url
        orchestrator.collection_schemas = collection_schemas(agent)
        yield orchestrator, agent


# --- processes ------------------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int | str = "self") -> int:
    """VmRSS of a process, in KiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its live children (a gunicorn master and its workers)."""
    total = cpu_seconds(pid)
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            with contextlib.suppress(OSError):
                total += cpu_seconds(child)
    return total


class Process:
    """A server child process, healthy once ``health_path`` answers 200."""

    def __init__(
        self,
        command: Sequence[str],
        env: dict[str, str],
        log_path: Path,
        port: int,
        *,
        health_path: str = "/health",
        timeout: float = 60.0,
    ) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                list(command), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{command[:4]} exited:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + health_path, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{command[:4]} not healthy:\n{self.log_tail()}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self, timeout: float = 40.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def executor_env(
    orchestrator: FakeOrchestrator, workdir: Path, database_url: str | None, **extra: str
) -> dict[str, str]:
    """Environment of an executor child process talking to the fakes (SQLite file by default)."""
    instance = workdir / "instance"
    instance.mkdir(parents=True, exist_ok=True)
    env = executor_environment(orchestrator, workdir, EXECUTOR_INSTANCE_PATH=str(instance))
    env.update(
        {
            "HTTP_HOST": "127.0.0.1",
            "POLLING_ENABLED": "false",
            "LOG_LEVEL": "info",
            "STOP_TIMEOUT_S": "20",
            **extra,
        }
    )
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return env


def start_executor_cli(
    orchestrator: FakeOrchestrator,
    workdir: Path,
    *,
    database_url: str | None = None,
    name: str = "executor",
    **extra: str,
) -> Process:
    """``python -m executor serve`` (Werkzeug, one process) on a free loopback port."""
    port = free_port()
    env = executor_env(orchestrator, workdir, database_url, **extra)
    command = [sys.executable, "-m", "executor", "serve"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--json"]
    return Process(command, env, workdir / f"{name}.log", port)


def gunicorn_command(app: str, port: int, *, workers: int, threads: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "-w",
        str(workers),
        "-k",
        "gthread",
        "--threads",
        str(threads),
        "--graceful-timeout",
        "30",
        "-b",
        f"127.0.0.1:{port}",
        app,
    ]


def diagnose_hang(pid: int) -> str:
    """What the threads of a hung executor wait for, from ``py-spy dump`` when it is installed."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        return "install py-spy to see where it hangs"
    try:
        dump = subprocess.run(
            [py_spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError) as error:
        return f"py-spy dump failed: {error}"
    threads = dump.split("\nThread ")
    self_locked = sum(
        1 for t in threads if "_forget" in t and "add_done_callback" in t and "mark" in t
    )
    waiting = sum(1 for t in threads if "ActivityLogClient.mark" in t or "_forget" in t)
    if self_locked:
        return (
            f"{self_locked} thread(s) deadlocked in ActivityLogClient.mark -> "
            f"Future.add_done_callback -> ActivityLogClient._forget (the lock it holds), "
            f"{waiting} thread(s) in all waiting for that lock"
        )
    steps = [t.split("\n", 2)[:2] for t in threads if '"step-' in t]
    return f"{len(steps)} step thread(s) stuck; first: {steps[:1]}"


# --- PostgreSQL -----------------------------------------------------------------------------------


def postgres_available(url: str) -> str | None:
    """None when PostgreSQL answers at ``url``, else why not."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as error:  # any failure means: skip the PostgreSQL rows
        return str(error).splitlines()[0]
    return None


@contextlib.contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    """A schema name ``bench_<random>`` for the executor to create; dropped afterwards."""
    import psycopg

    name = f"bench_{secrets.token_hex(5)}"
    try:
        yield name
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


# --- driving --------------------------------------------------------------------------------------


def bearer(user_id: int = USER_ID) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(user_id, expires_in=6 * 3600)}"}


_run_ids = itertools.count(1000)
_run_ids_lock = threading.Lock()


def next_run_id() -> int:
    with _run_ids_lock:
        return next(_run_ids)


# --- statistics and tables ------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, ``q`` in [0, 100]."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float]) -> str:
    """``min-max`` of the repetitions, to show how noisy a median is."""
    if not values:
        return "-"
    return f"{fmt(min(values))}-{fmt(max(values))}"


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = "  ".join("-" * w for w in widths)

    def render(row: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    return "\n".join(["", title, render(headers), line, *(render(r) for r in cells)])


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
