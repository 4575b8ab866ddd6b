"""``POST /mcp-oauth-credentials`` and ``DELETE /mcp-oauth-credentials/<id>`` (protocol §5.7,
§10.4), through the app, with the fake OAuth server behind the stored credentials."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, inspect

from executor import runner_of
from executor.errors import CredentialStoreError
from executor.extension import executor_state
from executor.mcp.tokens import ReauthNeeded
from tests.conftest import auth_header
from tests.fakes.oauth import FakeOAuthServer

KEY = "an encryption key for the tests"
KEY_MISSING = {"code": "executor_encryption_key_missing"}


@pytest.fixture
def oauth() -> Iterator[FakeOAuthServer]:
    with FakeOAuthServer() as fake:
        yield fake


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(FOREST_EXECUTOR_ENCRYPTION_KEY=KEY, EXECUTOR_ENV="test")


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def body(oauth: FakeOAuthServer, **changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "mcpServerId": "srv-1",
        "refreshToken": oauth.issue_refresh_token(),
        "tokenEndpoint": oauth.token_endpoint,
    }
    document.update(changes)
    return {k: v for k, v in document.items() if v is not None}


def deposit(client: FlaskClient, document: Any, user_id: Any = 7) -> Any:
    return client.post(
        "/mcp-oauth-credentials",
        data=json.dumps(document),
        headers={**auth_header(user_id), "Content-Type": "application/json"},
    )


def tokens_of(app: Flask) -> Any:
    return executor_state(app).services.mcp_tokens


# --- deposit ----------------------------------------------------------------------------------


def test_a_deposit_is_stored_for_the_caller_and_usable(
    app: Flask, client: FlaskClient, oauth: FakeOAuthServer
) -> None:
    response = deposit(client, body(oauth, clientId="c", scopes="read"), user_id="245")
    assert response.status_code == 200
    assert response.get_json() == {"stored": True}
    assert response.headers["X-Executor-Version"]
    assert oauth.is_valid(tokens_of(app).access_token(245, "srv-1"))
    with pytest.raises(ReauthNeeded):
        tokens_of(app).access_token(7, "srv-1")  # another user has nothing


def test_a_user_id_beyond_the_tables_integer_is_refused(
    client: FlaskClient, oauth: FakeOAuthServer
) -> None:
    assert deposit(client, body(oauth), user_id=2**31 - 1).status_code == 200
    response = deposit(client, body(oauth), user_id=2**31)
    assert (response.status_code, response.get_json()) == (
        400,
        {"error": "MCP credentials cannot be stored for this user id."},
    )


def test_every_field_of_a_full_deposit_is_kept(
    app: Flask, client: FlaskClient, oauth: FakeOAuthServer
) -> None:
    document = body(
        oauth,
        clientId="client-1",
        clientSecret="secret-1",
        clientSecretExpiresAt="2031-01-02T03:04:05Z",
        tokenEndpointAuthMethod="client_secret_post",
        scopes="read write",
    )
    assert deposit(client, document).status_code == 200
    loaded = executor_state(app).services.mcp_credentials.load(7, "srv-1")
    assert loaded is not None
    credential = loaded.credential
    assert credential.refresh_token == document["refreshToken"]
    assert credential.client_secret == "secret-1"
    assert credential.client_id == "client-1"
    assert credential.client_secret_expires_at is not None
    assert credential.client_secret_expires_at.isoformat() == "2031-01-02T03:04:05+00:00"
    assert credential.token_endpoint_auth_method == "client_secret_post"
    assert credential.scopes == "read write"


def test_a_new_deposit_replaces_and_evicts_the_cached_token(
    app: Flask, client: FlaskClient, oauth: FakeOAuthServer
) -> None:
    assert deposit(client, body(oauth)).status_code == 200
    first = tokens_of(app).access_token(7, "srv-1")
    assert deposit(client, body(oauth)).status_code == 200
    second = tokens_of(app).access_token(7, "srv-1")
    assert second != first
    assert (
        oauth.refresh_requests[1].form["refresh_token"]
        != (oauth.refresh_requests[0].form["refresh_token"])
    )


PREFIX = "Invalid request body — "


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mcpServerId": None}, "mcpServerId: Missing data for required field."),
        ({"mcpServerId": ""}, "mcpServerId: Length must be between 1 and 255."),
        ({"mcpServerId": "x" * 256}, "mcpServerId: Length must be between 1 and 255."),
        ({"mcpServerId": 12}, "mcpServerId: Not a valid string."),
        ({"refreshToken": None}, "refreshToken: Missing data for required field."),
        ({"refreshToken": ""}, "refreshToken: Shorter than minimum length 1."),
        ({"clientId": ""}, "clientId: Length must be between 1 and 255."),
        ({"clientId": "c" * 256}, "clientId: Length must be between 1 and 255."),
        ({"clientId": "c", "clientSecret": ""}, "clientSecret: Shorter than minimum length 1."),
        ({"clientSecret": "s"}, "clientSecret: Requires clientId."),
        ({"clientSecretExpiresAt": "next tuesday"}, "clientSecretExpiresAt: Not a valid date."),
        ({"clientSecretExpiresAt": 1700000000}, "clientSecretExpiresAt: Not a valid string."),
        ({"tokenEndpoint": None}, "tokenEndpoint: Missing data for required field."),
        ({"tokenEndpoint": ""}, "tokenEndpoint: Length must be between 1 and 2048."),
        (
            {"tokenEndpoint": "https://auth.example.com/" + "t" * 2048},
            "tokenEndpoint: Length must be between 1 and 2048.",
        ),
        (
            {"tokenEndpoint": "https://169.254.169.254/latest/meta-data"},
            "tokenEndpoint: Unsafe token endpoint: must not target an unspecified, link-local "
            "or broadcast address.",
        ),
        (
            {"tokenEndpoint": "ftp://auth.example.com/token"},
            "tokenEndpoint: Unsafe token endpoint: must be an absolute http or https URL.",
        ),
        (
            {"tokenEndpointAuthMethod": "private_key_jwt"},
            "tokenEndpointAuthMethod: Must be one of: client_secret_basic, client_secret_post, "
            "none.",
        ),
        ({"scopes": "s" * 2049}, "scopes: Longer than maximum length 2048."),
        ({"userId": 8}, "userId: Unknown field."),
        ({"user_id": 8}, "user_id: Unknown field."),
    ],
)
def test_each_field_rule_is_enforced(
    app: Flask, client: FlaskClient, oauth: FakeOAuthServer, changes: dict[str, Any], message: str
) -> None:
    document = body(oauth)
    for key, value in changes.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    response = deposit(client, document)
    assert response.status_code == 400
    assert response.get_json() == {"error": PREFIX + message}
    assert executor_state(app).services.mcp_credentials.store.get(7, "srv-1") is None


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "body: Invalid input type."),
        ("text", "body: Invalid input type."),
        (None, "body: Invalid input type."),
    ],
)
def test_a_body_that_is_not_an_object_is_refused(
    client: FlaskClient, document: Any, message: str
) -> None:
    response = deposit(client, document)
    assert response.status_code == 400
    assert response.get_json() == {"error": PREFIX + message}


def test_several_issues_are_listed_together(client: FlaskClient) -> None:
    response = deposit(client, {"mcpServerId": "", "userId": 1})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error.startswith(PREFIX)
    for issue in (
        "mcpServerId: Length must be between 1 and 255.",
        "refreshToken: Missing data for required field.",
        "tokenEndpoint: Missing data for required field.",
        "userId: Unknown field.",
    ):
        assert issue in error
    assert error.count("; ") == 3


@pytest.mark.parametrize("raw", [b"", b"{not json", b'{"a": NaN'])
def test_a_body_that_is_not_json_is_refused(client: FlaskClient, raw: bytes) -> None:
    response = client.post(
        "/mcp-oauth-credentials",
        data=raw,
        headers={**auth_header(), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.get_json() == {"error": PREFIX + "body: Not valid JSON."}


def test_a_large_body_is_refused(client: FlaskClient, oauth: FakeOAuthServer) -> None:
    response = deposit(client, body(oauth, refreshToken="r" * 70_000))
    assert response.status_code == 413


def test_an_unsafe_endpoint_is_refused_outside_development(
    make_app: Callable[..., Flask], oauth: FakeOAuthServer
) -> None:
    app = make_app(FOREST_EXECUTOR_ENCRYPTION_KEY=KEY)  # EXECUTOR_ENV defaults to production
    client = app.test_client()
    for endpoint, reason in [
        (oauth.token_endpoint, "must use https"),
        ("https://127.0.0.1/token", "must not target a loopback address"),
        ("https://localhost/token", "must not target a loopback address"),
        ("https://10.1.2.3/token", "must not target a private address"),
        ("https://[::ffff:192.168.0.1]/token", "must not target a private address"),
    ]:
        response = deposit(client, body(oauth, tokenEndpoint=endpoint))
        assert response.status_code == 400
        assert response.get_json() == {
            "error": f"{PREFIX}tokenEndpoint: Unsafe token endpoint: {reason}."
        }
    assert deposit(client, body(oauth, tokenEndpoint="https://a.example.com/t")).status_code == 200


def test_without_an_encryption_key_a_deposit_is_the_typed_503(
    make_app: Callable[..., Flask], oauth: FakeOAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(EXECUTOR_ENV="test")
    document = body(oauth)
    response = deposit(app.test_client(), document)
    assert response.status_code == 503
    assert response.get_json() == KEY_MISSING
    assert executor_state(app).services.mcp_credentials.store.get(7, "srv-1") is None
    assert document["refreshToken"] not in caplog.text


def test_the_body_is_validated_before_the_key_is_needed(make_app: Callable[..., Flask]) -> None:
    app = make_app(EXECUTOR_ENV="test")
    response = deposit(app.test_client(), {"userId": 1})
    assert response.status_code == 400


def test_a_store_failure_is_a_500(
    app: Flask, client: FlaskClient, oauth: FakeOAuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(credential: Any) -> None:
        raise CredentialStoreError("Credential store write failed: disk full")

    monkeypatch.setattr(executor_state(app).services.mcp_credentials.store, "put", broken)
    response = deposit(client, body(oauth))
    assert response.status_code == 500
    assert response.get_json() == {"error": "Internal server error"}


# --- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["post", "delete"])
def test_the_routes_need_a_valid_token(
    client: FlaskClient, oauth: FakeOAuthServer, method: str
) -> None:
    path = "/mcp-oauth-credentials" + ("/srv-1" if method == "delete" else "")
    for headers in ({}, {"Authorization": "Bearer nope"}, auth_header(expires_in=-10)):
        response = getattr(client, method)(path, json=body(oauth), headers=headers)
        assert response.status_code == 401
        assert response.get_json() == {"error": "Unauthorized"}


def test_the_session_cookie_authenticates_too(
    app: Flask, client: FlaskClient, oauth: FakeOAuthServer
) -> None:
    from tests.conftest import make_token

    client.set_cookie("forest_session_token", make_token(9))
    assert client.post("/mcp-oauth-credentials", json=body(oauth)).status_code == 200
    assert executor_state(app).services.mcp_credentials.store.get(9, "srv-1") is not None


# --- delete -----------------------------------------------------------------------------------


def test_delete_removes_the_callers_credential_and_evicts_its_token(
    app: Flask, client: FlaskClient, oauth: FakeOAuthServer
) -> None:
    assert deposit(client, body(oauth)).status_code == 200
    assert deposit(client, body(oauth), user_id=8).status_code == 200
    tokens = tokens_of(app)
    tokens.access_token(7, "srv-1")
    response = client.delete("/mcp-oauth-credentials/srv-1", headers=auth_header(7))
    assert response.status_code == 204
    assert response.data == b""
    assert "Content-Type" not in response.headers
    assert response.headers["X-Executor-Version"]
    with pytest.raises(ReauthNeeded):
        tokens.access_token(7, "srv-1")  # neither stored nor cached any more
    assert oauth.is_valid(tokens.access_token(8, "srv-1"))  # another user's is untouched


def test_deleting_nothing_is_still_204(client: FlaskClient) -> None:
    response = client.delete("/mcp-oauth-credentials/never-deposited", headers=auth_header())
    assert response.status_code == 204


def test_delete_does_not_need_the_encryption_key(make_app: Callable[..., Flask]) -> None:
    app = make_app(EXECUTOR_ENV="test")
    response = app.test_client().delete("/mcp-oauth-credentials/srv-1", headers=auth_header())
    assert response.status_code == 204


def test_the_routes_answer_405_for_other_methods(client: FlaskClient) -> None:
    assert client.get("/mcp-oauth-credentials", headers=auth_header()).status_code == 405
    assert client.post("/mcp-oauth-credentials/srv-1", headers=auth_header()).status_code == 405


# --- migration 002 at start -------------------------------------------------------------------


def test_the_sql_credential_store_is_migrated_when_the_runner_starts(
    make_app: Callable[..., Flask], tmp_path: Path, oauth: FakeOAuthServer
) -> None:
    url = f"sqlite:///{tmp_path / 'executor.sqlite3'}"
    app = make_app(
        IN_MEMORY_STORE=False,
        DATABASE_URL=url,
        FOREST_EXECUTOR_ENCRYPTION_KEY=KEY,
        EXECUTOR_ENV="test",
    )
    engine = create_engine(url)
    assert "ai_mcp_oauth_credentials" not in inspect(engine).get_table_names()
    runner_of(app).start()
    assert "ai_mcp_oauth_credentials" in inspect(engine).get_table_names()
    engine.dispose()
    client = app.test_client()
    assert deposit(client, body(oauth)).status_code == 200
    assert oauth.is_valid(tokens_of(app).access_token(7, "srv-1"))
    assert client.delete("/mcp-oauth-credentials/srv-1", headers=auth_header()).status_code == 204


def test_starting_without_a_key_warns(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    with caplog.at_level(logging.WARNING):
        runner_of(app).start()
    assert "FOREST_EXECUTOR_ENCRYPTION_KEY is not set" in caplog.text


def test_services_built_by_hand_get_a_keyless_memory_store_and_tokens_over_it(
    make_app: Callable[..., Flask], orchestrator: Any, oauth: FakeOAuthServer
) -> None:
    from tests.conftest import services_for

    services = services_for(orchestrator)
    assert services.mcp_tokens.credentials is services.mcp_credentials
    app = make_app(services=services, FOREST_EXECUTOR_ENCRYPTION_KEY=KEY)
    # The services' own credentials win over the settings: no key there, production rules.
    client = app.test_client()
    assert deposit(client, body(oauth)).status_code == 400  # http on loopback
    response = deposit(client, body(oauth, tokenEndpoint="https://auth.example.com/token"))
    assert response.status_code == 503
    assert response.get_json() == KEY_MISSING
