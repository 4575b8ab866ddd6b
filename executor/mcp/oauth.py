"""The OAuth 2 refresh grant (RFC 6749 §6) against a user's token endpoint (protocol §10.3).

Redirects are never followed (a 3xx is a failure: following one would defeat the endpoint check).
Unlike the reference, which sets no timeout, a request may take at most
:data:`REFRESH_TIMEOUT_S`, and the answer is read up to :data:`MAX_RESPONSE_BYTES`.
"""

from __future__ import annotations

import base64
import json
import math
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlencode

import urllib3

from executor.adapters.http import BodyTooLarge, DeadlinePassed, connection_pool, read_body
from executor.errors import OAuthRefreshError
from executor.mcp.credentials import OAuthCredential

# As long as loading an MCP server's tools may take (§10.2): a refresh is part of that load.
REFRESH_TIMEOUT_S = 15.0
# A token response is a few kilobytes; a megabyte leaves room for JWT access tokens.
MAX_RESPONSE_BYTES = 1024 * 1024
# Answers meaning "this refresh token or client is no good": re-read, maybe retry, else re-auth.
REJECTION_ERRORS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})


@dataclass(frozen=True)
class TokenGrant:
    """A successful refresh: ``expires_in`` in seconds when the server said; a rotated
    ``refresh_token`` when it sent one."""

    access_token: str
    expires_in: float | None = None
    refresh_token: str | None = None


class GrantRejected(Exception):
    """The server refused the refresh token or the client (``invalid_grant`` and its kin)."""

    def __init__(self, error: str) -> None:
        super().__init__(f"The token endpoint refused the refresh: {error}")
        self.error = error


class OAuthRefresher:
    """Sends refresh grants. Thread-safe: each refresh opens its own connection (refreshes are
    rare: about once per token lifetime per user and server), through the environment's proxy
    like every other call (see :func:`executor.adapters.http.connection_pool`)."""

    def __init__(
        self,
        *,
        timeout_s: float = REFRESH_TIMEOUT_S,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self._timeout_s = timeout_s
        self._max_response_bytes = max_response_bytes

    def close(self) -> None:
        """Nothing is kept open between refreshes."""

    def refresh(self, credential: OAuthCredential) -> TokenGrant:
        """Exchange the refresh token. Raises :class:`GrantRejected` or
        :class:`executor.errors.OAuthRefreshError`."""
        form, headers = refresh_request(credential)
        pool = connection_pool(credential.token_endpoint)
        deadline = time.monotonic() + self._timeout_s
        try:
            response = pool.request(
                "POST",
                credential.token_endpoint,
                body=urlencode(form),
                headers=headers,
                timeout=urllib3.Timeout(connect=self._timeout_s, read=self._timeout_s),
                preload_content=False,
                redirect=False,  # a 3xx is a failure (protocol §10.3)
                retries=False,
            )
            try:
                body = read_body(response, max_bytes=self._max_response_bytes, deadline=deadline)
            except BodyTooLarge:
                raise OAuthRefreshError(
                    f"Token endpoint answer exceeds {self._max_response_bytes} bytes"
                ) from None
            except DeadlinePassed:
                raise OAuthRefreshError(
                    f"Token endpoint did not answer within {self._timeout_s:g} s"
                ) from None
            finally:
                response.release_conn()
        except urllib3.exceptions.HTTPError as error:
            raise OAuthRefreshError(
                f"Token endpoint unreachable: {error.__class__.__name__}"
            ) from None
        finally:
            pool.clear()
        return parse_token_response(response.status, body)


def refresh_request(credential: OAuthCredential) -> tuple[dict[str, str], dict[str, str]]:
    """The form body and headers of the refresh grant, with the client authenticated as
    §10.3 says: a secret goes in the body for ``client_secret_post`` and in HTTP Basic
    otherwise; a client id alone goes in the body."""
    form = {"grant_type": "refresh_token", "refresh_token": credential.refresh_token}
    if credential.scopes:
        form["scope"] = credential.scopes
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "accept": "application/json",
    }
    client_id, secret = credential.client_id, credential.client_secret
    if secret is not None:
        if credential.token_endpoint_auth_method == "client_secret_post":
            if client_id is not None:
                form["client_id"] = client_id
            form["client_secret"] = secret
        else:
            # RFC 6749 §2.3.1: both parts form-url-encoded before the Basic encoding.
            pair = f"{quote_plus(client_id or '')}:{quote_plus(secret)}"
            headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    elif client_id is not None:
        form["client_id"] = client_id
    return form, headers


def parse_token_response(status: int, body: bytes) -> TokenGrant:
    """Read a token endpoint's answer; see :meth:`OAuthRefresher.refresh`."""
    if 300 <= status < 400:
        raise OAuthRefreshError(f"Token endpoint answered a redirect ({status}); not followed")
    document = _json_object(body)
    if not 200 <= status < 300:
        error = document.get("error") if document is not None else None
        if isinstance(error, str) and error in REJECTION_ERRORS:
            raise GrantRejected(error)
        raise OAuthRefreshError(f"Token endpoint answered {status}")
    if document is None:
        raise OAuthRefreshError("Token endpoint answered something else than a JSON object")
    access_token = document.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise OAuthRefreshError("Token endpoint answered no access_token")
    refresh_token = document.get("refresh_token")
    return TokenGrant(
        access_token=access_token,
        expires_in=_seconds(document.get("expires_in")),
        refresh_token=refresh_token if isinstance(refresh_token, str) and refresh_token else None,
    )


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def _seconds(value: Any) -> float | None:
    """``expires_in`` as a number or a numeric string; anything else is unknown."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
        return float(value)
    return None
