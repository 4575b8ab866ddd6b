"""Rendering ``/metrics``: this app's registry, or every process's values under gunicorn."""

from __future__ import annotations

import logging
import sys

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from executor.config import metrics_multiprocess_dir
from executor.monitoring.metrics import ExecutorMetrics


def render(metrics: ExecutorMetrics) -> tuple[bytes, str]:
    """The Prometheus text exposition and its content type.

    Under gunicorn with a multiprocess directory, each worker's values are in files there,
    including those of workers that exited (their counters must not go backwards); one scrape,
    whichever worker answers it, reads and merges them all. Otherwise this app's own registry is
    the truth: a single process with the variable set (an image-wide environment) must not sum
    the files of processes that ran before it, whose gauges no gunicorn hook cleared.
    """
    directory = metrics_multiprocess_dir()
    if directory is None or "gunicorn.arbiter" not in sys.modules:
        return generate_latest(metrics.registry), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


def warn_if_workers_are_counted_apart(log: logging.Logger) -> None:
    """Under gunicorn without ``gunicorn.conf.py`` (no multiprocess directory) each worker would
    answer ``/metrics`` with its own numbers only: say so once, at start."""
    if "gunicorn.arbiter" in sys.modules and metrics_multiprocess_dir() is None:
        log.warning(
            "gunicorn without PROMETHEUS_MULTIPROC_DIR: /metrics shows only the worker that "
            "answers; start gunicorn with the executor's gunicorn.conf.py (see the README)"
        )
