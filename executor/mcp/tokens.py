"""Access tokens for OAuth2 MCP servers, per (user, server) (protocol §10.3).

Served from an in-process cache until 60 s before expiry, else refreshed with the stored refresh
token. One refresh at a time per key: concurrent callers wait for it and take its token, since
refreshing twice may rotate the refresh token under the other caller's feet.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from executor.errors import (
    CredentialStoreError,
    OAuthReauthRequired,
    OAuthRefreshError,
)
from executor.mcp.credentials import CredentialUnreadable, LoadedCredential, McpCredentials
from executor.mcp.oauth import REFRESH_TIMEOUT_S, GrantRejected, OAuthRefresher, TokenGrant

log = logging.getLogger(__name__)

EXPIRY_MARGIN_S = 60.0
# Longest wait for another caller's refresh of the same key: two grant requests (a rotation
# retry), each of which may outlast its deadline by one read timeout.
LOCK_WAIT_S = 4 * REFRESH_TIMEOUT_S + 5

Key = tuple[int, str]


class ReauthNeeded(OAuthReauthRequired):
    """The user must reconnect this MCP server: no credential, an unreadable one, or a refresh
    token the server no longer accepts. Steps turn it into the ``needs-oauth-reauth`` pause;
    ``GET /list-mcp-tools`` into its 409."""

    def __init__(self, mcp_server_id: str, reason: str = "re-authentication needed") -> None:
        super().__init__(f"MCP server {mcp_server_id!r}: {reason}")
        self.mcp_server_id = mcp_server_id


class AccessTokenSource(Protocol):
    """What MCP tool loading needs of access tokens (``McpAccessTokens``, or a test's own)."""

    def access_token(
        self, user_id: int, mcp_server_id: str, *, force_refresh: bool = False
    ) -> str: ...

    def evict(self, user_id: int, mcp_server_id: str) -> None: ...


@dataclass(frozen=True)
class _CachedToken:
    access_token: str
    usable_until: float  # on the injected clock


class McpAccessTokens:
    """Access tokens per (user id, MCP server id). Thread-safe.

    ``clock`` is monotonic seconds (tests inject their own).
    """

    def __init__(
        self,
        credentials: McpCredentials,
        *,
        refresher: OAuthRefresher | None = None,
        clock: Callable[[], float] = time.monotonic,
        lock_wait_s: float = LOCK_WAIT_S,
    ) -> None:
        self.credentials = credentials
        self._lock_wait_s = lock_wait_s
        self._refresher = refresher or OAuthRefresher()
        self._clock = clock
        self._lock = threading.Lock()  # guards the three dicts below, never held during I/O
        self._cache: dict[Key, _CachedToken] = {}
        self._key_locks: dict[Key, threading.Lock] = {}
        # Bumped by evict(): a refresh that started before a deposit or a delete must not cache
        # what it got from the credential that was replaced or removed.
        self._generations: dict[Key, int] = {}

    def access_token(self, user_id: int, mcp_server_id: str, *, force_refresh: bool = False) -> str:
        """A usable access token. Raises :class:`ReauthNeeded`,
        :class:`executor.errors.EncryptionKeyMissing`, :class:`executor.errors.InvalidTokenEndpoint`
        or :class:`executor.errors.OAuthRefreshError`.

        ``force_refresh`` (after a 401 from the MCP server) ignores the cached token, but takes a
        token another caller refreshed while this one waited for the lock.
        """
        key = (user_id, mcp_server_id)
        seen = self._usable(key)
        if seen is not None and not force_refresh:
            return seen.access_token
        lock = self._key_lock(key)
        # Bounded: a refresh is (at most two grant requests, each within its deadline), but a
        # waiter must not hang with it should it not be.
        if not lock.acquire(timeout=self._lock_wait_s):
            raise OAuthRefreshError(f"Another refresh of {key} did not finish in time")
        try:
            current = self._usable(key)
            if current is not None and (not force_refresh or current is not seen):
                return current.access_token
            return self._refresh(key)
        finally:
            lock.release()

    def evict(self, user_id: int, mcp_server_id: str) -> None:
        """Forget the cached token (after a deposit or a delete of the credential)."""
        key = (user_id, mcp_server_id)
        with self._lock:
            self._cache.pop(key, None)
            self._generations[key] = self._generations.get(key, 0) + 1

    def close(self) -> None:
        self._refresher.close()

    # --- internals ------------------------------------------------------------------------------

    def _usable(self, key: Key) -> _CachedToken | None:
        with self._lock:
            cached = self._cache.get(key)
        if cached is None or self._clock() >= cached.usable_until:
            return None
        return cached

    def _key_lock(self, key: Key) -> threading.Lock:
        # One lock per key for the life of the process: a handful of bytes per (user, server).
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def _refresh(self, key: Key) -> str:
        user_id, server_id = key
        with self._lock:
            generation = self._generations.get(key, 0)
        started = self._clock()
        loaded = self._load(key)
        try:
            grant = self._grant(loaded)
        except GrantRejected as first:
            # Another instance may have rotated the refresh token since we read it: then the
            # stored one is newer and worth one more try.
            again = self._load(key)
            if again.credential.refresh_token == loaded.credential.refresh_token:
                raise ReauthNeeded(server_id, str(first)) from None
            try:
                grant = self._grant(again)
            except GrantRejected as second:
                raise ReauthNeeded(server_id, str(second)) from None
            loaded = again
        still_stored = self._write_back(loaded, grant)
        cached = False
        if grant.expires_in is not None and still_stored:
            # Measured from before the request: the server's clock started during it.
            usable_until = started + grant.expires_in - EXPIRY_MARGIN_S
            with self._lock:
                if self._generations.get(key, 0) == generation:
                    self._cache[key] = _CachedToken(grant.access_token, usable_until)
                    cached = True
        log.info(
            "MCP OAuth access token refreshed",
            extra={"user_id": user_id, "mcp_server_id": server_id, "cached": cached},
        )
        return grant.access_token

    def _load(self, key: Key) -> LoadedCredential:
        user_id, server_id = key
        try:
            loaded = self.credentials.load(user_id, server_id)
        except CredentialUnreadable as error:
            log.warning("MCP OAuth credential unreadable: %s", error)
            raise ReauthNeeded(server_id, "the stored credential cannot be decrypted") from None
        except CredentialStoreError as error:
            raise OAuthRefreshError(f"Credential store failed: {error}") from error
        if loaded is None:
            raise ReauthNeeded(server_id, "no credential stored")
        return loaded

    def _grant(self, loaded: LoadedCredential) -> TokenGrant:
        # Checked again before every refresh: the rule may have tightened since the deposit.
        self.credentials.check_token_endpoint(loaded.credential.token_endpoint)
        return self._refresher.refresh(loaded.credential)

    def _write_back(self, loaded: LoadedCredential, grant: TokenGrant) -> bool:
        """Store a rotated refresh token; False when the credential was deleted meanwhile."""
        rotated = grant.refresh_token
        if rotated is None or rotated == loaded.credential.refresh_token:
            return True
        try:
            return self.credentials.save_rotated_refresh_token(loaded.row_id, rotated)
        except Exception as error:
            # The access token is good; the next refresh will fail with the old refresh token
            # and ask the user to reconnect, which is the best that can be done.
            log.error(
                "MCP OAuth refresh token write-back failed: %s",
                error,
                extra={"mcp_server_id": loaded.credential.mcp_server_id},
            )
            return True
