"""Requests per second of ``GET /runs/<id>`` under ``gunicorn wsgi:app``, next to a bare Flask
hello-world under the same gunicorn settings, measured in the same run.

    python -m tests.benchmarks.api_rps [--quick] [--duration S] [--repeats N]

Both servers are ``gunicorn -w 2 -k gthread --threads 8`` (the README's production line) on
loopback. The load is ``wrk -t2 -c16 --latency`` (``apt-get install -y wrk``), or a threaded httpx
load generator when wrk is missing. Three targets, interleaved in each repetition:

* ``hello``: ``GET /`` of ``tests/benchmarks/hello_app.py`` (Flask, a small JSON body, nothing
  else);
* ``executor /health``: the executor's app, no authentication, no upstream call;
* ``executor /runs/<id>``: a valid JWT (HS256), the orchestrator's access check (the fake
  orchestrator, in this process, over loopback), then the run's 5 stored steps read from the
  SQLite run store and serialized.

The run read is a real one: the 5-step chain of ``throughput`` is triggered once first. Every
figure is the median of the repetitions; ratios are to ``hello`` in the same repetition.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.benchmarks.harness import (
    PENDING_INPUT,
    RECORD_ID,
    BenchOrchestrator,
    Process,
    TimedWsgi,
    bearer,
    chain_steps,
    cpu_seconds,
    executor_env,
    fakes,
    gunicorn_command,
    median,
    next_run_id,
    note,
    percentile,
    spread,
    table,
    tree_cpu_seconds,
)
from tests.processes import free_port

WORKERS, THREADS = 2, 8
ACCESS_CHECK = "GET /api/workflow-orchestrator/run/:id/access-check"


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_ms: float = float("nan")  # CPU of the gunicorn master and workers per request
    bench_cpu_ms: float = float("nan")  # CPU of this process per request: the fake orchestrator
    # (and, with --httpx, the load generator too)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(url: str, headers: dict[str, str], duration: float, threads: int, connections: int) -> Load:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    for key, value in headers.items():
        command += ["-H", f"{key}: {value}"]
    out = subprocess.run(
        [*command, url], capture_output=True, text=True, timeout=duration + 30, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if socket_errors:
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))
    return Load(
        rps,
        _ms(p50.group(1)) if p50 else float("nan"),
        _ms(p99.group(1)) if p99 else float("nan"),
        errors,
    )


def httpx_load(
    url: str, headers: dict[str, str], duration: float, threads: int, connections: int
) -> Load:
    """The fallback: ``connections`` threads, each with its own keep-alive connection."""
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    stop_at = time.perf_counter() + duration

    def loop(index: int) -> None:
        with httpx.Client(headers=headers, timeout=10) as client:
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                try:
                    ok = client.get(url).status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies[index].append((time.perf_counter() - started) * 1000)
                errors[index] += not ok

    started = time.perf_counter()
    workers = [threading.Thread(target=loop, args=(i,)) for i in range(connections)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    every = [ms for per in latencies for ms in per]
    return Load(len(every) / elapsed, percentile(every, 50), percentile(every, 99), sum(errors))


@contextmanager
def servers(orchestrator: BenchOrchestrator, workdir: Path) -> Iterator[tuple[Process, Process]]:
    """The hello and executor gunicorn processes, under the same settings."""
    executor_port, hello_port = free_port(), free_port()
    env = executor_env(
        orchestrator, workdir, f"sqlite:///{workdir / 'runs.sqlite3'}", POLLING_ENABLED="false"
    )
    executor = Process(
        gunicorn_command("wsgi:app", executor_port, workers=WORKERS, threads=THREADS),
        env,
        workdir / "executor.log",
        executor_port,
    )
    try:
        hello = Process(
            gunicorn_command(
                "tests.benchmarks.hello_app:app", hello_port, workers=WORKERS, threads=THREADS
            ),
            env,
            workdir / "hello.log",
            hello_port,
            health_path="/",
        )
        try:
            yield hello, executor
        finally:
            hello.stop()
    finally:
        executor.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per target")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="load generator threads (wrk -t)")
    parser.add_argument("--connections", type=int, default=16, help="connections (wrk -c)")
    parser.add_argument("--httpx", action="store_true", help="use the httpx load generator")
    parser.add_argument("--quick", action="store_true", help="3 x 2 s per target")
    args = parser.parse_args()
    if args.quick:
        args.duration = 2.0
    use_wrk = shutil.which("wrk") is not None and not args.httpx
    if not use_wrk and not args.httpx:
        note("wrk not found (apt-get install -y wrk): using the httpx load generator")
    load = wrk if use_wrk else httpx_load
    loads: dict[str, list[Load]] = {}
    ratios: dict[str, list[float]] = {}
    upstream_ms: list[float] = []
    with (
        fakes(forget_finished=False) as (orchestrator, _agent),
        tempfile.TemporaryDirectory() as tmp,
        servers(orchestrator, Path(tmp)) as (hello, executor),
    ):
        hello_url, executor_url = hello.url, executor.url
        run_id = next_run_id()
        orchestrator.add_run(run_id, chain_steps(), record_id=RECORD_ID)
        ended = orchestrator.expect(run_id)
        auth = bearer()
        trigger = httpx.post(
            f"{executor_url}/runs/{run_id}/trigger",
            json={"pendingData": PENDING_INPUT},
            headers=auth,
        )
        assert trigger.status_code == 200, trigger.text
        assert ended.wait(30), "the chain did not finish"
        steps = httpx.get(f"{executor_url}/runs/{run_id}", headers=auth).json()["steps"]
        assert len(steps) == 5, steps
        targets = {
            "hello": (f"{hello_url}/", {}, hello),
            "executor /health": (f"{executor_url}/health", {}, executor),
            "executor /runs/<id>": (f"{executor_url}/runs/{run_id}", auth, executor),
        }
        for repeat in range(args.repeats):
            got: dict[str, Load] = {}
            for name, (url, headers, server) in targets.items():
                before = orchestrator.timing.snapshot()
                cpu0, own0 = tree_cpu_seconds(server.pid), cpu_seconds()
                got[name] = load(url, headers, args.duration, args.threads, args.connections)
                requests = got[name].rps * args.duration
                got[name].server_cpu_ms = 1000 * (tree_cpu_seconds(server.pid) - cpu0) / requests
                got[name].bench_cpu_ms = 1000 * (cpu_seconds() - own0) / requests
                loads.setdefault(name, []).append(got[name])
                if name == "executor /runs/<id>":
                    count, seconds = TimedWsgi.diff(orchestrator.timing.snapshot(), before).get(
                        ACCESS_CHECK, (0, 0.0)
                    )
                    upstream_ms.append(1000 * seconds / max(1, count))
                note(
                    f"repeat {repeat + 1}/{args.repeats} {name:<20} {got[name].rps:8.0f} req/s "
                    f"p50 {got[name].p50_ms:.2f} ms ({got[name].errors} errors)"
                )
            for name in targets:
                ratios.setdefault(name, []).append(got[name].rps / got["hello"].rps)
    rows = []
    for name in targets:
        rps = [x.rps for x in loads[name]]
        rows.append(
            [
                name,
                median(rps),
                spread(rps),
                median(ratios[name]),
                median([x.p50_ms for x in loads[name]]),
                median([x.p99_ms for x in loads[name]]),
                median([x.server_cpu_ms for x in loads[name]]),
                median([x.bench_cpu_ms for x in loads[name]]),
                sum(x.errors for x in loads[name]),
            ]
        )
    generator = (
        f"wrk -t{args.threads} -c{args.connections}"
        if use_wrk
        else f"httpx, {args.connections} threads"
    )
    print(
        table(
            f"API requests/s under gunicorn -w {WORKERS} -k gthread --threads {THREADS} "
            f"({generator}, {args.duration:g} s per target, medians of {args.repeats})",
            [
                "target",
                "req/s",
                "min-max",
                "x hello",
                "p50 ms",
                "p99 ms",
                "server CPU ms/req",
                "this process CPU ms/req",
                "errors",
            ],
            rows,
        )
    )
    print(
        f"the fake orchestrator's access-check handler: {median(upstream_ms):.3f} ms per "
        "GET /runs/<id> (median; its HTTP server and the loopback hop are not included)"
    )


if __name__ == "__main__":
    main()
