"""The ``workflow-executor`` command."""

from __future__ import annotations

import argparse
import io
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from flask import Flask

from executor.adapters.stores.sql import SqlRunStore
from executor.adapters.stores.sql_credentials import SqlMcpCredentialStore
from executor.app import create_app
from executor.checks import run_checks, settings_check
from executor.config import Settings, instance_path_override, load_settings
from executor.errors import ConfigurationError, ExecutorError
from executor.extension import executor_state
from executor.logs import configure_logging
from executor.version import __version__

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workflow-executor",
        description="Run Forest Admin workflow steps on your own infrastructure.",
    )
    parser.add_argument(
        "-v", "--version", action="version", version=f"workflow-executor {__version__}"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="poll, execute and serve the API (the default)")
    # Accepted before or after "serve" (serve is the default command); the subcommand's own
    # defaults are SUPPRESS so they cannot overwrite what was given before it.
    _add_serve_options(parser, default=None)
    _add_serve_options(serve, default=argparse.SUPPRESS)
    commands.add_parser("migrate", help="create or upgrade the run store's tables, then exit")
    commands.add_parser(
        "check", help="validate the settings and reach the orchestrator, agent and run store"
    )
    _add_demo_command(commands)
    return parser


def _add_serve_options(parser: argparse.ArgumentParser, *, default: Any) -> None:
    parser.add_argument("--host", default=default, help="interface to bind (HTTP_HOST)")
    parser.add_argument(
        "--port", type=int, default=default, help="port to bind, 0 for any (HTTP_PORT)"
    )
    parser.add_argument(
        "--server",
        choices=["werkzeug", "gunicorn"],
        default=default,
        help="HTTP server (HTTP_SERVER)",
    )
    parser.add_argument(
        "--workers", type=int, default=default, help="gunicorn workers (HTTP_WORKERS)"
    )
    parser.add_argument(
        "--in-memory",
        action="store_true",
        default=default,
        help="keep run state in memory (testing)",
    )
    parser.add_argument(
        "--skip-migrations",
        dest="run_migrations",
        action="store_false",
        default=default,
        help="do not create or upgrade the run store's tables (RUN_MIGRATIONS=false)",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--json",
        dest="log_format",
        action="store_const",
        const="json",
        default=default,
        help="JSON log lines",
    )
    output.add_argument(
        "--pretty",
        dest="log_format",
        action="store_const",
        const="text",
        default=default,
        help="readable logs",
    )


def _given_options(args: argparse.Namespace) -> list[str]:
    return [flag for name, flag in _SERVE_OPTIONS.items() if getattr(args, name, None) is not None]


# The destination of each serve option, and how it is spelled.
_SERVE_OPTIONS = {
    "host": "--host",
    "port": "--port",
    "server": "--server",
    "workers": "--workers",
    "in_memory": "--in-memory",
    "run_migrations": "--skip-migrations",
    "log_format": "--json/--pretty",
}


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    given = {
        "HTTP_HOST": getattr(args, "host", None),
        "HTTP_PORT": getattr(args, "port", None),
        "HTTP_SERVER": getattr(args, "server", None),
        "HTTP_WORKERS": getattr(args, "workers", None),
        "IN_MEMORY_STORE": getattr(args, "in_memory", None),
        "LOG_FORMAT": getattr(args, "log_format", None),
        "RUN_MIGRATIONS": getattr(args, "run_migrations", None),
    }
    return {key: value for key, value in given.items() if value is not None}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command in ("migrate", "check") and _overrides(args):
        # They would be silently ignored: `--in-memory migrate` would migrate the real store.
        parser.error(f"{', '.join(_given_options(args))} apply to serve only")
    if args.command == "migrate":
        return migrate()
    if args.command == "check":
        return check()
    if args.command == "demo":
        return demo(args)
    return serve(_overrides(args))


def _settings() -> Settings:
    """The settings ``create_app`` would load (same layers, same instance folder as its
    ``Flask("executor")``), without building the app and its adapters."""
    instance = Flask("executor", instance_path=instance_path_override()).instance_path
    return load_settings(instance_config_dir=instance, data_dir=instance)


def migrate() -> int:
    """Create or upgrade the run store's tables (idempotent), say what was done, exit 0."""
    try:
        settings = _settings()
    except ExecutorError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    configure_logging(settings.log_level, settings.log_format)
    if settings.store_url is None:
        print("The in-memory store (IN_MEMORY_STORE) has no tables: nothing to migrate.")
        return 0
    store = SqlRunStore(settings.store_url, schema=settings.database_schema)
    credentials = SqlMcpCredentialStore(settings.store_url, schema=settings.database_schema)
    print(f"Run store: {store.location}")
    try:
        missing = store.missing_tables()
        store.init()  # the same idempotent migrations as at start-up: 001, then 002
        if not credentials.table_present():
            missing.append(credentials.table_name)
        credentials.init()
    except ExecutorError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    finally:
        store.close()
        credentials.close()
    for table in [*store.table_names, credentials.table_name]:
        print(f"{'Created' if table in missing else 'Already present:'} table {table}")
    print("The run store is up to date.")
    return 0


def check() -> int:
    """Print a ✓/✗ checklist of the configuration and its dependencies; exit 1 if any failed."""
    print(f"workflow-executor {__version__}")
    try:
        settings = _settings()
    except ConfigurationError as error:
        print(settings_check(error.problems).line())
        print("Fix the settings above, then run `workflow-executor check` again.")
        return 1
    configure_logging(settings.log_level, settings.log_format)
    results = [settings_check(None)]
    print(results[0].line(), flush=True)
    for result in run_checks(settings):
        results.append(result)
        print(result.line(), flush=True)
    failed = sum(not result.ok for result in results)
    print(f"{failed} check{'s' if failed != 1 else ''} failed." if failed else "All checks passed.")
    return 1 if failed else 0


def serve(overrides: dict[str, Any]) -> int:
    """Serve until SIGTERM or SIGINT, then drain and exit 0 (1 when start or stop failed)."""
    try:
        app = create_app(overrides, serve=True)
        settings = executor_state(app).settings
        if settings.http_server == "gunicorn" and settings.store_url is None:
            raise ExecutorError(
                "The in-memory store cannot be shared with gunicorn workers: "
                "use SQLite or PostgreSQL"
            )
    except ExecutorError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    configure_logging(settings.log_level, settings.log_format)
    runner = executor_state(app).runner

    stop_requested = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("Received %s — draining", signal.Signals(signum).name)
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        runner.start()
    except Exception as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    stop_requested.wait()
    try:
        runner.stop()
    except Exception:
        log.exception("Shutdown failed")
        return 1
    return 0


def _add_demo_command(commands: Any) -> None:
    demo_parser = commands.add_parser(
        "demo",
        help="run a sample workflow in a local sandbox (a development tool; no configuration)",
        description="Start a sandbox orchestrator and agent on 127.0.0.1 with the executor, run a "
        "workflow definition end to end in the terminal, then keep the API up until Ctrl-C.",
    )
    demo_parser.add_argument(
        "--workflow", type=Path, help="a workflow definition file (JSON); default: the sample"
    )
    demo_parser.add_argument(
        "--port", type=int, default=3400, help="the executor's API port, 0 for any (3400)"
    )
    demo_parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("sandbox-data"),
        help="where the sample agent keeps its SQLite database (./sandbox-data)",
    )
    demo_parser.add_argument(
        "--no-input",
        action="store_true",
        help="answer waiting steps automatically (also when stdin is not a terminal)",
    )
    demo_parser.add_argument(
        "--exit", action="store_true", help="stop once the run has finished instead of waiting"
    )
    demo_parser.add_argument("--verbose", action="store_true", help="show the executor's logs")


def demo(args: argparse.Namespace) -> int:
    """The sandbox (imported here: serving never needs it)."""
    from executor.sandbox.demo import DemoOptions, run_demo

    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="replace")  # the progress marks on a non-UTF-8 terminal
    return run_demo(
        DemoOptions(
            workflow=args.workflow,
            port=args.port,
            data_dir=args.data_dir,
            interactive=not args.no_input,
            exit_when_done=args.exit,
            log_level="info" if args.verbose else "warning",
        )
    )
