"""WSGI entry point: ``gunicorn wsgi:app`` (production) or ``flask run`` (development).

The runner starts in each process that serves the app (each gunicorn worker, the reloader's
child under ``flask run``), polls and executes, and drains when the process exits. Settings come
from ``instance/config.py`` and the environment; see the README.
"""

import logging

from executor import create_app
from executor.hosting import start_runner_when_serving
from executor.logs import configure_logging
from executor.monitoring.exposition import warn_if_workers_are_counted_apart

app = create_app()
_settings = app.extensions["workflow_executor"].settings
configure_logging(_settings.log_level, _settings.log_format)
warn_if_workers_are_counted_apart(logging.getLogger("executor.wsgi"))
start_runner_when_serving(app)
