"""``create_app``: the executor as a Flask app of its own."""

from __future__ import annotations

import typing as t
from collections.abc import Mapping

from flask import Flask, request

from executor.config import instance_path_override, load_settings
from executor.extension import WorkflowExecutor
from executor.http.errors import register_error_handlers
from executor.http.runs import add_version_header, limit_body_and_authenticate
from executor.runner.services import Services


def create_app(
    config: Mapping[str, t.Any] | None = None,
    *,
    services: Services | None = None,
    serve: bool = False,
) -> Flask:
    """Build the executor's app. Binds no socket and starts no thread.

    Settings: defaults < ``<instance>/config.py`` < environment < ``config``. ``services``
    replaces the real adapters (tests); ``serve`` makes the runner own an HTTP server on
    ``HTTP_HOST:HTTP_PORT`` (the CLI); otherwise whoever hosts the app serves it.
    Raises :class:`executor.errors.ConfigurationError` for invalid settings.
    """
    app = Flask(
        "executor",
        instance_path=instance_path_override(),
        instance_relative_config=True,
        static_folder=None,
    )
    settings = load_settings(
        config, instance_config_dir=app.instance_path, data_dir=app.instance_path
    )
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    if config:
        app.config.from_mapping({k: v for k, v in config.items() if k.isupper()})

    @app.before_request
    def authenticate_unrouted() -> None:
        # Unknown paths answer 404/405 only after authentication (protocol §5.1); routes of the
        # blueprints authenticate (or not, for health) on their own.
        if request.blueprint is None:
            limit_body_and_authenticate()

    app.after_request(add_version_header)
    register_error_handlers(app)
    WorkflowExecutor().init_app(app, services=services, settings=settings, serve=serve)
    return app
