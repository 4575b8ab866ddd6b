"""Starting the runner in the process that serves the app, whoever serves it."""

from __future__ import annotations

import atexit
import logging

import click
from flask import Flask
from werkzeug.serving import is_running_from_reloader

from executor.extension import runner_of

log = logging.getLogger(__name__)


def is_serving_process(app: Flask) -> bool:
    """Whether this process will serve requests.

    Under the ``flask`` command only ``flask run`` serves, and with the reloader only its child
    does (the parent merely watches files). Any other importer of ``wsgi.py`` — a gunicorn worker,
    uWSGI, mod_wsgi — serves.
    """
    context = click.get_current_context(silent=True)
    if context is None:
        return True
    if context.info_name != "run":
        return False  # flask routes, flask shell, ...
    reload = context.params.get("reload")
    if reload is None:
        reload = app.debug
    return not reload or is_running_from_reloader()


def start_runner_when_serving(app: Flask) -> None:
    """Start the app's runner if this process serves it, and drain it at interpreter exit
    (a gunicorn worker exits through ``sys.exit`` after its graceful shutdown)."""
    if not is_serving_process(app):
        log.debug("Not a serving process — the runner stays idle")
        return
    runner = runner_of(app)
    runner.start()
    atexit.register(runner.stop)
