"""Steps per second of the 5-step deterministic chain with 1, 10 and 50 runs in flight.

    python -m tests.benchmarks.throughput [--quick] [--repeats N] [--window S]
    python -m tests.benchmarks.throughput --profile      # one py-spy profile, top hot spots

Each run is ``guidance (the trigger's pendingData) → read-record (pinned fieldNames) →
update-record (pinned field and value) → load-related-record (to-one "company") →
trigger-action ("send-invoice", formless)``, all fully automated and pinned to the workflow's
record, against the fake orchestrator and the fake agent (in this process, timed per request).
The executor is ``python -m executor serve`` in a child process, in three set-ups:

* ``sqlite``: one process, SQLite run store (a fresh file);
* ``postgres``: one process, PostgreSQL, a fresh schema ``bench_<random>`` dropped afterwards;
* ``postgres x2``: two processes sharing that PostgreSQL schema (its leases), both polling the
  fake orchestrator every second; the triggers alternate between them.

A closed loop keeps N runs in flight: a driver thread triggers a run, waits until the orchestrator
receives its last ``update-step``, and triggers the next. Steps are the ``update-step``s that
arrive in the measuring window (after a warm-up). Runs are started by triggers because only a
trigger carries a guidance step's answer; the polls of ``postgres x2`` find nothing to steal (the
fake hands polls no run's first step) and are the recovery path only.

Columns: steps/s; the ratio to ``sqlite`` at the same concurrency (same repetition); the
executor's CPU per step (all its processes, from /proc); the fakes' handler time per step (timing
middleware); the chain's p50 wall time; how busy the whole machine was (/proc/stat); failed
steps or refused triggers; how many measurements hung. Every figure is the median of the
repetitions that did not hang.

A chain that does not end within 15 s means the executor deadlocked (see README.md: the audit
mark's lock): the measurement is reported as hung, left out of the medians, the stuck threads
are shown (py-spy), and the executor is restarted.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.benchmarks.harness import (
    PENDING_INPUT,
    RECORD_ID,
    BenchAgent,
    BenchOrchestrator,
    Process,
    TimedWsgi,
    bearer,
    chain_steps,
    cpu_seconds,
    diagnose_hang,
    fakes,
    fresh_schema,
    median,
    next_run_id,
    note,
    percentile,
    pg_url,
    postgres_available,
    spread,
    start_executor_cli,
    table,
)

STEPS_PER_RUN = 5
SETUPS = ("sqlite", "postgres", "postgres x2")
EXTRA_SETUPS = ("memory",)  # a reference without a run store: --setups memory,sqlite,...


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


@dataclass
class Sample:
    steps_per_s: float
    exec_cpu_ms: float
    bench_cpu_ms: float
    fake_ms: float
    chain_p50_ms: float
    busy_pct: float
    failures: int
    hung: bool = False  # a chain never ended: the executor deadlocked (see diagnose_hang)


@dataclass
class Driver:
    """The closed loop: ``concurrency`` threads, each with one run in flight at a time."""

    orchestrator: BenchOrchestrator
    clients: list[httpx.Client]  # one per executor, shared by the threads (thread-safe)
    concurrency: int
    lost_after_s: float = 15.0  # a chain not finished by then is counted as lost
    stop_at: float = 0.0
    chains: list[tuple[float, float]] = field(default_factory=list)  # (started, ms)
    refused: collections.Counter[str] = field(default_factory=collections.Counter)
    lost: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run_until(self, stop_at: float) -> None:
        self.stop_at = stop_at
        threads = [
            threading.Thread(target=self._loop, args=(i,), daemon=True)
            for i in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

    def _loop(self, index: int) -> None:
        turn = index
        while time.perf_counter() < self.stop_at:
            client = self.clients[turn % len(self.clients)]  # alternate between executors
            turn += 1
            run_id = next_run_id()
            self.orchestrator.add_run(run_id, chain_steps(), record_id=RECORD_ID)
            ended = self.orchestrator.expect(run_id)
            started = time.perf_counter()
            response = client.post(f"/runs/{run_id}/trigger", json={"pendingData": PENDING_INPUT})
            if response.status_code != 200:
                with self._lock:
                    self.refused[str(response.status_code)] += 1
                time.sleep(0.01)
                continue
            if not ended.wait(self.lost_after_s):
                with self._lock:
                    self.refused["lost"] += 1
                    self.lost.append(run_id)
                continue
            with self._lock:
                self.chains.append((started, (time.perf_counter() - started) * 1000))


def measure(
    orchestrator: BenchOrchestrator,
    agent: BenchAgent,
    executors: list[Process],
    concurrency: int,
    *,
    warmup: float,
    window: float,
) -> Sample:
    # Clients made here, before the clock: making one costs ~10 ms of CPU (its SSL context).
    limits = httpx.Limits(max_connections=concurrency + 4)
    clients = [
        httpx.Client(base_url=p.url, headers=bearer(), timeout=30, limits=limits) for p in executors
    ]
    driver = Driver(orchestrator, clients, concurrency)
    t0 = time.perf_counter()
    start, end = t0 + warmup, t0 + warmup + window
    log_start = len(orchestrator.update_log)
    runner = threading.Thread(target=driver.run_until, args=(end,), daemon=True)
    runner.start()
    time.sleep(max(0.0, start - time.perf_counter()))
    cpu0 = sum(cpu_seconds(p.pid) for p in executors)
    own0 = cpu_seconds()
    fake0 = orchestrator.timing.snapshot(), agent.timing.snapshot()
    busy0 = machine_busy()
    time.sleep(max(0.0, end - time.perf_counter()))
    cpu1 = sum(cpu_seconds(p.pid) for p in executors)
    own1 = cpu_seconds()
    fake1 = orchestrator.timing.snapshot(), agent.timing.snapshot()
    busy1 = machine_busy()
    runner.join()  # the in-flight runs end (drain) before the next measurement
    for client in clients:
        client.close()
    if driver.refused:
        note(f"  refused or lost triggers: {dict(driver.refused)}")
    for run_id in driver.lost[:3]:
        run = orchestrator.runs.get(str(run_id))
        seen = (
            [(h["stepIndex"], (h.get("context") or {}).get("status")) for h in run.history]
            if run
            else None
        )
        note(f"  lost run {run_id}: the orchestrator saw (step, status) {seen}")
    if driver.lost:
        for process in executors:
            note(f"  executor {process.pid}: {diagnose_hang(process.pid)}")
    arrivals = [u for u in orchestrator.update_log[log_start:] if start <= u[0] < end]
    steps = len(arrivals)
    failures = sum(1 for u in arrivals if u[3] != "success") + sum(driver.refused.values())
    fake_s = sum(s for snap in (0, 1) for _, s in TimedWsgi.diff(fake1[snap], fake0[snap]).values())
    in_window = [ms for began, ms in driver.chains if began >= start]
    per_step = 1000 / steps if steps else float("nan")
    return Sample(
        steps_per_s=steps / window,
        exec_cpu_ms=(cpu1 - cpu0) * per_step,
        bench_cpu_ms=(own1 - own0) * per_step,
        fake_ms=fake_s * per_step,
        chain_p50_ms=percentile(in_window, 50),
        busy_pct=100 * (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]),
        failures=failures,
        hung=bool(driver.lost),
    )


class ExecutorSet:
    """The executor process(es) of a set-up, restartable after a hang (same store)."""

    def __init__(
        self,
        setup: str,
        orchestrator: BenchOrchestrator,
        workdir: Path,
        extra: dict[str, str],
        *,
        schema: str | None = None,
    ) -> None:
        self.setup = setup
        self._orchestrator = orchestrator
        self._workdir = workdir
        self._schema = schema
        # Both poll every second (in postgres x2 both poll the same orchestrator).
        self._env = {
            "POLLING_ENABLED": "true",
            "POLLING_INTERVAL_S": "1",
            "FIRST_POLL_DELAY_S": "1",
            **extra,
        }
        self.processes: list[Process] = []
        self.start()

    def start(self) -> None:
        env = dict(self._env)
        database_url: str | None = None
        if self.setup == "memory":
            env["IN_MEMORY_STORE"] = "true"
        elif self.setup == "sqlite":
            database_url = f"sqlite:///{self._workdir / 'runs.sqlite3'}"
        else:
            database_url = pg_url()
            env["DATABASE_SCHEMA"] = str(self._schema)
        for i in range(2 if self.setup == "postgres x2" else 1):
            self.processes.append(
                start_executor_cli(
                    self._orchestrator,
                    self._workdir,
                    database_url=database_url,
                    name=f"executor-{i}",
                    **env,
                )
            )

    def restart(self) -> None:
        """Kill (a deadlocked executor does not drain) and start again."""
        for process in self.processes:
            process.kill()
        self.processes = []
        self.start()

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
        self.processes = []


@contextlib.contextmanager
def executors_for(
    setup: str,
    orchestrator: BenchOrchestrator,
    workdir: Path,
    extra: dict[str, str],
) -> Iterator[ExecutorSet]:
    """The set-up's executors; PostgreSQL set-ups get a fresh schema, dropped afterwards."""
    with contextlib.ExitStack() as stack:
        schema = stack.enter_context(fresh_schema(pg_url())) if "postgres" in setup else None
        executors = ExecutorSet(setup, orchestrator, workdir, extra, schema=schema)
        stack.callback(executors.stop)
        yield executors


def run_benchmark(args: argparse.Namespace) -> None:
    setups = [s for s in (*EXTRA_SETUPS, *SETUPS) if s in args.setups]
    if "sqlite" in setups:  # the baseline of the ratios goes first
        setups.remove("sqlite")
        setups.insert(0, "sqlite")
    why_not = postgres_available(pg_url()) if any("postgres" in s for s in setups) else None
    if why_not is not None:
        note(f"PostgreSQL unavailable ({why_not}): its rows are skipped")
        setups = [s for s in setups if "postgres" not in s]
    extra = {"LOG_LEVEL": args.log_level}
    samples: dict[tuple[str, int], list[Sample]] = collections.defaultdict(list)
    ratios: dict[tuple[str, int], list[float]] = collections.defaultdict(list)
    with fakes() as (orchestrator, agent), tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            baseline: dict[int, float] = {}
            for setup in setups:
                workdir = Path(tmp) / f"r{repeat}-{setup.replace(' ', '')}"
                workdir.mkdir()
                with executors_for(setup, orchestrator, workdir, extra) as executors:
                    for concurrency in args.concurrency:
                        sample = measure(
                            orchestrator,
                            agent,
                            executors.processes,
                            concurrency,
                            warmup=args.warmup,
                            window=args.window,
                        )
                        samples[(setup, concurrency)].append(sample)
                        note(
                            f"repeat {repeat + 1}/{args.repeats} {setup:<12} c={concurrency:<3} "
                            f"{sample.steps_per_s:7.1f} steps/s  failures {sample.failures}"
                            + ("  HUNG: restarting the executor(s)" if sample.hung else "")
                        )
                        if sample.hung:
                            executors.restart()
                            continue
                        if setup == "sqlite":
                            baseline[concurrency] = sample.steps_per_s
                        if baseline.get(concurrency):
                            ratios[(setup, concurrency)].append(
                                sample.steps_per_s / baseline[concurrency]
                            )
    rows = []
    for setup in setups:
        for concurrency in args.concurrency:
            every = samples[(setup, concurrency)]
            got = [s for s in every if not s.hung]
            rate = [s.steps_per_s for s in got]
            rows.append(
                [
                    setup,
                    concurrency,
                    median(rate),
                    spread(rate),
                    median(ratios[(setup, concurrency)]),
                    median([s.exec_cpu_ms for s in got]),
                    median([s.bench_cpu_ms for s in got]),
                    median([s.fake_ms for s in got]),
                    median([s.chain_p50_ms for s in got]),
                    median([s.busy_pct for s in got]),
                    sum(s.failures for s in got),
                    f"{len(every) - len(got)}/{len(every)}",
                ]
            )
    print(
        table(
            f"throughput: 5-step chain, medians of {args.repeats} repetitions, "
            f"{args.window:g} s windows after {args.warmup:g} s warm-up "
            f"(MAX_CONCURRENT_RUNS=10 per process, LOG_LEVEL={args.log_level})",
            [
                "setup",
                "runs in flight",
                "steps/s",
                "min-max",
                "x sqlite",
                "exec CPU ms/step",
                "fakes+driver CPU ms/step",
                "fakes ms/step",
                "chain p50 ms",
                "machine busy %",
                "failures",
                "hung",
            ],
            rows,
        )
    )
    if any(s.hung for got in samples.values() for s in got):
        print(
            "hung: measurements in which the executor deadlocked (left out of the medians; "
            "the executor was restarted)."
        )


# --- profile --------------------------------------------------------------------------------------


def _stacks(raw: Path) -> Iterator[tuple[list[tuple[str, str, str]], int]]:
    """py-spy's raw (collapsed) stacks: [(function, file, line), ...] root first, and a count."""
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = []
        for text in stack.split(";"):
            function, _, rest = text.partition(" (")
            if rest.endswith(")"):
                path, _, number = rest[:-1].rpartition(":")
                frames.append((function, path, number))
        if frames:
            yield frames, int(count_text)


def hot_spots(
    raw: Path, top: int, *, only: str | None = None
) -> tuple[int, list[list[object]], list[list[object]]]:
    """Total samples, the top functions by own samples (the leaf frame, with its hottest line),
    and the top executor functions by inclusive samples. ``only``: stacks through that function."""
    own: collections.Counter[tuple[str, str]] = collections.Counter()
    lines: dict[tuple[str, str], collections.Counter[str]] = collections.defaultdict(
        collections.Counter
    )
    inclusive: collections.Counter[tuple[str, str]] = collections.Counter()
    total = 0
    for frames, count in _stacks(raw):
        if only is not None and not any(f == only for f, _, _ in frames):
            continue
        total += count
        function, path, number = frames[-1]
        own[(function, path)] += count
        lines[(function, path)][number] += count
        for key in {(f, p) for f, p, _ in frames}:
            if _is_executor(key[1]):
                inclusive[key] += count
    share = lambda count: f"{100 * count / max(1, total):.1f}%"  # noqa: E731
    leaf_rows: list[list[object]] = [
        [function, f"{_short(path)}:{lines[(function, path)].most_common(1)[0][0]}", share(n)]
        for (function, path), n in own.most_common(top)
    ]
    executor_rows: list[list[object]] = [
        [function, _short(path), share(n)] for (function, path), n in inclusive.most_common(top)
    ]
    return total, leaf_rows, executor_rows


def by_library(raw: Path, top: int) -> list[list[object]]:
    """Samples grouped by what the executor's code was running: its own code, or the library it
    had called (the first frame below its deepest frame); stacks without executor code are
    grouped by their first library."""
    groups: collections.Counter[str] = collections.Counter()
    total = 0
    for frames, count in _stacks(raw):
        frames = [f for f in frames if not f[1].endswith("contextlib.py")]
        total += count
        inside = [i for i, (_, path, _) in enumerate(frames) if _is_executor(path)]
        if not inside:
            libraries = [_library(p) for _, p, _ in frames if "site-packages" in p]
            groups["(no executor frame) " + (libraries[0] if libraries else "stdlib")] += count
        elif inside[-1] == len(frames) - 1:
            groups["executor's own code"] += count
        else:
            groups[_library(frames[inside[-1] + 1][1])] += count
    return [[name, f"{100 * n / max(1, total):.1f}%"] for name, n in groups.most_common(top)]


def _is_executor(path: str) -> bool:
    return path.startswith("executor/") or "/main/executor/" in path


def _library(path: str) -> str:
    tail = path.split("site-packages/")[-1].split("python3.11/")[-1]
    return tail.split("/")[0].removesuffix(".py")


def _short(path: str) -> str:
    for marker in ("/site-packages/", "/work/main/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _py_spy(pid: int, raw: Path, seconds: int, mode: str) -> subprocess.Popen[bytes]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        raise SystemExit("py-spy is not installed (pip install py-spy into this venv)")
    command = [py_spy, "record", "--pid", str(pid), "--rate", "200", "--duration", str(seconds)]
    # --nonblocking: sample without pausing the process (pausing it slows the executor 3-4x).
    command += ["--nonblocking", "--format", "raw", "--output", str(raw), mode]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run_profile(args: argparse.Namespace) -> None:
    """Two py-spy recordings of one executor (sqlite) under the closed loop: ``--gil`` samples
    the thread holding the GIL (where the CPU goes), ``--idle`` samples every thread (where the
    chains' wall time goes, waits included)."""
    concurrency = args.concurrency[0] if len(args.concurrency) == 1 else 10
    results = {}
    with fakes() as (orchestrator, agent), tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with executors_for(
            "sqlite",
            orchestrator,
            workdir,
            {"LOG_LEVEL": args.log_level},
        ) as executor_set:
            executors = executor_set.processes
            for mode in ("--gil", "--idle"):
                raw = workdir / f"profile{mode}.txt"
                seconds = int(args.warmup + args.window)
                spy = _py_spy(executors[0].pid, raw, seconds, mode)
                time.sleep(0.5)
                sample = measure(
                    orchestrator,
                    agent,
                    executors,
                    concurrency,
                    warmup=args.warmup,
                    window=args.window,
                )
                _, errors = spy.communicate(timeout=seconds + 60)
                if spy.returncode != 0 or not raw.exists():
                    raise SystemExit(f"py-spy failed: {errors.decode(errors='replace')}")
                if sample.hung:
                    raise SystemExit("the executor hung during the profile: see its stacks above")
                only = "_StepAttempt.run" if mode == "--idle" else None
                results[mode] = (sample, *hot_spots(raw, args.top, only=only))
                if args.raw_dir:
                    Path(args.raw_dir).mkdir(parents=True, exist_ok=True)
                    shutil.copy(raw, Path(args.raw_dir) / f"py-spy{mode.replace('--', '-')}.txt")
                if mode == "--gil":
                    libraries = by_library(raw, args.top)
    sample, total, leaves, executor_rows = results["--gil"]
    where = f"sqlite, {concurrency} runs in flight, {sample.steps_per_s:.1f} steps/s under py-spy"
    print(f"\nprofile 1: py-spy --gil (the thread holding the GIL), {total} samples ({where})")
    print(
        table("hottest functions by own samples (leaf frame)", ["function", "at", "share"], leaves)
    )
    print(
        table(
            "executor functions by inclusive samples", ["function", "file", "share"], executor_rows
        )
    )
    print(table("the same samples by what the executor was running", ["in", "share"], libraries))
    sample, total, leaves, executor_rows = results["--idle"]
    where = f"sqlite, {concurrency} runs in flight, {sample.steps_per_s:.1f} steps/s under py-spy"
    print(f"\nprofile 2: py-spy --idle, the step threads' wall time, {total} samples ({where})")
    print(
        table(
            "where step threads spend their time (leaf frame)", ["function", "at", "share"], leaves
        )
    )
    print(
        table(
            "executor functions by inclusive samples", ["function", "file", "share"], executor_rows
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--window", type=float, default=3.0, help="measuring window, seconds")
    parser.add_argument("--warmup", type=float, default=0.75, help="seconds before measuring")
    parser.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 10, 50]
    )
    parser.add_argument("--setups", type=lambda s: s.split(","), default=list(SETUPS))
    parser.add_argument("--log-level", default="info", help="the executors' LOG_LEVEL")
    parser.add_argument("--quick", action="store_true", help="3 x 1.5 s windows")
    parser.add_argument("--profile", action="store_true", help="py-spy one sqlite measurement")
    parser.add_argument("--top", type=int, default=10, help="hot spots listed by --profile")
    parser.add_argument("--raw-dir", help="--profile: keep py-spy's raw stacks in this folder")
    args = parser.parse_args()
    if args.quick:
        args.window, args.warmup = 1.5, 0.5
    if args.profile:
        if args.window == 3.0:
            args.window = 15.0
        run_profile(args)
    else:
        run_benchmark(args)


if __name__ == "__main__":
    main()
