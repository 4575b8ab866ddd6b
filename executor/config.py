"""Settings: defaults < ``instance/config.py`` < environment < an explicit mapping.

The environment uses the protocol's variable names so an existing deployment's environment works
unchanged; ``instance/config.py`` and the explicit mapping use the same names as Python constants.
This is the only module that reads the environment.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask import Config

from executor.errors import ConfigurationError

DEFAULT_SERVER_URL = "https://api.forestadmin.com"
SQLITE_FILE_NAME = "executor.sqlite3"
_SCHEMA_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_$]*$")
_ENV_SECRET = re.compile(r"^[0-9a-f]{64}$")
_POSITIVE_INT_TEXT = re.compile(r"^[1-9][0-9]*$")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class _Invalid(ValueError):
    """A value that does not fit its setting; the message says what is expected."""


# --- value parsers: each takes a Python value (or the environment's string) ---------------------


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid("must be a string")
    return value.strip()


def _non_empty(value: Any) -> str:
    text = _text(value)
    if not text:
        raise _Invalid("must not be empty")
    return text


def _env_secret(value: Any) -> str:
    text = _text(value)
    if not _ENV_SECRET.match(text):
        raise _Invalid("must be 64 lowercase hexadecimal characters (the environment secret)")
    return text


def _url(value: Any) -> str:
    text = _non_empty(value).rstrip("/")
    if not re.match(r"^https?://[^/\s]+", text):
        raise _Invalid("must be an http:// or https:// URL")
    return text


def _number(*, integer: bool, minimum: float, env_minimum: int = 1) -> Callable[[Any], float]:
    """Environment strings must be positive integers (protocol §6.2); programmatic values may be
    any finite number at or above ``minimum`` (fractions of a second help tests and embedders)."""

    def parse(value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if not (_POSITIVE_INT_TEXT.match(text) or (env_minimum == 0 and text == "0")):
                raise _Invalid("must be a positive integer")
            return int(text)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise _Invalid("must be a number")
        if integer and not float(value).is_integer():
            raise _Invalid("must be an integer")
        if value < minimum:
            raise _Invalid(f"must be at least {minimum:g}")
        return int(value) if integer else value

    return parse


_positive_seconds = _number(integer=False, minimum=0.001)
_positive_int = _number(integer=True, minimum=1)
_non_negative_int = _number(integer=True, minimum=0)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _Invalid("must be true or false (also 1/0, yes/no, on/off)")


def _choice(*allowed: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _text(value).lower()
        if text not in allowed:
            raise _Invalid(f"must be one of {', '.join(allowed)}")
        return text

    return parse


def _log_level(value: Any) -> str:
    level = _choice("debug", "info", "warn", "warning", "error")(value)
    return "warning" if level == "warn" else level


def _schema_name(value: Any) -> str:
    text = _non_empty(value)
    if not _SCHEMA_NAME.match(text) or len(text) > 63:
        raise _Invalid("must be a SQL identifier (letters, digits, _ or $; at most 63 characters)")
    return text


@dataclass(frozen=True)
class Setting:
    name: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    required: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "FOREST_ENV_SECRET",
        _env_secret,
        None,
        "Environment secret: 64 lowercase hex characters; sent to the orchestrator.",
        required=True,
    ),
    Setting(
        "FOREST_AUTH_SECRET",
        _non_empty,
        None,
        "Secret shared with the agent: verifies user JWTs and signs agent JWTs.",
        required=True,
    ),
    Setting("AGENT_URL", _url, None, "Base URL of the customer's Forest agent.", required=True),
    Setting(
        "FOREST_SERVER_URL",
        _url,
        DEFAULT_SERVER_URL,
        "Base URL of the orchestrator (Forest server).",
    ),
    Setting(
        "DATABASE_URL",
        _non_empty,
        None,
        "Run store: `sqlite:///path`, `postgres://…`/`postgresql://…`; unset → SQLite file in the instance folder.",
    ),
    Setting(
        "DATABASE_HOST",
        _non_empty,
        None,
        "PostgreSQL host, when `DATABASE_URL` is unset (with `DATABASE_NAME` and `DATABASE_USER`).",
    ),
    Setting("DATABASE_NAME", _non_empty, None, "PostgreSQL database name (see `DATABASE_HOST`)."),
    Setting("DATABASE_USER", _non_empty, None, "PostgreSQL user (see `DATABASE_HOST`)."),
    Setting("DATABASE_PASSWORD", _text, None, "PostgreSQL password (see `DATABASE_HOST`)."),
    Setting("DATABASE_PORT", _positive_int, 5432, "PostgreSQL port (see `DATABASE_HOST`)."),
    Setting(
        "DATABASE_SSL",
        _bool,
        True,
        "With `DATABASE_HOST`: require TLS (`sslmode=require`). A `DATABASE_URL` carries its own `sslmode`.",
    ),
    Setting(
        "DATABASE_SCHEMA",
        _schema_name,
        "forest",
        "PostgreSQL schema of the executor's tables (created when missing).",
    ),
    Setting(
        "RUN_MIGRATIONS",
        _bool,
        True,
        "Create or upgrade the run store's tables at start-up; `false`: they must exist (`workflow-executor migrate`). CLI: `serve --skip-migrations`.",
    ),
    Setting(
        "IN_MEMORY_STORE",
        _bool,
        False,
        "Keep run state in memory only (testing; lost on exit). CLI: `--in-memory`.",
    ),
    Setting("HTTP_HOST", _non_empty, "0.0.0.0", "Interface the CLI's HTTP server binds."),
    Setting(
        "HTTP_PORT",
        _number(integer=True, minimum=0, env_minimum=0),
        3400,
        "Port the CLI's HTTP server binds (`0`: any free port).",
    ),
    Setting(
        "HTTP_SERVER",
        _choice("werkzeug", "gunicorn"),
        "werkzeug",
        "Server the CLI starts: `werkzeug` (threads, one process) or `gunicorn` (child process).",
    ),
    Setting(
        "HTTP_WORKERS", _positive_int, 2, "gunicorn worker processes when `HTTP_SERVER=gunicorn`."
    ),
    Setting(
        "MAX_REQUEST_BYTES",
        _positive_int,
        1024 * 1024,
        "Largest request body accepted (larger → 413).",
    ),
    Setting(
        "POLLING_INTERVAL_S",
        _positive_seconds,
        30,
        "Seconds between the end of a poll cycle and the next poll.",
    ),
    Setting(
        "FIRST_POLL_DELAY_S",
        _number(integer=False, minimum=0, env_minimum=0),
        None,
        "Seconds before the first poll; unset → one polling interval.",
    ),
    Setting(
        "POLLING_ENABLED",
        _bool,
        True,
        "Whether this process polls the orchestrator (it always executes the runs it is triggered with).",
    ),
    Setting(
        "POLL_BACKOFF_MAX_S",
        _positive_seconds,
        300,
        "Longest wait between polls while the orchestrator is failing.",
    ),
    Setting(
        "STEP_TIMEOUT_S",
        _positive_seconds,
        300,
        "Seconds a step may take before it reports the timeout error.",
    ),
    Setting("AI_INVOKE_TIMEOUT_S", _positive_seconds, 30, "Seconds one AI invocation may take."),
    Setting(
        "STOP_TIMEOUT_S",
        _positive_seconds,
        30,
        "Seconds a stop waits for in-flight runs to finish.",
    ),
    Setting(
        "MAX_CHAIN_DEPTH",
        _non_negative_int,
        50,
        "Steps executed at once after the first one of a run (0 disables chaining).",
    ),
    Setting(
        "SCHEMA_CACHE_TTL_S", _positive_seconds, 600, "Seconds a collection schema stays cached."
    ),
    Setting(
        "ACCESS_CHECK_CACHE_S",
        _number(integer=False, minimum=0, env_minimum=0),
        5,
        "Seconds a granted `GET /runs/<id>` access check is reused for the same user and run (0: ask the orchestrator every time). Refusals are never cached.",
    ),
    Setting(
        "MAX_CONCURRENT_RUNS", _positive_int, 10, "Worker threads executing runs in this process."
    ),
    Setting(
        "MAX_QUEUED_RUNS",
        _non_negative_int,
        100,
        "Runs that may wait for a worker; beyond that a trigger answers 503.",
    ),
    Setting(
        "RUN_LEASE_TTL_S",
        _positive_seconds,
        60,
        "Seconds a run's lease outlives its holder (a crashed process's runs are free again after it).",
    ),
    Setting(
        "AI_PROVIDER",
        _choice("openai", "anthropic"),
        None,
        "Local AI provider: `openai` (or any OpenAI-compatible server) or `anthropic`, with `AI_MODEL` and `AI_API_KEY` (all three or none). Unset: the Forest server's AI proxy.",
    ),
    Setting(
        "AI_MODEL",
        _non_empty,
        None,
        "Model name for `AI_PROVIDER` (e.g. `gpt-4.1`, `claude-sonnet-4-5`).",
    ),
    Setting("AI_API_KEY", _non_empty, None, "API key for `AI_PROVIDER`."),
    Setting(
        "AI_BASE_URL",
        _url,
        None,
        "Base URL for `AI_PROVIDER` (an OpenAI-compatible local server, a gateway); unset: the provider's own.",
    ),
    Setting(
        "FORCE_AI_ERROR",
        _bool,
        False,
        "Development only (ignored when `EXECUTOR_ENV=production`): every AI call fails.",
    ),
    Setting("LOG_LEVEL", _log_level, "info", "`Debug`, `Info`, `Warn` or `Error` (any case)."),
    Setting(
        "LOG_FORMAT",
        _choice("auto", "json", "text"),
        "auto",
        "`json` (one object per line), `text`, or `auto` (JSON unless stderr is a terminal).",
    ),
    Setting(
        "EXECUTOR_ENV",
        _choice("production", "development", "test"),
        "production",
        "`development`/`test` relax development-only checks (the protocol's `NODE_ENV`): `FORCE_AI_ERROR`, and OAuth token endpoints over `http` or on loopback/private addresses.",
    ),
    Setting(
        "FOREST_EXECUTOR_ENCRYPTION_KEY",
        _non_empty,
        None,
        "Secret from which the key encrypting stored MCP OAuth credentials is derived; the same on every instance sharing a database; unset → deposits answer 503.",
    ),
    Setting(
        "METRICS_TOKEN",
        _non_empty,
        None,
        "When set, `GET /metrics` requires `Authorization: Bearer <this token>`; unset → open like `/health`.",
    ),
    Setting(
        "READY_POLL_MAX_AGE_S",
        _positive_seconds,
        None,
        "`/ready` turns red when the last successful poll is older than this; unset → 3 x `POLLING_INTERVAL_S` + 10.",
    ),
    Setting(
        "READY_STORE_TIMEOUT_S",
        _positive_seconds,
        2,
        "Seconds `/ready` waits for the run store to answer its ping.",
    ),
)


@dataclass(frozen=True)
class Settings:
    """Validated settings of one executor."""

    forest_env_secret: str
    forest_auth_secret: str
    agent_url: str
    forest_server_url: str
    store_url: str | None  # SQLAlchemy URL; None with the in-memory store
    database_schema: str
    run_migrations: bool
    http_host: str
    http_port: int
    http_server: str
    http_workers: int
    max_request_bytes: int
    polling_interval_s: float
    first_poll_delay_s: float
    polling_enabled: bool
    poll_backoff_max_s: float
    step_timeout_s: float
    ai_invoke_timeout_s: float
    stop_timeout_s: float
    max_chain_depth: int
    schema_cache_ttl_s: float
    access_check_cache_s: float
    max_concurrent_runs: int
    max_queued_runs: int
    run_lease_ttl_s: float
    ai_provider: str | None
    ai_model: str | None
    ai_api_key: str | None
    ai_base_url: str | None
    force_ai_error: bool
    log_level: str
    log_format: str
    executor_env: str
    encryption_key: str | None
    metrics_token: str | None
    ready_poll_max_age_s: float
    ready_store_timeout_s: float
    raw: Mapping[str, Any]  # the validated values by setting name, for child processes

    def __repr__(self) -> str:  # never print secrets
        return (
            f"Settings(forest_server_url={self.forest_server_url!r}, agent_url={self.agent_url!r})"
        )

    def as_mapping(self) -> dict[str, Any]:
        """The settings as an explicit mapping that recreates them (e.g. in a child process)."""
        return dict(self.raw)


def load_settings(
    explicit: Mapping[str, Any] | None = None,
    *,
    instance_config_dir: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge the layers and validate them; raise one :class:`ConfigurationError` naming every
    invalid or missing variable.

    ``instance_config_dir`` holds the optional ``config.py`` layer; ``data_dir`` is where the
    default SQLite run store lives.
    """
    layers: list[Mapping[str, Any]] = []
    if instance_config_dir is not None:
        instance = Config(str(instance_config_dir))
        instance.from_pyfile("config.py", silent=True)
        layers.append(instance)
    layers.append(os.environ if environ is None else environ)
    if explicit:
        layers.append(explicit)

    values: dict[str, Any] = {}
    problems: list[str] = []
    for setting in SETTINGS:
        raw = setting.default
        for layer in layers:
            if setting.name in layer and layer[setting.name] not in (None, ""):
                raw = layer[setting.name]
        if raw is None:
            if setting.required:
                problems.append(f"{setting.name} is required: {setting.help}")
            values[setting.name] = None
            continue
        try:
            values[setting.name] = setting.parse(raw)
        except _Invalid as error:
            problems.append(f"{setting.name} {error}")
    store_url: str | None = None
    # Checked whenever the settings it combines are valid, so one message names every problem.
    if all(name in values for name in _STORE_SETTINGS):
        try:
            store_url = _store_url(values, data_dir)
        except _Invalid as error:
            problems.append(str(error))
    ai_parts = ("AI_PROVIDER", "AI_MODEL", "AI_API_KEY")
    given = [name for name in ai_parts if values.get(name) is not None]
    if given and len(given) != len(ai_parts) and all(name in values for name in ai_parts):
        missing = ", ".join(name for name in ai_parts if name not in given)
        problems.append(f"AI_PROVIDER, AI_MODEL and AI_API_KEY go together: {missing} missing")
    if values.get("AI_BASE_URL") is not None and values.get("AI_PROVIDER") is None:
        problems.append("AI_BASE_URL needs AI_PROVIDER (the Forest AI proxy has its own address)")
    if problems:
        raise ConfigurationError("Invalid configuration: " + "; ".join(problems), problems=problems)

    return Settings(
        forest_env_secret=values["FOREST_ENV_SECRET"],
        forest_auth_secret=values["FOREST_AUTH_SECRET"],
        agent_url=values["AGENT_URL"],
        forest_server_url=values["FOREST_SERVER_URL"],
        store_url=store_url,
        database_schema=values["DATABASE_SCHEMA"],
        run_migrations=values["RUN_MIGRATIONS"],
        http_host=values["HTTP_HOST"],
        http_port=values["HTTP_PORT"],
        http_server=values["HTTP_SERVER"],
        http_workers=values["HTTP_WORKERS"],
        max_request_bytes=values["MAX_REQUEST_BYTES"],
        polling_interval_s=values["POLLING_INTERVAL_S"],
        first_poll_delay_s=(
            values["POLLING_INTERVAL_S"]
            if values["FIRST_POLL_DELAY_S"] is None
            else values["FIRST_POLL_DELAY_S"]
        ),
        polling_enabled=values["POLLING_ENABLED"],
        poll_backoff_max_s=values["POLL_BACKOFF_MAX_S"],
        step_timeout_s=values["STEP_TIMEOUT_S"],
        ai_invoke_timeout_s=values["AI_INVOKE_TIMEOUT_S"],
        stop_timeout_s=values["STOP_TIMEOUT_S"],
        max_chain_depth=values["MAX_CHAIN_DEPTH"],
        schema_cache_ttl_s=values["SCHEMA_CACHE_TTL_S"],
        access_check_cache_s=values["ACCESS_CHECK_CACHE_S"],
        max_concurrent_runs=values["MAX_CONCURRENT_RUNS"],
        max_queued_runs=values["MAX_QUEUED_RUNS"],
        run_lease_ttl_s=values["RUN_LEASE_TTL_S"],
        ai_provider=values["AI_PROVIDER"],
        ai_model=values["AI_MODEL"],
        ai_api_key=values["AI_API_KEY"],
        ai_base_url=values["AI_BASE_URL"],
        force_ai_error=values["FORCE_AI_ERROR"] and values["EXECUTOR_ENV"] != "production",
        log_level=values["LOG_LEVEL"],
        log_format=values["LOG_FORMAT"],
        executor_env=values["EXECUTOR_ENV"],
        encryption_key=values["FOREST_EXECUTOR_ENCRYPTION_KEY"],
        metrics_token=values["METRICS_TOKEN"],
        ready_poll_max_age_s=(
            _default_poll_max_age(values["POLLING_INTERVAL_S"])
            if values["READY_POLL_MAX_AGE_S"] is None
            else values["READY_POLL_MAX_AGE_S"]
        ),
        ready_store_timeout_s=values["READY_STORE_TIMEOUT_S"],
        raw={name: value for name, value in values.items() if value is not None},
    )


def _default_poll_max_age(interval_s: float) -> float:
    """A few poll intervals, so that one failed poll (retried after about one interval) keeps
    readiness green, plus slack for a slow answer and scheduling; a loop that stopped polling, or
    an orchestrator that keeps failing, turns it red. The backoff cap (minutes) is not added: it
    would hide a stalled loop for that long."""
    return 3 * interval_s + 10


_STORE_SETTINGS = (
    "IN_MEMORY_STORE",
    "DATABASE_URL",
    "DATABASE_HOST",
    "DATABASE_NAME",
    "DATABASE_USER",
    "DATABASE_PASSWORD",
    "DATABASE_PORT",
    "DATABASE_SSL",
)


def _store_url(values: Mapping[str, Any], data_dir: Any) -> str | None:
    """The SQLAlchemy URL of the run store, from ``DATABASE_URL`` or its parts."""
    if values["IN_MEMORY_STORE"]:
        return None
    url: str | None = values["DATABASE_URL"]
    if url is not None:
        if url.startswith(("postgres://", "postgresql://")):
            return "postgresql+psycopg://" + url.split("://", 1)[1]
        if url.startswith("postgresql+psycopg://"):
            return url
        if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
            return url
        raise _Invalid(
            "DATABASE_URL must be sqlite:///<file path> or a postgres:// / postgresql:// URL"
        )
    parts = [values["DATABASE_HOST"], values["DATABASE_NAME"], values["DATABASE_USER"]]
    if any(part is not None for part in parts):
        if not all(part is not None for part in parts):
            raise _Invalid(
                "DATABASE_HOST, DATABASE_NAME and DATABASE_USER go together: all or none"
            )
        host, name, user = parts
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # IPv6
        password = values["DATABASE_PASSWORD"]
        credentials = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
        url = f"postgresql+psycopg://{credentials}@{host}:{values['DATABASE_PORT']}/{quote(name, safe='')}"
        return url + ("?sslmode=require" if values["DATABASE_SSL"] else "")
    if data_dir is None:
        raise _Invalid("DATABASE_URL is required when there is no instance folder")
    return f"sqlite:///{Path(data_dir).resolve() / SQLITE_FILE_NAME}"


def setting_names() -> list[str]:
    """Every setting's name, for documentation checks."""
    return [setting.name for setting in SETTINGS]


def metrics_multiprocess_dir() -> str | None:
    """``PROMETHEUS_MULTIPROC_DIR``: where every process of one server writes its metrics (set by
    ``gunicorn.conf.py``, or by the operator); ``None`` for a single process.

    Raises :class:`ConfigurationError` when it names no directory: prometheus_client would fail
    at the first metric with a bare FileNotFoundError.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
    if directory is not None and not os.path.isdir(directory):
        raise ConfigurationError(f"PROMETHEUS_MULTIPROC_DIR: {directory} is not a directory")
    return directory


# Set by gunicorn.conf.py to the directory it created, so that only its creator removes it.
OWNED_METRICS_DIR_VARIABLE = "WORKFLOW_EXECUTOR_OWNED_METRICS_DIR"


def owned_metrics_dir() -> str | None:
    return os.environ.get(OWNED_METRICS_DIR_VARIABLE) or None


def instance_path_override() -> str | None:
    """``EXECUTOR_INSTANCE_PATH``: the instance folder of an installed (non-editable) package."""
    return os.environ.get("EXECUTOR_INSTANCE_PATH") or None
