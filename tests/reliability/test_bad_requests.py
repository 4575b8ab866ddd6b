"""Bad requests to the executor's API: fuzzed paths, headers and bodies, forged tokens, oversized
and malformed bodies. Nothing a client sends gets a 5xx; every answer is JSON, with an ``error``
string or the documented success shape; nothing refused reaches the orchestrator."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import assume, given
from hypothesis import strategies as st

from executor import create_app
from executor.extension import runner_of
from executor.http.runs import VERSION_HEADER
from tests.conftest import AUTH_SECRET, auth_header, base_config, make_token
from tests.drivers import Executor
from tests.fakes.orchestrator import API, FakeOrchestrator, guidance_step, record_step
from tests.reliability.conftest import BuildApp
from tests.reliability.support import DEEP, FUZZ, json_values, strict_json

UNAUTHORIZED = {"error": "Unauthorized"}
JSON_HEADERS = {**auth_header(7), "Content-Type": "application/json"}


def claims(orchestrator: FakeOrchestrator) -> int:
    """How many runs the orchestrator was asked to hand out (the executor's other requests, such
    as its version report at start, do not count)."""
    return orchestrator.count(f"{API}/available-run/")


# --- fuzzed requests ----------------------------------------------------------------------------

OTHER_ROUTES = {"/ready", "/metrics", "/openapi.json", "/list-mcp-tools", "/mcp-oauth-credentials"}

TRICKY_SEGMENTS = ["1", "2", "3", "01", "0", "-1", "1e3", " 1", "%00", "..", ".", "%2F", "%", "%ZZ"]
run_ids = st.one_of(
    st.sampled_from(TRICKY_SEGMENTS),
    st.integers(min_value=0, max_value=10**25).map(str),
    st.text(min_size=1, max_size=30).map(lambda text: quote(text, safe="")),
)
paths = st.one_of(
    run_ids.map(lambda run_id: f"/runs/{run_id}/trigger"),
    run_ids.map(lambda run_id: f"/runs/{run_id}"),
    st.text(max_size=40).map(lambda text: "/" + quote(text, safe="/")),
)
printable = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
authorizations = st.one_of(
    st.none(),
    st.just("valid"),
    st.integers(min_value=1, max_value=10**6).map(lambda user: f"Bearer {make_token(user)}"),
    st.text(alphabet=printable, max_size=60),
    st.text(alphabet=printable, max_size=60).map(lambda text: f"Bearer {text}"),
)
content_types = st.sampled_from(
    [
        None,
        "application/json",
        "application/json; charset=latin-1",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ]
)
bodies = st.one_of(
    st.none(),
    st.binary(max_size=300),
    json_values.map(lambda value: json.dumps(value).encode()),
    json_values.map(lambda value: json.dumps({"pendingData": value}).encode()),
    st.just(b"x" * 5000),  # over MAX_REQUEST_BYTES
)
methods = st.sampled_from(["GET", "POST", "POST", "PUT", "DELETE", "PATCH"])


@pytest.fixture
def api(apps: BuildApp, orchestrator: FakeOrchestrator) -> FlaskClient:
    for run_id in (1, 2, 3):  # runs the fuzz can really trigger and read (user 7's)
        orchestrator.add_run(run_id, [guidance_step("manual")])
    app = apps(orchestrator, POLLING_ENABLED=False, MAX_REQUEST_BYTES=4096)
    runner_of(app).start()
    return app.test_client()


def assert_documented(response: Any) -> None:
    """JSON with an ``error`` string, or one of the documented success shapes."""
    assert response.status_code < 500, (response.status_code, response.data[:300])
    assert response.headers.get(VERSION_HEADER)
    body = strict_json(response.data)
    if response.status_code >= 400:
        assert isinstance(body, dict) and set(body) <= {"error", "errors"}, body
        assert isinstance(body["error"], str) and body["error"], body
        return
    assert (
        body == {"triggered": True}
        or (isinstance(body, dict) and set(body) == {"steps"} and isinstance(body["steps"], list))
        or (isinstance(body, dict) and set(body) == {"state"})
    ), body


@FUZZ
@given(
    method=methods,
    path=paths,
    authorization=authorizations,
    content_type=content_types,
    cookie=st.one_of(st.none(), st.text(alphabet=printable, max_size=40)),
    body=bodies,
)
def test_fuzzed_requests_never_answer_5xx_and_always_answer_json(
    api: FlaskClient,
    method: str,
    path: str,
    authorization: str | None,
    content_type: str | None,
    cookie: str | None,
    body: bytes | None,
) -> None:
    # Hypothesis also draws strings found in the code under test, so these routes do come up;
    # their documented answers (typed 503s, text, 204s) are checked by test_openapi_contract.py.
    assume("/" + unquote(path).lstrip("/").split("/")[0] not in OTHER_ROUTES)
    headers: dict[str, str] = {}
    if authorization == "valid":
        headers.update(auth_header(7))
    elif authorization is not None:
        headers["Authorization"] = authorization
    if content_type is not None:
        headers["Content-Type"] = content_type
    if cookie is not None:
        headers["Cookie"] = f"forest_session_token={cookie}"
    assert_documented(api.open(path, method=method, headers=headers, data=body))


# --- forged tokens ------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(claims: dict[str, Any], *, alg: str = "HS256", secret: str = AUTH_SECRET) -> str:
    """A token crafted by hand, so that any header and signature can be sent."""
    header = _b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    payload = _b64url(json.dumps(claims).encode())
    signing_input = f"{header}.{payload}".encode()
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
    if alg == "none":
        return f"{header}.{payload}."
    mac = hmac.new(secret.encode(), signing_input, digest.get(alg, hashlib.sha256)).digest()
    return f"{header}.{payload}.{_b64url(mac)}"


def _valid(**claims: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"id": 7, "iat": now, "exp": now + 3600, **claims}


def forged_tokens() -> dict[str, str]:
    """Every token an attacker may try, by name."""
    now = int(time.time())
    without_id = {"iat": now, "exp": now + 3600}
    return {
        "alg-none": forged(_valid(), alg="none"),
        "alg-none-with-signature": forged(_valid(), alg="none") + "c2ln",
        "alg-NONE": forged(_valid(), alg="NONE"),
        "another-hmac-algorithm": forged(_valid(), alg="HS512"),
        "algorithm-confusion": forged(_valid(), alg="RS256"),
        "wrong-secret": forged(_valid(), secret="not-the-secret"),
        "empty-secret": forged(_valid(), secret=""),
        "expired": forged(_valid(exp=now - 60)),
        "not-yet-valid": forged(_valid(nbf=now + 3600)),
        "no-exp": forged({"id": 7, "iat": now}),
        "no-id": forged(without_id),
        "id-abc": forged(_valid(id="abc")),
        "id-7a": forged(_valid(id="7a")),
        "id-non-ascii-digit": forged(_valid(id="\u0667")),
        "id-empty": forged(_valid(id="")),
        "id-0": forged(_valid(id=0)),
        "id-negative": forged(_valid(id=-7)),
        "id-fraction": forged(_valid(id=7.5)),
        "id-true": forged(_valid(id=True)),
        "id-null": forged(_valid(id=None)),
        "id-list": forged(_valid(id=[7])),
        "id-object": forged(_valid(id={"id": 7})),
        "huge-token": forged(_valid(padding="x" * 9000)),
        "huge-garbage": "x" * 100_000,
        "truncated-signature": forged(_valid())[:-3],
        "extra-segment": forged(_valid()).replace(".", "..", 1),
        "empty-objects": "e30.e30.e30",
    }


def test_forged_tokens_are_401_on_both_routes_and_reach_nothing(
    apps: BuildApp, orchestrator: FakeOrchestrator
) -> None:
    orchestrator.add_run(1, [guidance_step("manual")])
    client = apps(orchestrator, POLLING_ENABLED=False).test_client()
    answers: dict[str, set[tuple[int, str]]] = {}
    for name, token in forged_tokens().items():
        for headers in (
            {"Authorization": f"Bearer {token}"},
            {"Cookie": f"forest_session_token={token}"},
        ):
            for method, path in (("GET", "/runs/1"), ("POST", "/runs/1/trigger")):
                response = client.open(path, method=method, headers=headers)
                answers.setdefault(name, set()).add((response.status_code, response.data.decode()))
    expected = {(401, json.dumps(UNAUTHORIZED, separators=(",", ":")) + "\n")}
    assert {name: seen for name, seen in answers.items() if seen != expected} == {}
    assert orchestrator.requests == []


invalid_ids = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(max_value=0),
    st.integers(min_value=2**53),
    st.floats().filter(lambda f: not (math.isfinite(f) and f.is_integer() and 0 < f < 2**53)),
    st.text(max_size=20).filter(lambda s: not (s.isascii() and s.isdigit())),
    st.lists(st.integers(min_value=1), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@FUZZ
@given(user_id=invalid_ids, extra=st.dictionaries(st.text(max_size=8), json_values, max_size=3))
def test_a_correctly_signed_token_without_a_positive_integer_id_is_401(
    api: FlaskClient, user_id: Any, extra: dict[str, Any]
) -> None:
    claims = {**extra, **_valid(id=user_id)}
    headers = {"Authorization": f"Bearer {forged(claims)}"}
    for method, path in (("GET", "/runs/1"), ("POST", "/runs/1/trigger")):
        response = api.open(path, method=method, headers=headers)
        assert (response.status_code, strict_json(response.data)) == (401, UNAUTHORIZED)


# --- oversized and malformed bodies -------------------------------------------------------------

# --- oversized and malformed bodies -------------------------------------------------------------

MALFORMED = {
    "truncated": b"{",
    "array": b"[]",
    "string": b'"pendingData"',
    "null": b"null",
    "not-utf8": b"\xff\xfe\x00{",
    "missing-value": b'{"pendingData": }',
    "trailing-garbage": b'{"pendingData": 1} trailing',
    "nul-bytes": b"\x00" * 100,
}


def test_a_malformed_body_is_a_json_400_and_claims_nothing(
    api: FlaskClient, orchestrator: FakeOrchestrator
) -> None:
    answers = {}
    for name, body in MALFORMED.items():
        response = api.post("/runs/1/trigger", data=body, headers=JSON_HEADERS)
        answers[name] = (response.status_code, strict_json(response.data))
    assert {name: answer for name, answer in answers.items() if answer[0] != 400} == {}
    assert all(isinstance(body["error"], str) for _, body in answers.values())
    assert claims(orchestrator) == 0


@pytest.fixture
def started_app(apps: BuildApp, orchestrator: FakeOrchestrator) -> Flask:
    """The default body limit (1 MiB); user 7's run 1 waits for a trigger."""
    orchestrator.add_run(1, [guidance_step("manual")])
    app = apps(orchestrator, POLLING_ENABLED=False)
    runner_of(app).start()
    return app


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * DEEP + b"]" * DEEP, id="nested-arrays"),
        pytest.param(b'{"pendingData": ' + b"[" * 990 + b"]" * 990 + b"}", id="nested-990"),
    ],
)
def test_a_deeply_nested_body_is_a_json_400(
    started_app: Flask, orchestrator: FakeOrchestrator, body: bytes
) -> None:
    response = started_app.test_client().post("/runs/1/trigger", data=body, headers=JSON_HEADERS)
    assert response.status_code == 400, response.data
    assert strict_json(response.data) == {"error": "The request body is not valid JSON."}
    assert claims(orchestrator) == 0


def test_non_json_numbers_in_a_body_are_a_json_400_and_never_stored(
    apps: BuildApp, orchestrator: FakeOrchestrator
) -> None:
    """Python's parser takes NaN and Infinity; stored, they would make GET /runs/<id> answer a
    body the front cannot parse."""
    app = apps(orchestrator, POLLING_ENABLED=False)
    runner_of(app).start()
    executor = Executor(app, orchestrator)
    step = record_step("update-data", "automated-with-confirmation", fieldName="tier", value="x")
    assert executor.run(1, [step]) == {"status": "awaiting-input"}
    stored = executor.entry(1)
    for constant in (b"NaN", b"Infinity", b"-Infinity"):
        response = executor.client.post(
            "/runs/1/trigger",
            data=b'{"pendingData": {"userConfirmed": true, "value": ' + constant + b"}}",
            headers=JSON_HEADERS,
        )
        assert response.status_code == 400, response.data
        assert strict_json(response.data) == {"error": "The request body is not valid JSON."}
    assert executor.entry(1) == stored
    view = executor.client.get("/runs/1", headers=auth_header(7))
    assert view.status_code == 200
    strict_json(view.data)  # what the front does with it (JSON.parse)


@pytest.fixture
def served(orchestrator: FakeOrchestrator) -> Iterator[str]:
    """The executor serving on its own HTTP server (1 KiB body limit); its base URL."""
    orchestrator.add_run(1, [guidance_step("manual")])
    config = base_config(
        orchestrator,
        POLLING_ENABLED=False,
        MAX_REQUEST_BYTES=1024,
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=0,
    )
    runner = runner_of(create_app(config, serve=True))
    runner.start()
    yield f"http://127.0.0.1:{runner.http_port}"
    runner.stop()


def test_an_oversized_body_is_a_json_413_and_claims_nothing(
    served: str, orchestrator: FakeOrchestrator
) -> None:
    body = json.dumps({"pendingData": "x" * 4000}).encode()
    response = httpx.post(f"{served}/runs/1/trigger", content=body, headers=JSON_HEADERS)
    assert response.status_code == 413, response.text
    assert strict_json(response.content) == {"error": "Request body too large"}
    assert claims(orchestrator) == 0


def chunked(body: bytes) -> Iterator[bytes]:
    """The body as a stream: httpx sends it chunked, without a Content-Length."""
    for start in range(0, len(body), 512):
        yield body[start : start + 512]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(json.dumps({"pendingData": "x" * 4000}).encode(), id="invalid-once-cut"),
        pytest.param(b'{"pendingData": {"userInput": "hi"}}' + b" " * 4000, id="valid-once-cut"),
    ],
)
def test_an_oversized_chunked_body_is_a_json_413_and_claims_nothing(
    served: str, orchestrator: FakeOrchestrator, body: bytes
) -> None:
    """Without a Content-Length the limit is found while reading: the body must be refused, not
    cut at the limit (what is left of it may even be valid JSON)."""
    response = httpx.post(f"{served}/runs/1/trigger", content=chunked(body), headers=JSON_HEADERS)
    assert response.status_code == 413, response.text
    assert strict_json(response.content) == {"error": "Request body too large"}
    assert claims(orchestrator) == 0
