"""A fake OAuth 2 authorization server: the refresh grant of RFC 6749 §6 over a real loopback
socket, at ``POST {url}/token`` (:attr:`FakeOAuthServer.token_endpoint`).

It knows a set of valid refresh tokens (:meth:`issue_refresh_token`) and the access tokens it
issued; an MCP server fake checks bearer tokens with :meth:`is_valid`. Tests can rotate refresh
tokens (``rotate``), revoke (``revoke_all``, ``revoke``: then ``invalid_grant``), expire access
tokens (``expire_access_tokens``: a 401 from the MCP server), fail the next answers
(``fail_next``), hold answers (``hold``/``release``) and hook into a request before it is answered
(``before_answer``). Every request is recorded as a :class:`TokenRequest`.

Client authentication is checked when ``client_id`` is set: with ``client_secret``, by
``auth_method`` (``client_secret_basic`` or ``client_secret_post``; ``None`` accepts either);
without, the body's ``client_id`` must match. A wrong client gets ``401 invalid_client``.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote_plus

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

Failure = Literal["500", "non-json", "redirect", "no-access-token", "invalid_client"]
HOLD_TIMEOUT_S = 10.0


@dataclass
class TokenRequest:
    """One request to the token endpoint: lower-case ``headers``, the parsed ``form``, the
    decoded HTTP Basic ``(client_id, client_secret)`` if any, and the status answered."""

    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]
    basic: tuple[str, str] | None = None
    status: int = 0
    issued_access_token: str | None = None
    issued_refresh_token: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class FakeOAuthServer:
    def __init__(
        self,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        auth_method: str | None = None,
        expires_in: Any = 3600,
        rotate: bool = False,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.auth_method = auth_method
        self.expires_in = expires_in  # None: omitted; a string: sent as a string
        self.rotate = rotate
        self.requests: list[TokenRequest] = []
        self.before_answer: Callable[[TokenRequest], None] | None = None
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._refresh_tokens: set[str] = set()
        self._access_tokens: set[str] = set()
        self._failures: list[Failure] = []
        self._open = threading.Event()
        self._open.set()
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._started = self._stopped = False

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.url}/token"

    def start(self) -> FakeOAuthServer:
        self._started = True
        self._thread.start()
        return self

    def stop(self) -> None:
        self._open.set()
        if self._stopped:
            return
        self._stopped = True
        if self._started:
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeOAuthServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- scripting ------------------------------------------------------------------------------

    def issue_refresh_token(self) -> str:
        """A new valid refresh token (what the authorization-code flow would have given)."""
        token = f"refresh-{next(self._ids)}"
        with self._lock:
            self._refresh_tokens.add(token)
        return token

    def is_valid(self, access_token: str) -> bool:
        """Whether a bearer token is one this server issued and has not revoked or expired."""
        with self._lock:
            return access_token in self._access_tokens

    def expire_access_tokens(self) -> None:
        """Every access token issued so far stops being valid (refresh tokens stay good)."""
        with self._lock:
            self._access_tokens.clear()

    def revoke(self, refresh_token: str) -> None:
        with self._lock:
            self._refresh_tokens.discard(refresh_token)

    def revoke_all(self) -> None:
        """Every refresh and access token stops being valid (the user revoked the grant)."""
        with self._lock:
            self._refresh_tokens.clear()
            self._access_tokens.clear()

    def fail_next(self, failure: Failure, *, times: int = 1) -> None:
        """The next answers fail: ``500``, a 200 that is not JSON, a ``302`` to a token
        endpoint, a 200 without ``access_token``, or ``401 invalid_client``."""
        with self._lock:
            self._failures.extend([failure] * times)

    def hold(self) -> None:
        """Requests wait (up to 10 s) before being answered, until :meth:`release`."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    @property
    def refresh_requests(self) -> list[TokenRequest]:
        return [r for r in self.requests if r.path == "/token"]

    # --- the server -----------------------------------------------------------------------------

    def _wsgi(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        response = self._handle(request)
        return response(environ, start_response)

    def _handle(self, request: Request) -> Response:
        raw = request.get_data(cache=False)
        form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        record = TokenRequest(
            method=request.method,
            path=request.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            form=form,
            basic=_basic_credentials(request.headers.get("Authorization", "")),
        )
        with self._lock:
            self.requests.append(record)
        self._open.wait(HOLD_TIMEOUT_S)
        if self.before_answer is not None:
            self.before_answer(record)
        response = self._answer(request, record)
        record.status = response.status_code
        return response

    def _answer(self, request: Request, record: TokenRequest) -> Response:
        if request.path != "/token":
            return _json({"error": "not_found"}, 404)
        if request.method != "POST":
            return _json({"error": "invalid_request"}, 405)
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
        if failure == "500":
            return _json({"error": "server_error"}, 500)
        if failure == "non-json":
            return Response("<html>maintenance</html>", 200, content_type="text/html")
        if failure == "redirect":
            return Response("", 302, headers={"Location": self.token_endpoint})
        if failure == "invalid_client":
            return _json({"error": "invalid_client"}, 401)
        if not request.headers.get("Content-Type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return _json({"error": "invalid_request"}, 400)
        if record.form.get("grant_type") != "refresh_token":
            return _json({"error": "unsupported_grant_type"}, 400)
        if not self._client_ok(record):
            return _json({"error": "invalid_client"}, 401)
        refresh_token = record.form.get("refresh_token", "")
        with self._lock:
            if refresh_token not in self._refresh_tokens:
                return _json({"error": "invalid_grant"}, 400)
            access_token = f"access-{next(self._ids)}"
            self._access_tokens.add(access_token)
            body: dict[str, Any] = {"access_token": access_token, "token_type": "Bearer"}
            if self.rotate:
                self._refresh_tokens.discard(refresh_token)
                rotated = f"refresh-{next(self._ids)}"
                self._refresh_tokens.add(rotated)
                body["refresh_token"] = rotated
                record.issued_refresh_token = rotated
        record.issued_access_token = access_token
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        if failure == "no-access-token":
            del body["access_token"]
        return _json(body, 200)

    def _client_ok(self, record: TokenRequest) -> bool:
        if self.client_id is None:
            return True
        form = record.form
        if self.client_secret is None:
            return form.get("client_id") == self.client_id and "client_secret" not in form
        by_basic = record.basic == (self.client_id, self.client_secret)
        by_post = (
            form.get("client_id") == self.client_id
            and form.get("client_secret") == self.client_secret
        )
        if self.auth_method == "client_secret_basic":
            return by_basic and "client_secret" not in form
        if self.auth_method == "client_secret_post":
            return by_post and record.basic is None
        return by_basic or by_post


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        pair = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except ValueError:
        return None
    client_id, _, secret = pair.partition(":")
    return unquote_plus(client_id), unquote_plus(secret)


def _json(body: Any, status: int) -> Response:
    return Response(json.dumps(body), status, content_type="application/json")
