"""Access tokens for OAuth2 MCP servers against a fake authorization server (protocol §10.3)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from executor.adapters.stores.memory_credentials import MemoryMcpCredentialStore
from executor.errors import (
    CredentialStoreError,
    EncryptionKeyMissing,
    InvalidTokenEndpoint,
    OAuthRefreshError,
)
from executor.mcp.credentials import McpCredentials, OAuthCredential
from executor.mcp.oauth import OAuthRefresher
from executor.mcp.store import StoredCredential
from executor.mcp.tokens import McpAccessTokens, ReauthNeeded
from tests.fakes.oauth import FakeOAuthServer
from tests.waiting import eventually

KEY = "an encryption key for the tests"
USER = 7
SERVER = "srv-1"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def oauth() -> Iterator[FakeOAuthServer]:
    with FakeOAuthServer() as fake:
        yield fake


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def credentials() -> McpCredentials:
    return McpCredentials(MemoryMcpCredentialStore(), encryption_key=KEY, environment="test")


@pytest.fixture
def tokens(credentials: McpCredentials, clock: Clock) -> Iterator[McpAccessTokens]:
    tokens = McpAccessTokens(credentials, refresher=OAuthRefresher(timeout_s=5), clock=clock)
    yield tokens
    tokens.close()


def deposit(
    credentials: McpCredentials,
    oauth: FakeOAuthServer,
    refresh_token: str | None = None,
    **extra: Any,
) -> str:
    token = refresh_token or oauth.issue_refresh_token()
    credentials.deposit(
        USER,
        OAuthCredential(
            mcp_server_id=SERVER, refresh_token=token, token_endpoint=oauth.token_endpoint, **extra
        ),
    )
    return token


def stored_refresh_token(credentials: McpCredentials) -> str:
    loaded = credentials.load(USER, SERVER)
    assert loaded is not None
    return loaded.credential.refresh_token


# --- cache ----------------------------------------------------------------------------------------


def test_a_token_is_cached_until_sixty_seconds_before_expiry(
    credentials: McpCredentials, tokens: McpAccessTokens, oauth: FakeOAuthServer, clock: Clock
) -> None:
    oauth.expires_in = 3600
    deposit(credentials, oauth)
    first = tokens.access_token(USER, SERVER)
    assert oauth.is_valid(first)
    clock.now += 3600 - 60 - 0.001
    assert tokens.access_token(USER, SERVER) == first
    assert len(oauth.requests) == 1
    clock.now += 0.001
    second = tokens.access_token(USER, SERVER)
    assert second != first and oauth.is_valid(second)
    assert len(oauth.requests) == 2


def test_expires_in_as_a_numeric_string_is_understood(
    credentials: McpCredentials, tokens: McpAccessTokens, oauth: FakeOAuthServer, clock: Clock
) -> None:
    oauth.expires_in = "120"
    deposit(credentials, oauth)
    first = tokens.access_token(USER, SERVER)
    clock.now += 59
    assert tokens.access_token(USER, SERVER) == first
    clock.now += 1
    assert tokens.access_token(USER, SERVER) != first


@pytest.mark.parametrize("expires_in", [None, "soon", True, -5, "NaN"])
def test_a_token_without_a_known_lifetime_is_not_cached(
    credentials: McpCredentials, tokens: McpAccessTokens, oauth: FakeOAuthServer, expires_in: Any
) -> None:
    oauth.expires_in = expires_in
    deposit(credentials, oauth)
    first = tokens.access_token(USER, SERVER)
    second = tokens.access_token(USER, SERVER)
    assert first != second
    assert len(oauth.requests) == 2


def test_users_and_servers_have_their_own_tokens(
    credentials: McpCredentials, tokens: McpAccessTokens, oauth: FakeOAuthServer
) -> None:
    deposit(credentials, oauth)
    credentials.deposit(
        8,
        OAuthCredential(SERVER, oauth.issue_refresh_token(), oauth.token_endpoint),
    )
    mine, theirs = tokens.access_token(USER, SERVER), tokens.access_token(8, SERVER)
    assert mine != theirs
    with pytest.raises(ReauthNeeded) as raised:
        tokens.access_token(USER, "srv-2")
    assert raised.value.mcp_server_id == "srv-2"


def test_force_refresh_ignores_the_cache(
    credentials: McpCredentials, tokens: McpAccessTokens, oauth: FakeOAuthServer
) -> None:
    deposit(credentials, oauth)
    first = tokens.access_token(USER, SERVER)
    oauth.expire_access_tokens()  # the MCP server now answers 401 with it
    second = tokens.access_token(USER, SERVER, force_refresh=True)
    assert second != first and oauth.is_valid(second)
    assert tokens.access_token(USER, SERVER) == second  # and caches the new one


def test_evict_forgets_the_cached_token(
    credentials: McpCredentials, tokens: McpAccessTokens, oauth: FakeOAuthServer
) -> None:
    deposit(credentials, oauth)
    first = tokens.access_token(USER, SERVER)
    tokens.evict(USER, SERVER)
    assert tokens.access_token(USER, SERVER) != first


# --- one refresh in flight per key ------------------------------------------------------------


def test_concurrent_callers_share_one_refresh(
    credentials: McpCredentials, tokens: McpAccessTokens, oauth: FakeOAuthServer
) -> None:
    oauth.rotate = True  # two refreshes in flight would make the second one invalid_grant
    deposit(credentials, oauth)
    oauth.hold()
    results: list[str] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            results.append(tokens.access_token(USER, SERVER))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    assert eventually(lambda: len(oauth.requests) == 1)
    oauth.release()
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert len(results) == 8 and len(set(results)) == 1
    assert len(oauth.requests) == 1


def test_concurrent_forced_refreshes_take_the_token_refreshed_meanwhile(
    credentials: McpCredentials, tokens: McpAccessTokens, oauth: FakeOAuthServer
) -> None:
    deposit(credentials, oauth)
    stale = tokens.access_token(USER, SERVER)
    oauth.hold()
    results: list[str] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(tokens.access_token(USER, SERVER, force_refresh=True))
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    assert eventually(lambda: len(oauth.requests) == 2)
    oauth.release()
    for thread in threads:
        thread.join(10)
    assert len(set(results)) == 1 and stale not in results
    assert len(oauth.requests) == 2


def test_a_caller_waits_for_another_refresh_only_so_long(
    credentials: McpCredentials, clock: Clock, oauth: FakeOAuthServer
) -> None:
    deposit(credentials, oauth)
    tokens = McpAccessTokens(credentials, clock=clock, lock_wait_s=0.2)
    oauth.hold()  # the first refresh hangs at the token endpoint
    first = threading.Thread(target=tokens.access_token, args=(USER, SERVER), daemon=True)
    first.start()
    assert eventually(lambda: len(oauth.requests) == 1)
    try:
        with pytest.raises(OAuthRefreshError, match="did not finish in time"):
            tokens.access_token(USER, SERVER)
    finally:
        oauth.release()
        first.join(10)
        tokens.close()


def test_refreshes_of_different_keys_run_in_parallel(
    credentials: McpCredentials, tokens: McpAccessTokens, oauth: FakeOAuthServer
) -> None:
    deposit(credentials, oauth)
    credentials.deposit(
        8, OAuthCredential(SERVER, oauth.issue_refresh_token(), oauth.token_endpoint)
    )
    oauth.hold()
    threads = [
        threading.Thread(target=tokens.access_token, args=(user, SERVER)) for user in (USER, 8)
    ]
    for thread in threads:
        thread.start()
    # Both requests reach the server while it holds them: neither waits for the other's lock.
    assert eventually(lambda: len(oauth.requests) == 2)
    oauth.release()
    for thread in threads:
        thread.join(10)


# --- rotation ---------------------------------------------------------------------------------


def test_a_rotated_refresh_token_is_written_back_encrypted(
    credentials: McpCredentials, tokens: McpAccessTokens, oauth: FakeOAuthServer
) -> None:
    oauth.rotate = True
    original = deposit(credentials, oauth)
    row_before = credentials.store.get(USER, SERVER)
    tokens.access_token(USER, SERVER)
    rotated = oauth.requests[0].issued_refresh_token
    assert rotated is not None and rotated != original
    assert stored_refresh_token(credentials) == rotated
    row_after = credentials.store.get(USER, SERVER)
    assert row_before is not None and row_after is not None
    assert row_after.row_id == row_before.row_id
    assert rotated.encode() not in row_after.credential.refresh_token_enc
    # The next refresh uses the rotated token (the original is no longer valid).
    tokens.evict(USER, SERVER)
    tokens.access_token(USER, SERVER)
    assert oauth.requests[1].form["refresh_token"] == rotated


def test_another_instances_rotation_is_picked_up_and_retried_once(
    credentials: McpCredentials, tokens: McpAccessTokens, oauth: FakeOAuthServer
) -> None:
    original = deposit(credentials, oauth)
    newer = oauth.issue_refresh_token()

    def other_instance_rotates(request: Any) -> None:
        # Another instance rotated the token after this one read it.
        if request.form.get("refresh_token") == original:
            oauth.revoke(original)
            row = credentials.store.get(USER, SERVER)
            assert row is not None
            credentials.save_rotated_refresh_token(row.row_id, newer)

    oauth.before_answer = other_instance_rotates
    token = tokens.access_token(USER, SERVER)
    assert oauth.is_valid(token)
    assert [r.form["refresh_token"] for r in oauth.requests] == [original, newer]
    assert [r.status for r in oauth.requests] == [400, 200]


def test_a_rejected_refresh_token_that_nobody_rotated_needs_reauth(
    credentials: McpCredentials, tokens: McpAccessTokens, oauth: FakeOAuthServer
) -> None:
    deposit(credentials, oauth)
    oauth.revoke_all()
    with pytest.raises(ReauthNeeded) as raised:
        tokens.access_token(USER, SERVER)
    assert raised.value.mcp_server_id == SERVER
    assert raised.value.user_message == (
        "This tool needs to be reconnected before it can run. Please re-authorize it and try again."
    )
    assert len(oauth.requests) == 1  # no retry with the same token


def test_a_retry_that_is_rejected_too_needs_reauth(
    credentials: McpCredentials, tokens: McpAccessTokens, oauth: FakeOAuthServer
) -> None:
    original = deposit(credentials, oauth)

    def rotate_to_a_revoked_token(request: Any) -> None:
        if request.form.get("refresh_token") == original:
            oauth.revoke(original)
            row = credentials.store.get(USER, SERVER)
            assert row is not None
            credentials.save_rotated_refresh_token(row.row_id, "also-revoked")

    oauth.before_answer = rotate_to_a_revoked_token
    with pytest.raises(ReauthNeeded):
        tokens.access_token(USER, SERVER)
    assert len(oauth.requests) == 2


@pytest.mark.parametrize("failure", ["invalid_client"])
def test_client_rejections_count_like_invalid_grant(
    credentials: McpCredentials, tokens: McpAccessTokens, oauth: FakeOAuthServer, failure: Any
) -> None:
    deposit(credentials, oauth)
    oauth.fail_next(failure)
    with pytest.raises(ReauthNeeded):
        tokens.access_token(USER, SERVER)


def test_a_credential_deleted_during_the_refresh_is_not_cached_nor_recreated(
    credentials: McpCredentials, tokens: McpAccessTokens, oauth: FakeOAuthServer
) -> None:
    oauth.rotate = True
    deposit(credentials, oauth)

    def user_disconnects(request: Any) -> None:
        credentials.delete(USER, SERVER)
        tokens.evict(USER, SERVER)

    oauth.before_answer = user_disconnects
    token = tokens.access_token(USER, SERVER)
    assert oauth.is_valid(token)  # this call still gets its token
    assert credentials.store.get(USER, SERVER) is None  # the write-back did not re-create it
    oauth.before_answer = None
    with pytest.raises(ReauthNeeded):
        tokens.access_token(USER, SERVER)  # nothing cached


def test_a_credential_deleted_by_another_instance_is_not_cached(
    credentials: McpCredentials, tokens: McpAccessTokens, oauth: FakeOAuthServer
) -> None:
    oauth.rotate = True
    deposit(credentials, oauth)
    # Another instance deletes the row; this process's cache is not told.
    oauth.before_answer = lambda request: credentials.delete(USER, SERVER)
    tokens.access_token(USER, SERVER)
    oauth.before_answer = None
    with pytest.raises(ReauthNeeded):
        tokens.access_token(USER, SERVER)


def test_a_redeposit_during_the_refresh_is_not_overwritten(
    credentials: McpCredentials, tokens: McpAccessTokens, oauth: FakeOAuthServer
) -> None:
    oauth.rotate = True
    deposit(credentials, oauth)
    fresh = oauth.issue_refresh_token()

    def user_reconnects(request: Any) -> None:
        if request.form.get("refresh_token") != fresh:
            deposit(credentials, oauth, fresh)
            tokens.evict(USER, SERVER)

    oauth.before_answer = user_reconnects
    stale_access = tokens.access_token(USER, SERVER)
    assert stored_refresh_token(credentials) == fresh
    fresh_access = tokens.access_token(USER, SERVER)  # not the one of the replaced credential
    assert fresh_access != stale_access


def test_a_failed_write_back_is_logged_and_the_token_served(
    credentials: McpCredentials,
    tokens: McpAccessTokens,
    oauth: FakeOAuthServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    oauth.rotate = True
    deposit(credentials, oauth)

    def broken(row_id: int, refresh_token_enc: bytes) -> bool:
        raise CredentialStoreError("disk full")

    monkeypatch.setattr(credentials.store, "update_refresh_token", broken)
    token = tokens.access_token(USER, SERVER)
    assert oauth.is_valid(token)
    assert "refresh token write-back failed" in caplog.text
    assert "refresh-" not in caplog.text  # no token in the logs


# --- failures ---------------------------------------------------------------------------------


def test_no_credential_needs_reauth(tokens: McpAccessTokens, oauth: FakeOAuthServer) -> None:
    with pytest.raises(ReauthNeeded):
        tokens.access_token(USER, SERVER)
    assert oauth.requests == []


def test_an_undecryptable_credential_needs_reauth(
    credentials: McpCredentials, tokens: McpAccessTokens, oauth: FakeOAuthServer
) -> None:
    deposit(credentials, oauth)
    # As if deposited by an instance with another key.
    other = McpCredentials(credentials.store, encryption_key="another key", environment="test")
    with pytest.raises(ReauthNeeded):
        McpAccessTokens(other).access_token(USER, SERVER)
    # A tampered client secret too.
    row = credentials.store.get(USER, SERVER)
    assert row is not None
    broken = dataclasses.replace(row.credential, client_id="c", client_secret_enc=b"x" * 40)
    credentials.store.put(broken)
    with pytest.raises(ReauthNeeded):
        tokens.access_token(USER, SERVER)
    assert oauth.requests == []


def test_a_missing_encryption_key_is_its_own_error(
    credentials: McpCredentials, oauth: FakeOAuthServer
) -> None:
    deposit(credentials, oauth)
    keyless = McpCredentials(credentials.store, encryption_key=None, environment="test")
    with pytest.raises(EncryptionKeyMissing):
        McpAccessTokens(keyless).access_token(USER, SERVER)


@pytest.mark.parametrize("failure", ["500", "non-json", "redirect", "no-access-token"])
def test_token_endpoint_failures_are_oauth_refresh_errors(
    credentials: McpCredentials, tokens: McpAccessTokens, oauth: FakeOAuthServer, failure: Any
) -> None:
    deposit(credentials, oauth)
    oauth.fail_next(failure)
    with pytest.raises(OAuthRefreshError) as raised:
        tokens.access_token(USER, SERVER)
    assert raised.value.user_message == (
        "Could not refresh the connection to this tool. Please try again."
    )
    assert len(oauth.requests) == 1  # a redirect is not followed
    assert oauth.is_valid(tokens.access_token(USER, SERVER))  # the credential still works


def test_an_unreachable_token_endpoint_is_an_oauth_refresh_error(
    credentials: McpCredentials, tokens: McpAccessTokens
) -> None:
    with FakeOAuthServer() as gone:
        endpoint = gone.token_endpoint
        refresh_token = gone.issue_refresh_token()
    credentials.deposit(USER, OAuthCredential(SERVER, refresh_token, endpoint))
    with pytest.raises(OAuthRefreshError):
        tokens.access_token(USER, SERVER)


def test_a_slow_token_endpoint_times_out(
    credentials: McpCredentials, clock: Clock, oauth: FakeOAuthServer
) -> None:
    deposit(credentials, oauth)
    tokens = McpAccessTokens(credentials, refresher=OAuthRefresher(timeout_s=0.2), clock=clock)
    oauth.hold()
    try:
        with pytest.raises(OAuthRefreshError):
            tokens.access_token(USER, SERVER)
    finally:
        oauth.release()
        tokens.close()


def test_an_oversized_answer_is_an_oauth_refresh_error(
    credentials: McpCredentials, clock: Clock, oauth: FakeOAuthServer
) -> None:
    deposit(credentials, oauth)
    tokens = McpAccessTokens(
        credentials, refresher=OAuthRefresher(max_response_bytes=16), clock=clock
    )
    with pytest.raises(OAuthRefreshError):
        tokens.access_token(USER, SERVER)
    tokens.close()


def test_a_store_failure_during_the_refresh_is_an_oauth_refresh_error(
    credentials: McpCredentials,
    tokens: McpAccessTokens,
    oauth: FakeOAuthServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(user_id: int, server_id: str) -> StoredCredential | None:
        raise CredentialStoreError("connection reset")

    monkeypatch.setattr(credentials.store, "get", broken)
    with pytest.raises(OAuthRefreshError):
        tokens.access_token(USER, SERVER)


def test_the_token_endpoint_is_checked_again_before_every_refresh(
    tokens: McpAccessTokens, oauth: FakeOAuthServer
) -> None:
    # Deposited in development (http on loopback allowed), refreshed by a production instance.
    relaxed = McpCredentials(tokens.credentials.store, encryption_key=KEY, environment="test")
    deposit(relaxed, oauth)
    strict = McpCredentials(tokens.credentials.store, encryption_key=KEY, environment="production")
    with pytest.raises(InvalidTokenEndpoint):
        McpAccessTokens(strict).access_token(USER, SERVER)
    assert oauth.requests == []


# --- the grant request ------------------------------------------------------------------------


def test_the_grant_is_a_form_post_asking_for_json(
    credentials: McpCredentials, tokens: McpAccessTokens, oauth: FakeOAuthServer
) -> None:
    token = deposit(credentials, oauth, scopes="read write")
    tokens.access_token(USER, SERVER)
    request = oauth.requests[0]
    assert request.method == "POST" and request.path == "/token"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["accept"] == "application/json"
    assert request.form == {
        "grant_type": "refresh_token",
        "refresh_token": token,
        "scope": "read write",
    }
    assert request.basic is None


@pytest.mark.parametrize("method", ["client_secret_basic", "none", None])
def test_a_client_secret_goes_in_http_basic_unless_post_is_asked(
    credentials: McpCredentials, clock: Clock, method: str | None
) -> None:
    client_id, secret = "client id/ü", "s3cr:et+&="
    with FakeOAuthServer(
        client_id=client_id, client_secret=secret, auth_method="client_secret_basic"
    ) as oauth:
        deposit(
            credentials,
            oauth,
            client_id=client_id,
            client_secret=secret,
            token_endpoint_auth_method=method,
        )
        tokens = McpAccessTokens(credentials, clock=clock)
        assert oauth.is_valid(tokens.access_token(USER, SERVER))
        tokens.close()
        request = oauth.requests[0]
    assert request.basic == (client_id, secret)
    assert "client_secret" not in request.form and "client_id" not in request.form
    # Form-url-encoded before the Basic encoding (RFC 6749 §2.3.1).
    assert request.headers["authorization"].startswith("Basic ")


def test_client_secret_post_puts_the_client_in_the_body(
    credentials: McpCredentials, clock: Clock
) -> None:
    with FakeOAuthServer(
        client_id="client-1", client_secret="secret-1", auth_method="client_secret_post"
    ) as oauth:
        deposit(
            credentials,
            oauth,
            client_id="client-1",
            client_secret="secret-1",
            token_endpoint_auth_method="client_secret_post",
        )
        tokens = McpAccessTokens(credentials, clock=clock)
        assert oauth.is_valid(tokens.access_token(USER, SERVER))
        tokens.close()
        request = oauth.requests[0]
    assert request.form["client_id"] == "client-1"
    assert request.form["client_secret"] == "secret-1"
    assert "authorization" not in request.headers


def test_a_public_client_sends_its_id_in_the_body(
    credentials: McpCredentials, clock: Clock
) -> None:
    with FakeOAuthServer(client_id="public-client") as oauth:
        deposit(credentials, oauth, client_id="public-client", token_endpoint_auth_method="none")
        tokens = McpAccessTokens(credentials, clock=clock)
        assert oauth.is_valid(tokens.access_token(USER, SERVER))
        tokens.close()
        request = oauth.requests[0]
    assert request.form["client_id"] == "public-client"
    assert "client_secret" not in request.form and "authorization" not in request.headers


def test_the_wrong_client_authentication_is_refused_by_the_fake(
    credentials: McpCredentials, clock: Clock
) -> None:
    # The fake really checks the method: a server wanting POST refuses Basic.
    with FakeOAuthServer(
        client_id="client-1", client_secret="secret-1", auth_method="client_secret_post"
    ) as oauth:
        deposit(credentials, oauth, client_id="client-1", client_secret="secret-1")
        tokens = McpAccessTokens(credentials, clock=clock)
        with pytest.raises(ReauthNeeded):
            tokens.access_token(USER, SERVER)
        tokens.close()
        assert oauth.requests[0].status == 401
