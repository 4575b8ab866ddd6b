"""Settings loading: layers, validation rules and the run store URL (protocol §6.2)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from executor.config import DEFAULT_SERVER_URL, Settings, load_settings
from executor.errors import ConfigurationError

ENV_SECRET = "0123456789abcdef" * 4
AUTH_SECRET = "auth-secret-shared-with-the-agent"
AGENT_URL = "http://agent.example:3310"
REQUIRED = {
    "FOREST_ENV_SECRET": ENV_SECRET,
    "FOREST_AUTH_SECRET": AUTH_SECRET,
    "AGENT_URL": AGENT_URL,
}


def load(
    explicit: dict[str, Any] | None = None,
    *,
    environ: dict[str, str] | None = None,
    data_dir: Path | str | None = "/srv/executor-data",
    instance_config_dir: Path | None = None,
) -> Settings:
    """Settings from the required values plus ``explicit``; the real environment never leaks in."""
    return load_settings(
        {**REQUIRED, **(explicit or {})},
        environ={} if environ is None else environ,
        data_dir=data_dir,
        instance_config_dir=instance_config_dir,
    )


def config_error(
    explicit: dict[str, Any] | None = None,
    *,
    environ: dict[str, str] | None = None,
    data_dir: Path | str | None = "/srv/executor-data",
    base: dict[str, Any] | None = None,
) -> str:
    """The message of the ConfigurationError that loading these settings raises."""
    with pytest.raises(ConfigurationError) as caught:
        load_settings(
            {**(REQUIRED if base is None else base), **(explicit or {})},
            environ={} if environ is None else environ,
            data_dir=data_dir,
        )
    return str(caught.value)


def write_instance_config(folder: Path, source: str) -> Path:
    (folder / "config.py").write_text(textwrap.dedent(source))
    return folder


# --- required settings --------------------------------------------------------------------------


def test_required_settings_only_give_documented_defaults() -> None:
    settings = load()

    assert settings.forest_env_secret == ENV_SECRET
    assert settings.forest_auth_secret == AUTH_SECRET
    assert settings.agent_url == AGENT_URL
    assert settings.forest_server_url == DEFAULT_SERVER_URL == "https://api.forestadmin.com"
    assert settings.database_schema == "forest"
    assert settings.http_port == 3400
    assert settings.polling_interval_s == 30
    assert settings.first_poll_delay_s == 30  # unset: one polling interval
    assert settings.polling_enabled is True
    assert settings.step_timeout_s == 300
    assert settings.ai_invoke_timeout_s == 30
    assert settings.stop_timeout_s == 30
    assert settings.max_chain_depth == 50
    assert settings.schema_cache_ttl_s == 600
    assert settings.log_level == "info"
    assert settings.encryption_key is None


def test_all_required_settings_missing_are_named_in_one_error() -> None:
    message = config_error(base={})

    assert message.startswith("Invalid configuration: ")
    assert "FOREST_ENV_SECRET is required" in message
    assert "FOREST_AUTH_SECRET is required" in message
    assert "AGENT_URL is required" in message


@pytest.mark.parametrize("name", ["FOREST_ENV_SECRET", "FOREST_AUTH_SECRET", "AGENT_URL"])
def test_each_required_setting_is_reported_alone_when_missing(name: str) -> None:
    base = {key: value for key, value in REQUIRED.items() if key != name}

    message = config_error(base=base)

    assert f"{name} is required" in message
    for other in set(REQUIRED) - {name}:
        assert other not in message


@pytest.mark.parametrize("name", ["FOREST_ENV_SECRET", "FOREST_AUTH_SECRET", "AGENT_URL"])
def test_an_empty_environment_variable_counts_as_missing(name: str) -> None:
    base = {key: value for key, value in REQUIRED.items() if key != name}

    assert f"{name} is required" in config_error(base=base, environ={name: ""})


@pytest.mark.parametrize(
    "secret",
    [
        "0123456789ABCDEF" * 4,  # uppercase
        "0123456789abcdef" * 4 + "0",  # 65 characters
        ("0123456789abcdef" * 4)[:-1],  # 63 characters
        "g" * 64,  # not hexadecimal
        "0123456789abcdef" * 3 + "0123456789abcde-",
    ],
)
def test_env_secret_must_be_64_lowercase_hex_characters(secret: str) -> None:
    message = config_error({"FOREST_ENV_SECRET": secret})

    assert "FOREST_ENV_SECRET must be 64 lowercase hexadecimal characters" in message
    assert secret not in message  # a secret is never echoed


def test_env_secret_from_the_environment_is_accepted() -> None:
    settings = load_settings(
        {"FOREST_AUTH_SECRET": AUTH_SECRET, "AGENT_URL": AGENT_URL},
        environ={"FOREST_ENV_SECRET": "ab" * 32},
        data_dir="/srv",
    )

    assert settings.forest_env_secret == "ab" * 32


@pytest.mark.parametrize("url", ["agent.example", "ftp://agent.example", "http://", "   "])
def test_agent_url_must_be_an_http_url(url: str) -> None:
    message = config_error({"AGENT_URL": url})

    assert "AGENT_URL" in message


def test_urls_lose_their_trailing_slash() -> None:
    settings = load({"AGENT_URL": "https://agent.example/", "FOREST_SERVER_URL": "http://fs:80/"})

    assert settings.agent_url == "https://agent.example"
    assert settings.forest_server_url == "http://fs:80"


def test_one_error_names_every_invalid_and_missing_variable() -> None:
    message = config_error(
        {"FOREST_AUTH_SECRET": None, "DATABASE_URL": "mysql://db/executor"},
        environ={
            "POLLING_INTERVAL_S": "0",
            "DATABASE_SSL": "maybe",
            "LOG_LEVEL": "verbose",
            "DATABASE_SCHEMA": "1st",
        },
        base={"FOREST_ENV_SECRET": "nope", "AGENT_URL": AGENT_URL},
    )

    for name in (
        "FOREST_ENV_SECRET",
        "FOREST_AUTH_SECRET",
        "POLLING_INTERVAL_S",
        "DATABASE_SSL",
        "LOG_LEVEL",
        "DATABASE_SCHEMA",
    ):
        assert name in message
    # DATABASE_SSL is invalid, so the store URL (which depends on it) cannot be checked yet.
    assert "AGENT_URL" not in message


def test_an_invalid_database_url_is_named_beside_other_problems() -> None:
    message = config_error(
        {"DATABASE_URL": "mysql://db/executor"}, environ={"STEP_TIMEOUT_S": "soon"}, base={}
    )

    assert "DATABASE_URL must be sqlite:///" in message
    assert "STEP_TIMEOUT_S must be a positive integer" in message
    assert "FOREST_ENV_SECRET is required" in message


def test_configuration_error_user_message_is_the_whole_message() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings({}, environ={}, data_dir="/srv")

    assert caught.value.user_message == str(caught.value)


# --- layers -------------------------------------------------------------------------------------


def test_instance_config_overrides_defaults(tmp_path: Path) -> None:
    folder = write_instance_config(
        tmp_path,
        """
        POLLING_INTERVAL_S = 7
        LOG_LEVEL = "Debug"
        lowercase_names_are_ignored = "yes"
        """,
    )

    settings = load(instance_config_dir=folder)

    assert settings.polling_interval_s == 7
    assert settings.log_level == "debug"
    assert settings.step_timeout_s == 300  # untouched: default


def test_instance_config_can_hold_the_required_settings(tmp_path: Path) -> None:
    folder = write_instance_config(
        tmp_path,
        f"""
        FOREST_ENV_SECRET = {ENV_SECRET!r}
        FOREST_AUTH_SECRET = {AUTH_SECRET!r}
        AGENT_URL = {AGENT_URL!r}
        """,
    )

    settings = load_settings(None, instance_config_dir=folder, environ={}, data_dir=tmp_path)

    assert settings.forest_env_secret == ENV_SECRET
    assert settings.agent_url == AGENT_URL


def test_missing_instance_config_file_is_fine(tmp_path: Path) -> None:
    settings = load(instance_config_dir=tmp_path)

    assert settings.polling_interval_s == 30


def test_environment_overrides_instance_config(tmp_path: Path) -> None:
    folder = write_instance_config(tmp_path, "POLLING_INTERVAL_S = 7\nSTEP_TIMEOUT_S = 9\n")

    settings = load(environ={"POLLING_INTERVAL_S": "11"}, instance_config_dir=folder)

    assert settings.polling_interval_s == 11
    assert settings.step_timeout_s == 9


def test_explicit_mapping_overrides_environment_and_instance_config(tmp_path: Path) -> None:
    folder = write_instance_config(tmp_path, "POLLING_INTERVAL_S = 7\nSTEP_TIMEOUT_S = 9\n")

    settings = load(
        {"POLLING_INTERVAL_S": 13},
        environ={"POLLING_INTERVAL_S": "11", "STOP_TIMEOUT_S": "12"},
        instance_config_dir=folder,
    )

    assert settings.polling_interval_s == 13
    assert settings.stop_timeout_s == 12
    assert settings.step_timeout_s == 9


def test_none_or_empty_in_a_higher_layer_does_not_hide_a_lower_one(tmp_path: Path) -> None:
    folder = write_instance_config(tmp_path, "STEP_TIMEOUT_S = 9\n")

    settings = load(
        {"STEP_TIMEOUT_S": None, "POLLING_INTERVAL_S": ""},
        environ={"STEP_TIMEOUT_S": "", "POLLING_INTERVAL_S": "4"},
        instance_config_dir=folder,
    )

    assert settings.step_timeout_s == 9
    assert settings.polling_interval_s == 4


def test_explicit_none_mapping_means_no_explicit_layer() -> None:
    settings = load_settings(None, environ=dict(REQUIRED), data_dir="/srv")

    assert settings.forest_auth_secret == AUTH_SECRET


def test_invalid_value_in_instance_config_is_reported(tmp_path: Path) -> None:
    folder = write_instance_config(tmp_path, "MAX_CONCURRENT_RUNS = 0\n")

    with pytest.raises(ConfigurationError, match="MAX_CONCURRENT_RUNS must be at least 1"):
        load(instance_config_dir=folder)


# --- numbers ------------------------------------------------------------------------------------


_NUMERIC = [
    "POLLING_INTERVAL_S",
    "STEP_TIMEOUT_S",
    "AI_INVOKE_TIMEOUT_S",
    "STOP_TIMEOUT_S",
    "SCHEMA_CACHE_TTL_S",
    "MAX_CHAIN_DEPTH",
    "DATABASE_PORT",
    "HTTP_PORT",
]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (name, text)
        for name in _NUMERIC
        for text in ["0", "-1", "1.5", "abc", "-0", "12abc", "1 2"]
        if (name, text) != ("HTTP_PORT", "0")  # HTTP_PORT=0 asks for any free port
    ],
)
def test_environment_numbers_must_be_positive_integers(name: str, text: str) -> None:
    message = config_error(environ={name: text})

    assert f"{name} must be a positive integer" in message


@pytest.mark.parametrize(
    ("name", "attribute"),
    [
        ("POLLING_INTERVAL_S", "polling_interval_s"),
        ("STEP_TIMEOUT_S", "step_timeout_s"),
        ("AI_INVOKE_TIMEOUT_S", "ai_invoke_timeout_s"),
        ("STOP_TIMEOUT_S", "stop_timeout_s"),
        ("SCHEMA_CACHE_TTL_S", "schema_cache_ttl_s"),
        ("MAX_CHAIN_DEPTH", "max_chain_depth"),
        ("HTTP_PORT", "http_port"),
        ("MAX_CONCURRENT_RUNS", "max_concurrent_runs"),
    ],
)
def test_environment_positive_integers_are_parsed(name: str, attribute: str) -> None:
    settings = load(environ={name: " 17 "})

    value = getattr(settings, attribute)
    assert value == 17
    assert type(value) is int


def test_http_port_zero_from_the_environment_means_any_free_port() -> None:
    assert load(environ={"HTTP_PORT": "0"}).http_port == 0


def test_programmatic_fractional_seconds_are_accepted() -> None:
    settings = load(
        {
            "POLLING_INTERVAL_S": 0.05,
            "STEP_TIMEOUT_S": 1.5,
            "POLL_BACKOFF_MAX_S": 0.2,
            "STOP_TIMEOUT_S": 0.25,
        }
    )

    assert settings.polling_interval_s == 0.05
    assert settings.first_poll_delay_s == 0.05
    assert settings.step_timeout_s == 1.5
    assert settings.poll_backoff_max_s == 0.2
    assert settings.stop_timeout_s == 0.25


def test_a_string_is_held_to_the_environment_rule_even_in_the_explicit_mapping() -> None:
    assert "POLLING_INTERVAL_S must be a positive integer" in config_error(
        {"POLLING_INTERVAL_S": "0.05"}
    )


def test_max_chain_depth_accepts_programmatic_zero_but_not_environment_zero() -> None:
    assert load({"MAX_CHAIN_DEPTH": 0}).max_chain_depth == 0
    assert "MAX_CHAIN_DEPTH must be a positive integer" in config_error(
        environ={"MAX_CHAIN_DEPTH": "0"}
    )


@pytest.mark.parametrize("value", [-1, 2.5])
def test_max_chain_depth_rejects_programmatic_negative_or_fractional(value: float) -> None:
    assert "MAX_CHAIN_DEPTH" in config_error({"MAX_CHAIN_DEPTH": value})


@pytest.mark.parametrize("value", [0, -1, float("inf"), float("nan"), True, [5], {"seconds": 5}])
def test_programmatic_seconds_must_be_a_positive_finite_number(value: Any) -> None:
    assert "POLLING_INTERVAL_S" in config_error({"POLLING_INTERVAL_S": value})


def test_programmatic_integer_settings_accept_integral_floats_and_reject_fractions() -> None:
    assert load({"MAX_CONCURRENT_RUNS": 4.0}).max_concurrent_runs == 4
    assert "MAX_CONCURRENT_RUNS must be an integer" in config_error({"MAX_CONCURRENT_RUNS": 4.5})


def test_first_poll_delay_may_be_zero_from_the_environment() -> None:
    settings = load(environ={"FIRST_POLL_DELAY_S": "0", "POLLING_INTERVAL_S": "5"})

    assert settings.first_poll_delay_s == 0
    assert settings.polling_interval_s == 5


# --- booleans -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["true", "1", "yes", "on", "TRUE", "Yes", "On", " tRuE "])
def test_boolean_true_spellings(text: str) -> None:
    settings = load(environ={"POLLING_ENABLED": text, "IN_MEMORY_STORE": text})

    assert settings.polling_enabled is True
    assert settings.store_url is None


@pytest.mark.parametrize("text", ["false", "0", "no", "off", "FALSE", "No", "OFF", "oFf"])
def test_boolean_false_spellings(text: str) -> None:
    settings = load(environ={"POLLING_ENABLED": text, "IN_MEMORY_STORE": text})

    assert settings.polling_enabled is False
    assert settings.store_url is not None


@pytest.mark.parametrize("text", ["maybe", "2", "y", "enabled", "t"])
def test_invalid_boolean_is_rejected(text: str) -> None:
    message = config_error(environ={"POLLING_ENABLED": text})

    assert "POLLING_ENABLED must be true or false" in message


def test_programmatic_booleans() -> None:
    assert load({"POLLING_ENABLED": False}).polling_enabled is False
    assert load({"POLLING_ENABLED": True}).polling_enabled is True
    assert "POLLING_ENABLED" in config_error({"POLLING_ENABLED": 1})


# --- LOG_LEVEL and other choices ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("Debug", "debug"),
        ("DEBUG", "debug"),
        ("Info", "info"),
        ("info", "info"),
        ("Warn", "warning"),
        ("WARN", "warning"),
        ("warn", "warning"),
        ("Error", "error"),
        ("eRRoR", "error"),
    ],
)
def test_log_level_is_case_insensitive_and_warn_means_warning(text: str, level: str) -> None:
    assert load(environ={"LOG_LEVEL": text}).log_level == level


@pytest.mark.parametrize("text", ["verbose", "trace", "fatal", "critical"])
def test_unknown_log_level_is_rejected(text: str) -> None:
    assert "LOG_LEVEL must be one of" in config_error(environ={"LOG_LEVEL": text})


def test_other_choices_are_validated() -> None:
    assert load(environ={"LOG_FORMAT": "JSON"}).log_format == "json"
    assert load(environ={"EXECUTOR_ENV": "Development"}).executor_env == "development"
    assert load(environ={"HTTP_SERVER": "gunicorn"}).http_server == "gunicorn"
    message = config_error(
        environ={"LOG_FORMAT": "xml", "EXECUTOR_ENV": "staging", "HTTP_SERVER": "uwsgi"}
    )
    assert "LOG_FORMAT" in message
    assert "EXECUTOR_ENV" in message
    assert "HTTP_SERVER" in message


# --- DATABASE_SCHEMA ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["forest", "_private", "Forest_2", "a$b", "x", "a" * 63, "_", "A_B$C9"]
)
def test_valid_database_schema_names(name: str) -> None:
    assert load(environ={"DATABASE_SCHEMA": name}).database_schema == name


@pytest.mark.parametrize(
    "name", ["1forest", "$forest", "for-est", "for est", "forest;drop", "a" * 64, "é", "a.b"]
)
def test_invalid_database_schema_names(name: str) -> None:
    assert "DATABASE_SCHEMA must be a SQL identifier" in config_error(
        environ={"DATABASE_SCHEMA": name}
    )


# --- the run store URL --------------------------------------------------------------------------


def test_default_store_is_a_sqlite_file_in_the_data_folder(tmp_path: Path) -> None:
    settings = load(data_dir=tmp_path)

    assert settings.store_url == f"sqlite:///{tmp_path.resolve() / 'executor.sqlite3'}"


def test_without_data_folder_a_database_url_is_required() -> None:
    assert "DATABASE_URL is required" in config_error(data_dir=None)


def test_in_memory_store_needs_no_url_and_has_none() -> None:
    settings = load({"IN_MEMORY_STORE": True}, data_dir=None)

    assert settings.store_url is None


def test_in_memory_store_wins_over_a_database_url() -> None:
    settings = load(
        {"IN_MEMORY_STORE": True}, environ={"DATABASE_URL": "postgres://u@db:5432/executor"}
    )

    assert settings.store_url is None


@pytest.mark.parametrize(
    "url", ["sqlite:///relative.sqlite3", "sqlite:////var/lib/executor/run.sqlite3"]
)
def test_sqlite_urls_are_kept(url: str) -> None:
    assert load(environ={"DATABASE_URL": url}).store_url == url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgres://user:pw@db.example:5432/executor?sslmode=require",
            "postgresql+psycopg://user:pw@db.example:5432/executor?sslmode=require",
        ),
        (
            "postgresql://user@db.example/executor",
            "postgresql+psycopg://user@db.example/executor",
        ),
        (
            "postgresql+psycopg://user@db.example/executor",
            "postgresql+psycopg://user@db.example/executor",
        ),
    ],
)
def test_postgres_urls_use_the_psycopg_driver(url: str, expected: str) -> None:
    assert load(environ={"DATABASE_URL": url}).store_url == expected


@pytest.mark.parametrize(
    "url",
    [
        "mysql://user@db/executor",
        "sqlite://",
        "sqlite:///",
        "db.example:5432/executor",
        "postgresql+asyncpg://user@db/executor",
        "http://db.example",
    ],
)
def test_other_database_url_schemes_are_rejected(url: str) -> None:
    message = config_error(environ={"DATABASE_URL": url})

    assert "DATABASE_URL must be sqlite:///<file path> or a postgres:// / postgresql:// URL" in (
        message
    )


def test_database_url_takes_precedence_over_its_parts() -> None:
    settings = load(
        environ={
            "DATABASE_URL": "postgres://u@url-host/url-db",
            "DATABASE_HOST": "parts-host",
            "DATABASE_NAME": "parts-db",
            "DATABASE_USER": "parts-user",
        }
    )

    assert settings.store_url == "postgresql+psycopg://u@url-host/url-db"


def test_database_parts_build_a_postgres_url_with_tls_required() -> None:
    settings = load(
        environ={
            "DATABASE_HOST": "db.example",
            "DATABASE_NAME": "executor",
            "DATABASE_USER": "forest",
            "DATABASE_PASSWORD": "secret",
        }
    )

    assert settings.store_url == (
        "postgresql+psycopg://forest:secret@db.example:5432/executor?sslmode=require"
    )


def test_database_parts_url_encode_user_password_and_name() -> None:
    settings = load(
        environ={
            "DATABASE_HOST": "db.example",
            "DATABASE_NAME": "my db/prod",
            "DATABASE_USER": "ada@corp",
            "DATABASE_PASSWORD": "p@ss:w/rd%?#",
            "DATABASE_PORT": "6543",
        }
    )

    assert settings.store_url == (
        "postgresql+psycopg://ada%40corp:p%40ss%3Aw%2Frd%25%3F%23@db.example:6543/my%20db%2Fprod"
        "?sslmode=require"
    )


def test_database_parts_without_password_have_no_colon() -> None:
    settings = load(
        environ={"DATABASE_HOST": "db", "DATABASE_NAME": "executor", "DATABASE_USER": "forest"}
    )

    assert settings.store_url == "postgresql+psycopg://forest@db:5432/executor?sslmode=require"


@pytest.mark.parametrize(
    ("host", "expected"), [("::1", "[::1]"), ("fe80::1:2", "[fe80::1:2]"), ("[::1]", "[::1]")]
)
def test_an_ipv6_database_host_is_bracketed(host: str, expected: str) -> None:
    settings = load(
        environ={"DATABASE_HOST": host, "DATABASE_NAME": "executor", "DATABASE_USER": "forest"}
    )

    assert settings.store_url == (
        f"postgresql+psycopg://forest@{expected}:5432/executor?sslmode=require"
    )


@pytest.mark.parametrize("ssl", ["false", "0", "no", "OFF"])
def test_database_ssl_false_drops_sslmode(ssl: str) -> None:
    settings = load(
        environ={
            "DATABASE_HOST": "db",
            "DATABASE_NAME": "executor",
            "DATABASE_USER": "forest",
            "DATABASE_SSL": ssl,
        }
    )

    assert settings.store_url == "postgresql+psycopg://forest@db:5432/executor"


@pytest.mark.parametrize(
    "parts",
    [
        {"DATABASE_HOST": "db"},
        {"DATABASE_NAME": "executor"},
        {"DATABASE_USER": "forest"},
        {"DATABASE_HOST": "db", "DATABASE_NAME": "executor"},
        {"DATABASE_HOST": "db", "DATABASE_USER": "forest"},
        {"DATABASE_NAME": "executor", "DATABASE_USER": "forest"},
    ],
)
def test_database_parts_go_all_or_none(parts: dict[str, str]) -> None:
    message = config_error(environ=parts)

    assert "DATABASE_HOST, DATABASE_NAME and DATABASE_USER go together: all or none" in message


def test_database_parts_alone_do_not_apply_to_the_in_memory_store() -> None:
    assert load({"IN_MEMORY_STORE": True}, environ={"DATABASE_HOST": "db"}).store_url is None


# --- secrets and round trip ---------------------------------------------------------------------


def test_repr_never_shows_secrets() -> None:
    settings = load(
        {"FOREST_EXECUTOR_ENCRYPTION_KEY": "encryption-key-value"},
        environ={"DATABASE_URL": "postgres://forest:db-password-value@db/executor"},
    )

    for text in (repr(settings), str(settings), f"{settings}"):
        assert ENV_SECRET not in text
        assert AUTH_SECRET not in text
        assert "encryption-key-value" not in text
        assert "db-password-value" not in text
    assert AGENT_URL in repr(settings)


def test_as_mapping_round_trips_through_load_settings(tmp_path: Path) -> None:
    folder = write_instance_config(tmp_path, "STEP_TIMEOUT_S = 9\n")
    settings = load(
        {"POLLING_INTERVAL_S": 0.5, "MAX_CHAIN_DEPTH": 0, "POLLING_ENABLED": False},
        environ={
            "LOG_LEVEL": "Warn",
            "DATABASE_HOST": "::1",
            "DATABASE_NAME": "executor",
            "DATABASE_USER": "forest",
            "DATABASE_PASSWORD": "p@ss",
            "DATABASE_SSL": "off",
            "FIRST_POLL_DELAY_S": "0",
        },
        instance_config_dir=folder,
    )

    again = load_settings(settings.as_mapping(), environ={}, data_dir=None)

    assert again == settings
    assert again.store_url == "postgresql+psycopg://forest:p%40ss@[::1]:5432/executor"
    assert again.log_level == "warning"
    assert again.max_chain_depth == 0
    assert again.first_poll_delay_s == 0


def test_as_mapping_of_defaults_round_trips_with_the_same_data_folder(tmp_path: Path) -> None:
    settings = load(data_dir=tmp_path)

    assert load_settings(settings.as_mapping(), environ={}, data_dir=tmp_path) == settings


def test_as_mapping_round_trip_wins_over_a_different_environment() -> None:
    settings = load({"IN_MEMORY_STORE": True})

    again = load_settings(
        settings.as_mapping(),
        environ={"POLLING_INTERVAL_S": "99", "FOREST_AUTH_SECRET": "other"},
        data_dir=None,
    )

    assert again == settings


def test_as_mapping_is_a_copy() -> None:
    settings = load()
    mapping = settings.as_mapping()
    mapping["POLLING_INTERVAL_S"] = 1

    assert settings.as_mapping()["POLLING_INTERVAL_S"] == 30
    assert mapping is not settings.raw


# --- AI settings --------------------------------------------------------------------------------


def test_a_local_ai_provider_needs_its_model_and_key() -> None:
    message = config_error({"AI_PROVIDER": "openai", "AI_MODEL": "gpt-4.1"})
    assert "AI_PROVIDER, AI_MODEL and AI_API_KEY go together: AI_API_KEY missing" in message
    assert "AI_PROVIDER must be one of openai, anthropic" in config_error(
        {"AI_PROVIDER": "mistral"}
    )


def test_an_ai_base_url_without_a_provider_is_refused() -> None:
    assert "AI_BASE_URL needs AI_PROVIDER" in config_error({"AI_BASE_URL": "http://127.0.0.1:1"})


def test_a_complete_local_provider_is_read() -> None:
    settings = load(
        {
            "AI_PROVIDER": "Anthropic",
            "AI_MODEL": "claude-x",
            "AI_API_KEY": "sk-secret-123",
            "AI_BASE_URL": "http://gateway.internal/",
        }
    )
    assert (settings.ai_provider, settings.ai_model, settings.ai_base_url) == (
        "anthropic",
        "claude-x",
        "http://gateway.internal",
    )
    assert "sk-secret-123" not in repr(settings)


def test_force_ai_error_is_ignored_in_production() -> None:
    assert load({"FORCE_AI_ERROR": True}).force_ai_error is False
    assert load({"FORCE_AI_ERROR": True, "EXECUTOR_ENV": "development"}).force_ai_error is True
