"""Latency from ``POST /runs/<id>/trigger`` to the first ``update-step`` the orchestrator receives.

    python -m tests.benchmarks.trigger_latency [--quick] [--triggers N] [--repeats N]

Each trigger starts a run whose only step is a manual guidance step answered by the trigger's
``pendingData`` (no agent, no AI on the hot path). The clock starts just before the request is
sent and stops when the fake orchestrator (in this process) receives the step's ``update-step``:
its arrival is timestamped by the benchmark's subclass of the fake, before the body is parsed.

Two modes, measured in alternating blocks of the same repetition, both with a SQLite run store
(a fresh file each) and JSON logs at LOG_LEVEL=info:

* ``werkzeug``: a ``Runner(http_port=0)`` in this process (Werkzeug's threaded server), sharing
  the interpreter, and so the GIL, with the fakes and the client, as an embedded executor does;
* ``gunicorn``: ``gunicorn -w 2 -k gthread --threads 4 wsgi:app`` in a child process with
  ``POLLING_ENABLED=false``.

Every trigger opens a new connection (``Connection: close``): Werkzeug's server closes every
connection anyway, and this lets gunicorn's kernel-balanced accept spread them over both workers.
Triggers are sequential, a few ms apart, so each measures an idle executor's latency. Every
figure is the median, over the repetitions, of that repetition's percentile.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from executor import Runner, create_app
from executor.extension import executor_state
from executor.logs import JsonFormatter
from tests.benchmarks.harness import (
    PENDING_INPUT,
    RECORD_ID,
    BenchOrchestrator,
    Process,
    bearer,
    executor_env,
    fakes,
    gunicorn_command,
    median,
    next_run_id,
    note,
    one_step,
    percentile,
    spread,
    table,
)
from tests.conftest import base_config
from tests.processes import free_port

MODES = ("werkzeug", "gunicorn")


@contextmanager
def werkzeug_executor(orchestrator: BenchOrchestrator, workdir: Path) -> Iterator[str]:
    """A Runner serving the app with Werkzeug on a free port, in this process."""
    os.environ["EXECUTOR_INSTANCE_PATH"] = str(workdir)  # not a developer's instance/config.py
    config = base_config(
        orchestrator,
        IN_MEMORY_STORE=False,
        DATABASE_URL=f"sqlite:///{workdir / 'werkzeug.sqlite3'}",
        POLLING_ENABLED=False,
        STEP_TIMEOUT_S=30,
    )
    app = create_app(config)
    state = executor_state(app)
    runner = Runner(state.settings, state.services, app=app, http_port=0, http_host="127.0.0.1")
    state.runner = runner  # the routes trigger this runner
    # The executor's JSON log lines at info, as the gunicorn mode writes them (to a file here).
    handler = logging.FileHandler(workdir / "werkzeug-mode.log")
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for noisy in ("werkzeug", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    runner.start()
    try:
        yield f"http://127.0.0.1:{runner.http_port}"
    finally:
        runner.stop()
        root.removeHandler(handler)
        handler.close()


@contextmanager
def gunicorn_executor(orchestrator: BenchOrchestrator, workdir: Path) -> Iterator[str]:
    port = free_port()
    env = executor_env(
        orchestrator,
        workdir,
        f"sqlite:///{workdir / 'gunicorn.sqlite3'}",
        POLLING_ENABLED="false",
        LOG_FORMAT="json",
    )
    process = Process(
        gunicorn_command("wsgi:app", port, workers=2, threads=4),
        env,
        workdir / "gunicorn.log",
        port,
    )
    try:
        yield process.url
    finally:
        process.stop()


def block(
    orchestrator: BenchOrchestrator, url: str, count: int, warmup: int, gap_s: float
) -> tuple[list[float], list[float], int]:
    """``count`` sequential triggers (after ``warmup`` unmeasured ones): the milliseconds to the
    first update-step, to the trigger's 200, and how many failed."""
    to_update: list[float] = []
    to_answer: list[float] = []
    failures = 0
    headers = {**bearer(), "Connection": "close"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for i in range(warmup + count):
            run_id = next_run_id()
            orchestrator.add_run(run_id, one_step(), record_id=RECORD_ID)
            ended = orchestrator.expect(run_id)
            mark = len(orchestrator.update_log)
            started = time.perf_counter()
            response = client.post(f"/runs/{run_id}/trigger", json={"pendingData": PENDING_INPUT})
            answered = time.perf_counter()
            ok = response.status_code == 200 and ended.wait(30)
            arrival = next(
                (u[0] for u in orchestrator.update_log[mark:] if u[1] == str(run_id)), None
            )
            if not ok or arrival is None:
                failures += 1
            elif i >= warmup:
                to_update.append((arrival - started) * 1000)
                to_answer.append((answered - started) * 1000)
            time.sleep(gap_s)  # lets the chain give its lease back before the next trigger
    return to_update, to_answer, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--triggers", type=int, default=500, help="measured triggers per block")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured triggers per block")
    parser.add_argument("--gap-ms", type=float, default=5.0, help="pause between triggers")
    parser.add_argument("--quick", action="store_true", help="3 x 150 triggers per mode")
    args = parser.parse_args()
    if args.quick:
        args.triggers = 150
    # stats[mode][metric] = one value per repetition
    stats: dict[str, dict[str, list[float]]] = {m: {} for m in MODES}
    failures = dict.fromkeys(MODES, 0)
    with (
        fakes() as (orchestrator, _agent),
        tempfile.TemporaryDirectory() as tmp,
        werkzeug_executor(orchestrator, Path(tmp)) as werkzeug_url,
        gunicorn_executor(orchestrator, Path(tmp)) as gunicorn_url,
    ):
        urls = {"werkzeug": werkzeug_url, "gunicorn": gunicorn_url}
        for repeat in range(args.repeats):
            for mode in MODES if repeat % 2 == 0 else reversed(MODES):
                to_update, to_answer, failed = block(
                    orchestrator, urls[mode], args.triggers, args.warmup, args.gap_ms / 1000
                )
                failures[mode] += failed
                measured = {
                    "p50": percentile(to_update, 50),
                    "p95": percentile(to_update, 95),
                    "p99": percentile(to_update, 99),
                    "200 p50": percentile(to_answer, 50),
                    "200 p99": percentile(to_answer, 99),
                }
                for key, value in measured.items():
                    stats[mode].setdefault(key, []).append(value)
                note(
                    f"repeat {repeat + 1}/{args.repeats} {mode:<9} p50 {measured['p50']:.2f} ms "
                    f"p99 {measured['p99']:.2f} ms ({len(to_update)} triggers, {failed} failed)"
                )
    base = {k: median(v) for k, v in stats["werkzeug"].items()}
    rows = []
    for mode in MODES:
        got = {k: median(v) for k, v in stats[mode].items()}
        rows.append(
            [
                mode,
                got["p50"],
                got["p95"],
                got["p99"],
                spread(stats[mode]["p50"]),
                got["200 p50"],
                got["200 p99"],
                got["p50"] / base["p50"],
                got["p99"] / base["p99"],
                failures[mode],
            ]
        )
    print(
        table(
            f"trigger → first update-step, ms (medians of {args.repeats} repetitions x "
            f"{args.triggers} sequential triggers per mode)",
            [
                "mode",
                "p50",
                "p95",
                "p99",
                "p50 min-max",
                "→200 p50",
                "→200 p99",
                "p50 x werkzeug",
                "p99 x werkzeug",
                "failures",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
