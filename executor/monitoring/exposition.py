"""Rendering ``/metrics``: this app's registry, or every process's values under gunicorn."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from executor.config import metrics_multiprocess_dir
from executor.monitoring.metrics import ExecutorMetrics


def render(metrics: ExecutorMetrics) -> tuple[bytes, str]:
    """The Prometheus text exposition and its content type.

    With a multiprocess directory (gunicorn), each worker's values are in files there, including
    those of workers that exited (their counters must not go backwards); one scrape, whichever
    worker answers it, reads and merges them all. Otherwise this app's own registry is the truth.
    """
    directory = metrics_multiprocess_dir()
    if directory is None:
        return generate_latest(metrics.registry), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST
