"""gunicorn server hooks that keep ``/metrics`` right across workers (see ``gunicorn.conf.py``).

Every worker writes its metric values to files in ``PROMETHEUS_MULTIPROC_DIR``; a scrape, whichever
worker answers it, merges them. These hooks run in gunicorn's master: they clear values left by an
earlier server in a directory the operator gave, forget the live gauges of each worker that exits
(its counters stay: totals must not go backwards when a worker is replaced), and remove the
directory that ``gunicorn.conf.py`` created when the server exits.
"""

from __future__ import annotations

import logging
import shutil
import typing as t
from pathlib import Path

from prometheus_client import multiprocess

from executor.config import metrics_multiprocess_dir, owned_metrics_dir

log = logging.getLogger("gunicorn.error")


def on_starting(server: t.Any) -> None:
    directory = metrics_multiprocess_dir()
    if directory is None:
        return
    if directory != owned_metrics_dir():
        # The operator's directory may hold an earlier server's values: they are not ours.
        for stale in Path(directory).glob("*.db"):
            stale.unlink(missing_ok=True)
    Path(directory).mkdir(parents=True, exist_ok=True)
    log.info("Metrics of every worker are merged from %s", directory)


def child_exit(server: t.Any, worker: t.Any) -> None:
    directory = metrics_multiprocess_dir()
    if directory is not None:
        multiprocess.mark_process_dead(worker.pid, directory)  # type: ignore[no-untyped-call]


def on_exit(server: t.Any) -> None:
    directory = owned_metrics_dir()
    if directory is not None and directory == metrics_multiprocess_dir():
        shutil.rmtree(directory, ignore_errors=True)
