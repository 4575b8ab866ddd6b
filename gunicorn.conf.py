"""gunicorn settings for ``gunicorn wsgi:app``: gunicorn reads ``./gunicorn.conf.py`` by itself when
started from this folder; from elsewhere, pass ``-c /path/to/gunicorn.conf.py``.

It makes ``/metrics`` count every worker: each worker process writes its metric values to files in
``PROMETHEUS_MULTIPROC_DIR`` and a scrape merges them. The variable must be set before anything
imports ``prometheus_client`` (it picks its storage at import time), hence before the executor is
imported below. An operator's own ``PROMETHEUS_MULTIPROC_DIR`` is used as given (and cleared of
an earlier server's values); otherwise a private temporary directory is created, and removed when
gunicorn exits. Command-line options (``-w``, ``-b``, ...) still apply on top of this file.
"""

import os
import tempfile

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _directory = tempfile.mkdtemp(prefix="workflow-executor-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _directory
    os.environ["WORKFLOW_EXECUTOR_OWNED_METRICS_DIR"] = _directory  # see config.owned_metrics_dir

from executor.monitoring.gunicorn import child_exit, on_exit, on_starting

__all__ = ["child_exit", "on_exit", "on_starting"]
