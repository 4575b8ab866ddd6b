"""The JSON client every adapter uses, against real loopback servers."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from executor.adapters import http
from executor.adapters.http import HttpError, JsonHttpClient
from executor.errors import ConfigurationError, OAuthRefreshError
from executor.mcp.credentials import OAuthCredential
from executor.mcp.oauth import OAuthRefresher
from tests.processes import free_port

Handler = Callable[[Request], Response]


class Server:
    """A loopback server answering with ``handler``; records what it was asked."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[dict[str, Any]] = []
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.requests.append(
            {
                "method": request.method,
                "uri": environ.get("REQUEST_URI") or environ.get("RAW_URI"),
                "path": request.path,
                "query": dict(request.args),
                "headers": dict(request.headers),
                "body": request.get_data(),
            }
        )
        return self.handler(request)(environ, start_response)


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], Server]]:
    started: list[Server] = []

    def start(handler: Handler) -> Server:
        server = Server(handler)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def answer(payload: Any, status: int = 200, **headers: str) -> Handler:
    return lambda request: Response(json.dumps(payload), status, headers=headers)


def test_a_json_round_trip_with_parameters_and_headers(serve: Any) -> None:
    server = serve(answer({"ok": True}))
    client = JsonHttpClient(server.url + "/", headers={"x-default": "1"}, timeout_s=5)

    result = client.request(
        "POST",
        "/api/things",
        operation="things",
        json_body={"name": "é", "n": [1, 2]},
        params={"runId": "42", "q": "a b&c"},
        headers={"x-extra": "2"},
    )

    assert result == {"ok": True}
    [seen] = server.requests
    assert (seen["method"], seen["path"], seen["query"]) == (
        "POST",
        "/api/things",
        {"runId": "42", "q": "a b&c"},
    )
    assert json.loads(seen["body"]) == {"name": "é", "n": [1, 2]}
    assert seen["headers"]["Content-Type"] == "application/json"
    assert (seen["headers"]["X-Default"], seen["headers"]["X-Extra"]) == ("1", "2")


def test_an_empty_answer_is_none(serve: Any) -> None:
    server = serve(lambda request: Response(b"", 204))
    assert JsonHttpClient(server.url, timeout_s=5).request("GET", "/", operation="x") is None


def test_an_error_status_carries_the_status_body_and_detail(serve: Any) -> None:
    server = serve(answer({"errors": [{"detail": "No such run"}]}, 404))
    with pytest.raises(HttpError) as raised:
        JsonHttpClient(server.url, timeout_s=5).request("GET", "/run/1", operation="x")
    assert raised.value.status == 404
    assert raised.value.detail == "No such run"
    assert "GET /run/1 answered 404 No such run" in str(raised.value)


def test_a_redirect_is_not_followed(serve: Any) -> None:
    target = serve(answer({"followed": True}))
    server = serve(lambda request: Response("", 302, headers={"Location": target.url}))
    with pytest.raises(HttpError) as raised:
        JsonHttpClient(server.url, timeout_s=5).request("GET", "/", operation="x")
    assert raised.value.status == 302
    assert target.requests == []


def test_a_body_over_the_limit_is_refused(serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "MAX_RESPONSE_BYTES", 100_000)
    server = serve(lambda request: Response(b"[" + b"1," * 100_000 + b"1]"))
    client = JsonHttpClient(server.url, timeout_s=5)
    with pytest.raises(HttpError, match="more than 100000 bytes"):
        client.request("GET", "/big", operation="x")
    server.handler = answer([1])
    assert client.request("GET", "/small", operation="x") == [1]  # the client still works


def test_a_slow_answer_is_a_408(serve: Any) -> None:
    release = threading.Event()

    def slow(request: Request) -> Response:
        release.wait(5)
        return Response("{}")

    server = serve(slow)
    try:
        with pytest.raises(HttpError, match="timed out") as raised:
            JsonHttpClient(server.url, timeout_s=0.2).request("GET", "/", operation="x")
        assert raised.value.status == 408
    finally:
        release.set()


def test_a_refused_connection_has_no_status() -> None:
    client = JsonHttpClient(f"http://127.0.0.1:{free_port()}", timeout_s=5)
    with pytest.raises(HttpError, match="failed") as raised:
        client.request("GET", "/", operation="x")
    assert raised.value.status is None


def test_invalid_json_is_an_error(serve: Any) -> None:
    server = serve(lambda request: Response(b"<html>"))
    with pytest.raises(HttpError, match="invalid JSON"):
        JsonHttpClient(server.url, timeout_s=5).request("GET", "/", operation="x")


def test_nan_is_never_sent(serve: Any) -> None:
    server = serve(answer({}))
    with pytest.raises(ValueError):
        JsonHttpClient(server.url, timeout_s=5).request(
            "POST", "/", operation="x", json_body={"value": float("nan")}
        )
    assert server.requests == []


def test_transient_statuses_are_retried_on_the_schedule(serve: Any) -> None:
    statuses = iter([503, 502, 200])
    server = serve(lambda request: Response("{}", next(statuses)))
    client = JsonHttpClient(server.url, timeout_s=5, retry_delays_s=(0.0, 0.0, 0.0))
    assert client.request("GET", "/", operation="x", retry_on=(502, 503)) == {}
    assert len(server.requests) == 3


@pytest.fixture
def proxy(serve: Any, monkeypatch: pytest.MonkeyPatch) -> Server:
    """A forward proxy that answers everything itself, set as the environment's HTTP proxy."""
    server = serve(answer({"via": "proxy"}))
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", server.url)
    return server


def test_the_environment_proxy_is_used_with_its_credentials(
    proxy: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url.replace("http://", "http://alice:s%40cret@"))
    client = JsonHttpClient("http://upstream.example", timeout_s=5)
    assert client.request("GET", "/path", operation="x", params={"a": "1"}) == {"via": "proxy"}
    [seen] = proxy.requests
    assert seen["uri"] == "http://upstream.example/path?a=1"  # the absolute form
    expected = "Basic " + base64.b64encode(b"alice:s@cret").decode()
    assert seen["headers"]["Proxy-Authorization"] == expected


def test_a_proxy_without_a_scheme_is_an_http_proxy(
    proxy: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url.removeprefix("http://"))
    client = JsonHttpClient("http://upstream.example", timeout_s=5)
    assert client.request("GET", "/", operation="x") == {"via": "proxy"}


def test_no_proxy_hosts_and_loopback_are_reached_directly(
    proxy: Server, serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    direct = serve(answer({"via": "direct"}))
    assert JsonHttpClient(direct.url, timeout_s=5).request("GET", "/", operation="x") == {
        "via": "direct"
    }
    monkeypatch.setenv("NO_PROXY", "upstream.invalid")
    with pytest.raises(HttpError, match="failed"):  # tried directly: the name does not resolve
        JsonHttpClient("http://upstream.invalid", timeout_s=5).request("GET", "/", operation="x")
    assert proxy.requests == []


def test_a_proxy_urllib3_cannot_use_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("HTTP_PROXY", "socks5://127.0.0.1:1080")
    with pytest.raises(ConfigurationError, match="HTTP_PROXY"):
        JsonHttpClient("http://upstream.example", timeout_s=5)


def trickle(request: Request) -> Response:
    """An answer sent a byte at a time: each read is quick, the whole answer takes seconds."""

    def body() -> Iterator[bytes]:
        yield b"["
        for _ in range(50):
            time.sleep(0.1)  # the peer's pace, not a test synchronisation
            yield b" "
        yield b"]"

    return Response(body(), 200, content_type="application/json")


def test_an_answer_still_arriving_at_the_deadline_is_a_408(serve: Any) -> None:
    server = serve(trickle)
    with pytest.raises(HttpError, match="timed out") as raised:
        JsonHttpClient(server.url, timeout_s=0.5).request("GET", "/", operation="x")
    assert raised.value.status == 408


def test_a_token_endpoint_still_answering_at_the_deadline_fails_the_refresh(serve: Any) -> None:
    server = serve(trickle)
    credential = OAuthCredential("srv-1", "refresh-1", f"{server.url}/token")
    with pytest.raises(OAuthRefreshError, match="did not answer within"):
        OAuthRefresher(timeout_s=0.5).refresh(credential)
