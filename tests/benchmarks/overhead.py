"""The executor's own time per step (wall time less the time spent inside the fakes) and its
memory, sampled every 1,000 steps over 10,000 steps in one executor process.

    python -m tests.benchmarks.overhead [--quick] [--steps N] [--every N]

One ``python -m executor serve`` process (SQLite run store, polling off, LOG_LEVEL=info) runs
the 5-step chain of ``throughput`` one run at a time (a trigger, then the chain, then the next
trigger), so wall time is the sum of the critical path. The fakes (in this process) are timed
per request by a WSGI middleware. Per window of ``--every`` steps:

* wall ms/step: the window's duration over its steps;
* fakes ms/step: handler time of the requests on the critical path (all but the audit status
  marks, which the executor sends in the background while the chain goes on);
* executor ms/step: wall less that — the executor's code, its run store and its HTTP client, plus
  the loopback hops and the fakes' HTTP server (neither is inside the middleware);
* CPU ms/step: the executor process's user + system CPU (/proc/<pid>/stat), a cross-check;
* RSS, threads, open files of the executor process, read from /proc at the end of the window.

The summary's figures are the medians over the windows (the first one, a warm-up, excluded),
with the executor's share of the wall time; the verdict says whether RSS is flat.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import httpx

from tests.benchmarks.harness import (
    PENDING_INPUT,
    RECORD_ID,
    BenchAgent,
    BenchOrchestrator,
    bearer,
    chain_steps,
    cpu_seconds,
    diagnose_hang,
    fakes,
    median,
    next_run_id,
    note,
    rss_kib,
    start_executor_cli,
    table,
)

STEPS_PER_RUN = 5
BACKGROUND = "PATCH /api/activity-logs-requests/:id/:id/status"


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return -1


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def fake_seconds(orchestrator: BenchOrchestrator, agent: BenchAgent) -> tuple[float, float]:
    """(critical-path, background) handler seconds of both fakes so far."""
    critical = background = 0.0
    for snapshot in (orchestrator.timing.snapshot(), agent.timing.snapshot()):
        for route, (_, seconds) in snapshot.items():
            if route == BACKGROUND:
                background += seconds
            else:
                critical += seconds
    return critical, background


def slope_per_window(values: list[float]) -> float:
    """Least-squares slope of ``values`` against their index."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=1_000, help="steps per sample")
    parser.add_argument("--log-level", default="info", help="the executor's LOG_LEVEL")
    parser.add_argument("--quick", action="store_true", help="2,000 steps, a sample every 200")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.every = 2_000, 200
    runs_per_window = max(1, args.every // STEPS_PER_RUN)
    windows = max(1, args.steps // (runs_per_window * STEPS_PER_RUN))
    rows = []
    series: dict[str, list[float]] = {}
    failures = 0
    hung = ""
    with fakes() as (orchestrator, agent), tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        executor = start_executor_cli(
            orchestrator,
            workdir,
            database_url=f"sqlite:///{workdir / 'runs.sqlite3'}",
            LOG_LEVEL=args.log_level,
        )
        pid = executor.pid
        try:
            client = httpx.Client(base_url=executor.url, headers=bearer(), timeout=30)
            done_steps = 0
            started = time.perf_counter()
            last = (started, cpu_seconds(pid), *fake_seconds(orchestrator, agent))
            for _ in range(windows):
                steps_before = len(orchestrator.update_log)
                for _ in range(runs_per_window):
                    run_id = next_run_id()
                    orchestrator.add_run(run_id, chain_steps(), record_id=RECORD_ID)
                    ended = orchestrator.expect(run_id)
                    response = client.post(
                        f"/runs/{run_id}/trigger", json={"pendingData": PENDING_INPUT}
                    )
                    if response.status_code != 200:
                        failures += 1
                    elif not ended.wait(15):
                        hung = diagnose_hang(pid)
                        break
                if hung:
                    note(f"run {run_id} never ended, the executor hangs: {hung}")
                    break
                log = orchestrator.update_log[steps_before:]
                failures += sum(1 for u in log if u[3] != "success")
                steps = len(log)
                done_steps += steps
                now, cpu = time.perf_counter(), cpu_seconds(pid)
                critical, background = fake_seconds(orchestrator, agent)
                wall_ms = (now - last[0]) * 1000 / steps
                fake_ms = (critical - last[2]) * 1000 / steps
                sample = {
                    "wall": wall_ms,
                    "fakes": fake_ms,
                    "executor": wall_ms - fake_ms,
                    "cpu": (cpu - last[1]) * 1000 / steps,
                    "marks": (background - last[3]) * 1000 / steps,
                    "rss": rss_kib(pid) / 1024,
                    "threads": threads_of(pid),
                    "fds": open_files(pid),
                }
                for key, value in sample.items():
                    series.setdefault(key, []).append(value)
                rows.append([done_steps, *sample.values()])
                last = (now, cpu, critical, background)
                note(
                    f"{done_steps:>6} steps  wall {wall_ms:.2f} ms/step  executor "
                    f"{sample['executor']:.2f} ms/step  RSS {sample['rss']:.1f} MiB"
                )
            client.close()
        finally:
            if hung:
                executor.kill()
            executor.stop()
    if not rows:
        raise SystemExit(f"the executor hung before {args.every} steps: {hung}")
    headers = [
        "steps",
        "wall ms/step",
        "fakes ms/step",
        "executor ms/step",
        "exec CPU ms/step",
        "audit marks ms/step (bg)",
        "RSS MiB",
        "threads",
        "open fds",
    ]
    print(
        table(
            f"per window of {runs_per_window * STEPS_PER_RUN} steps, one executor "
            f"(sqlite, one run at a time, LOG_LEVEL={args.log_level}); {failures} failures"
            + (f"; STOPPED: the executor hung ({hung})" if hung else ""),
            headers,
            rows,
        )
    )
    steady = {k: v[1:] if len(v) > 1 else v for k, v in series.items()}
    wall, own = median(steady["wall"]), median(steady["executor"])
    print(
        table(
            f"medians over windows 2-{len(rows)}",
            ["wall ms/step", "fakes ms/step", "executor ms/step", "executor share", "CPU ms/step"],
            [
                [
                    wall,
                    median(steady["fakes"]),
                    own,
                    f"{100 * own / wall:.0f}%",
                    median(steady["cpu"]),
                ]
            ],
        )
    )
    rss = steady["rss"]
    per_1000 = slope_per_window(rss) * 1000 / (runs_per_window * STEPS_PER_RUN)
    growth = rss[-1] - rss[0]
    flat = abs(per_1000) * 10 < 0.02 * rss[0]  # < 2 % of RSS per 10,000 steps
    threads_flat = max(steady["threads"]) - min(steady["threads"]) <= 4
    print(
        f"\nRSS {rss[0]:.1f} → {rss[-1]:.1f} MiB over windows 2-{len(rows)} "
        f"({growth:+.1f} MiB; least-squares slope {per_1000:+.3f} MiB per 1,000 steps): "
        + ("FLAT" if flat else "GROWING")
        + " (flat: the slope extrapolates to < 2 % of RSS per 10,000 steps); threads "
        + f"{min(steady['threads']):.0f}-{max(steady['threads']):.0f}, open fds "
        + f"{min(steady['fds']):.0f}-{max(steady['fds']):.0f}"
        + (" (flat)" if threads_flat else " (varying)")
    )


if __name__ == "__main__":
    main()
