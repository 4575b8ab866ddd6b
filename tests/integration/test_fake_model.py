"""The fake model speaks OpenAI Chat Completions, Anthropic Messages and the Forest AI proxy (§8):
proven with plain HTTP calls over its loopback socket."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from tests.fakes.model import FakeModel, ModelRequest

WIRES = ("openai", "anthropic", "forest-proxy")
GATEWAY = "choose-gateway-option"
SELECT = "select-record"
GATEWAY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["reasoning", "question", "option"],
    "properties": {
        "reasoning": {"type": "string"},
        "question": {"type": "string"},
        "option": {"anyOf": [{"enum": ["Yes", "No"]}, {"type": "null"}]},
    },
}
SELECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["recordIdentifier"],
    "properties": {"recordIdentifier": {"enum": ["Ada", "Bob"]}},
}
SCHEMAS = {GATEWAY: GATEWAY_SCHEMA, SELECT: SELECT_SCHEMA}
DECISION = {"reasoning": "High spend", "question": "Is the customer a VIP?", "option": "Yes"}


@pytest.fixture
def model() -> Iterator[FakeModel]:
    with FakeModel() as fake:
        yield fake


# --- clients: what a provider client sends, and how it reads the first tool call ----------------


def request_body(
    wire: str,
    *,
    tools: tuple[str, ...] = (GATEWAY,),
    system: tuple[str, ...] = ("Step executed by: Ada",),
    user: str = "**Question**: Is the customer a VIP?",
) -> dict[str, Any]:
    if wire == "anthropic":
        return {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "system": "\n\n".join(system),
            "messages": [{"role": "user", "content": user}],
            "tools": [
                {"name": t, "description": f"The {t} tool", "input_schema": SCHEMAS[t]}
                for t in tools
            ],
            "tool_choice": {"type": "any"},
        }
    return {
        "model": "gpt-4.1",
        "messages": [{"role": "system", "content": s} for s in system]
        + [{"role": "user", "content": user}],
        "tools": [
            {
                "type": "function",
                "function": {"name": t, "description": f"The {t} tool", "parameters": SCHEMAS[t]},
            }
            for t in tools
        ],
        "tool_choice": "required",
    }


def wire_headers(wire: str) -> dict[str, str]:
    if wire == "anthropic":
        return {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
    if wire == "forest-proxy":
        return {"forest-secret-key": "ab" * 32, "user-id": "7"}
    return {"Authorization": "Bearer sk-test"}


def endpoint(model: FakeModel, wire: str) -> str:
    if wire == "anthropic":
        return f"{model.anthropic_base_url}/v1/messages"
    if wire == "forest-proxy":
        return f"{model.url}/liana/v1/ai-proxy"
    return f"{model.openai_base_url}/chat/completions"


def call(
    model: FakeModel,
    wire: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
    **body_options: Any,
) -> httpx.Response:
    return httpx.post(
        endpoint(model, wire),
        json=request_body(wire, **body_options) if body is None else body,
        headers=wire_headers(wire) if headers is None else headers,
        timeout=timeout,
    )


def tool_calls(wire: str, response: httpx.Response) -> list[dict[str, Any]]:
    """The tool calls of a 200 answer as {name, arguments (raw), has_arguments}."""
    assert response.status_code == 200, response.text
    payload = response.json()
    if wire == "anthropic":
        return [
            {"name": b["name"], "arguments": b.get("input"), "has_arguments": "input" in b}
            for b in payload["content"]
            if b["type"] == "tool_use"
        ]
    message = payload["choices"][0]["message"]
    return [
        {
            "name": c["function"]["name"],
            "arguments": c["function"]["arguments"],
            "has_arguments": c["function"]["arguments"] is not None,
        }
        for c in message.get("tool_calls") or []
    ]


def decoded(wire: str, arguments: Any) -> Any:
    return arguments if wire == "anthropic" else json.loads(arguments)


def error_of(wire: str, response: httpx.Response) -> dict[str, Any]:
    payload = response.json()
    if wire == "anthropic":
        assert payload["type"] == "error"
    error: dict[str, Any] = payload["error"]
    assert isinstance(error["message"], str) and error["type"]
    return error


# --- scripted replies, on every wire ------------------------------------------------------------


@pytest.mark.parametrize("wire", WIRES)
def test_a_scripted_tool_call_is_answered_in_the_wire_format(model: FakeModel, wire: str) -> None:
    model.answer(GATEWAY, DECISION)

    response = call(model, wire)

    [first] = tool_calls(wire, response)
    assert first["name"] == GATEWAY
    assert decoded(wire, first["arguments"]) == DECISION
    payload = response.json()
    if wire == "anthropic":
        assert payload["type"] == "message" and payload["role"] == "assistant"
        assert payload["stop_reason"] == "tool_use"
        assert payload["model"] == "claude-sonnet-4-5"
        assert payload["content"][0]["id"].startswith("toolu_")
        assert set(payload["usage"]) >= {"input_tokens", "output_tokens"}
    else:
        assert isinstance(first["arguments"], str)  # OpenAI arguments are a JSON string
        assert payload["object"] == "chat.completion" and payload["model"] == "gpt-4.1"
        choice = payload["choices"][0]
        assert choice["index"] == 0 and choice["finish_reason"] == "tool_calls"
        assert choice["message"]["role"] == "assistant" and choice["message"]["content"] is None
        assert choice["message"]["tool_calls"][0]["type"] == "function"
        assert set(payload["usage"]) >= {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert model.remaining == 0
    assert model.requests[-1].status == 200 and model.requests[-1].wire == wire


@pytest.mark.parametrize("wire", WIRES)
def test_raw_string_arguments_are_sent_as_is(model: FakeModel, wire: str) -> None:
    model.answer(GATEWAY, '{"option": "Yes", ')

    [first] = tool_calls(wire, call(model, wire))

    assert first["name"] == GATEWAY
    assert first["arguments"] == '{"option": "Yes", '  # OpenAI raw text; Anthropic a string input


@pytest.mark.parametrize("wire", WIRES)
def test_none_means_missing_arguments(model: FakeModel, wire: str) -> None:
    model.answer(GATEWAY, None)

    response = call(model, wire)

    [first] = tool_calls(wire, response)
    assert first["name"] == GATEWAY and not first["has_arguments"]
    if wire == "anthropic":
        assert "input" not in response.json()["content"][0]
    else:
        function = response.json()["choices"][0]["message"]["tool_calls"][0]["function"]
        assert "arguments" in function and function["arguments"] is None


@pytest.mark.parametrize("wire", WIRES)
def test_no_tool_call_answers_plain_text(model: FakeModel, wire: str) -> None:
    model.no_tool_call(text="I am not sure")

    response = call(model, wire)

    assert tool_calls(wire, response) == []
    payload = response.json()
    if wire == "anthropic":
        assert payload["content"] == [{"type": "text", "text": "I am not sure"}]
        assert payload["stop_reason"] == "end_turn"
    else:
        choice = payload["choices"][0]
        assert choice["message"]["content"] == "I am not sure"
        assert choice["finish_reason"] == "stop"


@pytest.mark.parametrize("wire", WIRES)
def test_a_429_then_a_success(model: FakeModel, wire: str) -> None:
    model.fail(429, headers={"retry-after": "0"})
    model.answer(GATEWAY, DECISION)

    failed = call(model, wire)
    succeeded = call(model, wire)

    assert failed.status_code == 429 and failed.headers["retry-after"] == "0"
    error = error_of(wire, failed)
    assert error["type"] == ("rate_limit_error" if wire == "anthropic" else "requests")
    assert tool_calls(wire, succeeded)[0]["name"] == GATEWAY
    assert [r.status for r in model.requests] == [429, 200]


@pytest.mark.parametrize("status", [500, 503, 529])
def test_server_errors_have_the_provider_shape(model: FakeModel, status: int) -> None:
    model.fail(status, times=2)

    openai = call(model, "openai")
    anthropic = call(model, "anthropic")

    assert openai.status_code == anthropic.status_code == status
    assert error_of("openai", openai)["type"] == "server_error"
    expected = "overloaded_error" if status == 529 else "api_error"
    assert error_of("anthropic", anthropic)["type"] == expected


def test_a_custom_failure_body_is_sent_verbatim(model: FakeModel) -> None:
    model.fail(502, body="<html>Bad gateway</html>")
    model.fail(500, body={"oops": True})

    assert call(model, "openai").text == "<html>Bad gateway</html>"
    assert call(model, "anthropic").json() == {"oops": True}


@pytest.mark.parametrize("wire", WIRES)
def test_a_slow_reply_outlasts_a_short_client_timeout(model: FakeModel, wire: str) -> None:
    model.slow(30)
    model.answer(GATEWAY, DECISION)
    model.answer(GATEWAY, DECISION)

    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        call(model, wire, timeout=0.2)
    fast = call(model, wire)  # the delay was used once; the next reply is immediate

    assert time.monotonic() - started < 10
    assert tool_calls(wire, fast)[0]["name"] == GATEWAY
    assert model.count() == 2


def test_a_slow_reply_arrives_after_its_delay(model: FakeModel) -> None:
    model.slow(0.3)
    model.answer(GATEWAY, DECISION)

    started = time.monotonic()
    response = call(model, "openai")

    assert time.monotonic() - started >= 0.3
    assert tool_calls("openai", response)[0]["name"] == GATEWAY


def test_stop_releases_a_slow_handler_at_once() -> None:
    fake = FakeModel().start()
    fake.slow(60)
    fake.answer(GATEWAY, DECISION)
    outcome: list[Any] = []

    def client() -> None:
        try:
            outcome.append(call(fake, "openai", timeout=30).status_code)
        except httpx.HTTPError as error:  # the socket may close first: fine too
            outcome.append(error)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    assert fake.wait_until(lambda: fake.count() == 1, timeout=5)
    started = time.monotonic()
    fake.stop()
    thread.join(timeout=10)

    assert not thread.is_alive()
    assert time.monotonic() - started < 5
    assert len(outcome) == 1
    fake.stop()  # idempotent


@pytest.mark.parametrize("wire", WIRES)
def test_an_unscripted_request_fails_loudly(model: FakeModel, wire: str) -> None:
    response = call(model, wire, tools=(GATEWAY, SELECT))

    assert response.status_code == 500
    message = error_of(wire, response)["message"]
    assert message == "no scripted answer for tools ['choose-gateway-option', 'select-record']"
    assert model.unscripted == model.requests
    assert model.requests[0].status == 500


# --- request validation --------------------------------------------------------------------------


def _without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


OPENAI_BAD: dict[str, Any] = {
    "no model": _without(request_body("openai"), "model"),
    "no messages": _without(request_body("openai"), "messages"),
    "empty messages": {**request_body("openai"), "messages": []},
    "unknown role": {**request_body("openai"), "messages": [{"role": "bot", "content": "hi"}]},
    "no content": {**request_body("openai"), "messages": [{"role": "user"}]},
    "tool not a function": {
        **request_body("openai"),
        "tools": [{"type": "retrieval", "function": {"name": "x", "parameters": {}}}],
    },
    "tool without name": {
        **request_body("openai"),
        "tools": [{"type": "function", "function": {"parameters": {}}}],
    },
    "tool without parameters": {
        **request_body("openai"),
        "tools": [{"type": "function", "function": {"name": GATEWAY}}],
    },
    "bad tool name": {
        **request_body("openai"),
        "tools": [{"type": "function", "function": {"name": "a b", "parameters": {}}}],
    },
    "tool_choice without tools": _without(request_body("openai"), "tools"),
    "unknown tool_choice": {**request_body("openai"), "tool_choice": "always"},
    "streaming": {**request_body("openai"), "stream": True},
    "not an object": ["model"],
}
ANTHROPIC_BAD: dict[str, Any] = {
    "no model": _without(request_body("anthropic"), "model"),
    "no max_tokens": _without(request_body("anthropic"), "max_tokens"),
    "no messages": {**request_body("anthropic"), "messages": []},
    "system in messages": {
        **request_body("anthropic"),
        "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "y"}],
    },
    "empty content": {**request_body("anthropic"), "messages": [{"role": "user", "content": ""}]},
    "tool without input_schema": {**request_body("anthropic"), "tools": [{"name": GATEWAY}]},
    "OpenAI-style tool": {**request_body("anthropic"), "tools": request_body("openai")["tools"]},
    "duplicate tools": {
        **request_body("anthropic"),
        "tools": [{"name": GATEWAY, "input_schema": GATEWAY_SCHEMA}] * 2,
    },
    "tool_choice not an object": {**request_body("anthropic"), "tool_choice": "required"},
}


@pytest.mark.parametrize("wire", ["openai", "forest-proxy"])
@pytest.mark.parametrize("case", sorted(OPENAI_BAD))
def test_a_bad_openai_request_gets_a_400(model: FakeModel, wire: str, case: str) -> None:
    model.answer(GATEWAY, DECISION)

    response = call(model, wire, OPENAI_BAD[case])

    assert response.status_code == 400, case
    assert error_of(wire, response)["type"] == "invalid_request_error"
    assert model.remaining == 1  # a rejected request uses no scripted reply
    assert model.count() == 1 and model.requests[0].status == 400


@pytest.mark.parametrize("case", sorted(ANTHROPIC_BAD))
def test_a_bad_anthropic_request_gets_a_400(model: FakeModel, case: str) -> None:
    model.answer(GATEWAY, DECISION)

    response = call(model, "anthropic", ANTHROPIC_BAD[case])

    assert response.status_code == 400, case
    assert error_of("anthropic", response)["type"] == "invalid_request_error"
    assert model.remaining == 1
    assert model.count() == 1 and model.requests[0].status == 400


def test_anthropic_needs_its_headers(model: FakeModel) -> None:
    model.answer(GATEWAY, DECISION)

    no_version = call(model, "anthropic", headers={"x-api-key": "k"})
    no_key = call(model, "anthropic", headers={"anthropic-version": "2023-06-01"})
    bearer = call(model, "anthropic", headers={"Authorization": "Bearer k"})

    assert no_version.status_code == 400
    assert "anthropic-version" in error_of("anthropic", no_version)["message"]
    assert no_key.status_code == bearer.status_code == 401
    assert error_of("anthropic", no_key)["type"] == "authentication_error"
    assert model.remaining == 1 and model.count() == 3


def test_openai_needs_a_bearer_key(model: FakeModel) -> None:
    response = call(model, "openai", headers={})

    assert response.status_code == 401
    assert error_of("openai", response)["code"] == "invalid_api_key"


def test_configured_keys_are_checked() -> None:
    with FakeModel(api_key="right", forest_secret="secret") as fake:
        fake.answer(GATEWAY, DECISION, times=3)
        wrong_openai = call(fake, "openai", headers={"Authorization": "Bearer wrong"})
        wrong_anthropic = call(
            fake, "anthropic", headers={"x-api-key": "wrong", "anthropic-version": "2023-06-01"}
        )
        wrong_secret = call(
            fake, "forest-proxy", headers={"forest-secret-key": "nope", "user-id": "7"}
        )
        right = [
            call(fake, "openai", headers={"Authorization": "Bearer right"}),
            call(fake, "anthropic", headers={"x-api-key": "right", "anthropic-version": "1"}),
            call(fake, "forest-proxy", headers={"forest-secret-key": "secret", "user-id": "7"}),
        ]

    assert [r.status_code for r in (wrong_openai, wrong_anthropic, wrong_secret)] == [401] * 3
    assert [r.status_code for r in right] == [200] * 3


# --- the Forest AI proxy ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"user-id": "7"}, id="no secret"),
        pytest.param({"forest-secret-key": "s"}, id="no user-id"),
        pytest.param(
            {"forest-secret-key": "s", "user-id": "7", "Authorization": "Bearer x"},
            id="with Authorization",
        ),
    ],
)
def test_the_proxy_checks_its_headers(model: FakeModel, headers: dict[str, str]) -> None:
    model.answer(GATEWAY, DECISION)

    response = call(model, "forest-proxy", headers=headers)

    assert response.status_code == 400
    assert error_of("forest-proxy", response)["type"] == "invalid_request_error"
    recorded = model.requests[0]
    assert recorded.wire == "forest-proxy" and recorded.path == "/liana/v1/ai-proxy"
    assert recorded.headers.get("user-id") == headers.get("user-id")
    assert model.remaining == 1


def test_the_proxy_records_the_attribution_headers(model: FakeModel) -> None:
    model.answer(GATEWAY, DECISION)

    response = call(model, "forest-proxy")

    assert tool_calls("forest-proxy", response)[0]["name"] == GATEWAY
    recorded = model.requests[0]
    assert recorded.headers["forest-secret-key"] == "ab" * 32
    assert recorded.headers["user-id"] == "7"
    assert "authorization" not in recorded.headers
    assert recorded.model == "gpt-4.1"


def test_handle_lets_another_fake_delegate_the_proxy(model: FakeModel) -> None:
    model.answer(GATEWAY, DECISION)
    builder = EnvironBuilder(
        path="/liana/v1/ai-proxy",
        method="POST",
        json=request_body("forest-proxy"),
        headers=list(wire_headers("forest-proxy").items()),
    )
    try:
        request = Request(builder.get_environ())
        response = model.handle(request)
        other = model.handle(Request(EnvironBuilder(path="/api/other").get_environ()))
    finally:
        builder.close()

    assert response is not None and response.status_code == 200
    call_ = json.loads(response.get_data())["choices"][0]["message"]["tool_calls"][0]
    assert call_["function"]["name"] == GATEWAY
    assert other is None
    assert model.requests[0].wire == "forest-proxy"


def test_other_paths_and_methods_are_refused(model: FakeModel) -> None:
    assert httpx.post(f"{model.url}/v2/chat", json={}, timeout=5).status_code == 404
    assert httpx.get(f"{model.url}/v1/messages", timeout=5).status_code == 405


# --- matching and custom replies ----------------------------------------------------------------


@pytest.mark.parametrize("wire", WIRES)
def test_a_planned_answer_goes_to_the_request_offering_its_tool(
    model: FakeModel, wire: str
) -> None:
    model.answer(SELECT, {"recordIdentifier": "Bob"})
    model.answer(GATEWAY, DECISION)

    gateway = call(model, wire, tools=(GATEWAY,))  # arrives first, skips the select-record plan
    select = call(model, wire, tools=(SELECT,))

    assert tool_calls(wire, gateway)[0]["name"] == GATEWAY
    assert tool_calls(wire, select)[0]["name"] == SELECT
    assert decoded(wire, tool_calls(wire, select)[0]["arguments"]) == {"recordIdentifier": "Bob"}


def test_interleaved_concurrent_requests_get_their_own_tool(model: FakeModel) -> None:
    model.slow(0.2, tool=SELECT)  # keeps the select-record request in flight meanwhile
    model.answer(SELECT, {"recordIdentifier": "Ada"})
    model.answer(GATEWAY, DECISION)
    results: dict[str, httpx.Response] = {}
    select = threading.Thread(
        target=lambda: results.update(select=call(model, "anthropic", tools=(SELECT,)))
    )
    select.start()
    assert model.wait_until(lambda: model.count() == 1, timeout=5)
    results["gateway"] = call(model, "openai", tools=(GATEWAY,))
    select.join(timeout=10)

    assert tool_calls("openai", results["gateway"])[0]["name"] == GATEWAY
    assert tool_calls("anthropic", results["select"])[0]["arguments"] == {"recordIdentifier": "Ada"}
    assert model.remaining == 0


def test_a_plan_without_a_tool_fits_any_request_and_times_repeat_it(model: FakeModel) -> None:
    model.fail(500, tool=SELECT)
    model.no_tool_call(times=2)

    first = call(model, "openai", tools=(GATEWAY,))  # skips the failure planned for select-record
    failed = call(model, "openai", tools=(SELECT,))
    second = call(model, "anthropic", tools=(SELECT,))
    unscripted = call(model, "openai")

    assert tool_calls("openai", first) == [] and tool_calls("anthropic", second) == []
    assert failed.status_code == 500 and "scripted failure" in failed.text
    assert unscripted.status_code == 500 and "no scripted answer" in unscripted.text


def test_answer_with_computes_the_call_from_the_request(model: FakeModel) -> None:
    def pick(request: ModelRequest) -> Any:
        options = request.tool_schemas[SELECT]["properties"]["recordIdentifier"]["enum"]
        return {"name": request.tools[0], "arguments": {"recordIdentifier": options[-1]}}

    model.answer_with(pick, times=2)

    for wire in ("openai", "anthropic"):
        [first] = tool_calls(wire, call(model, wire, tools=(SELECT,)))
        assert first["name"] == SELECT
        assert decoded(wire, first["arguments"]) == {"recordIdentifier": "Bob"}


def test_answer_with_can_return_several_calls(model: FakeModel) -> None:
    model.answer_with(
        lambda _: [{"name": "unknown-tool", "arguments": {}}, {"name": GATEWAY}], tool=GATEWAY
    )

    calls = tool_calls("openai", call(model, "openai"))

    assert [c["name"] for c in calls] == ["unknown-tool", GATEWAY]
    assert calls[0]["arguments"] == "{}" and not calls[1]["has_arguments"]


def test_times_must_be_positive(model: FakeModel) -> None:
    with pytest.raises(ValueError, match="times"):
        model.answer(GATEWAY, DECISION, times=0)


# --- recording ----------------------------------------------------------------------------------


def test_an_openai_request_is_recorded(model: FakeModel) -> None:
    model.answer(GATEWAY, DECISION)

    call(
        model,
        "openai",
        tools=(GATEWAY, SELECT),
        system=("Step executed by: Ada", "Record: customers #123"),
        user="**Question**: Is the customer a VIP?",
    )

    [recorded] = model.requests
    assert recorded.wire == "openai" and recorded.path == "/v1/chat/completions"
    assert recorded.system == "Step executed by: Ada\n\nRecord: customers #123"
    assert recorded.messages == [
        {"role": "user", "content": "**Question**: Is the customer a VIP?"}
    ]
    assert recorded.tools == [GATEWAY, SELECT]
    assert recorded.tool_schemas == {GATEWAY: GATEWAY_SCHEMA, SELECT: SELECT_SCHEMA}
    assert recorded.tool_choice == "required" and recorded.model == "gpt-4.1"
    assert recorded.headers["authorization"] == "Bearer sk-test"
    assert recorded.body["tool_choice"] == "required"
    text = FakeModel.all_text(recorded)
    assert "Record: customers #123" in text and "Is the customer a VIP?" in text
    assert "serverToken" not in text
    assert model.prompts_for(SELECT) == [recorded] and model.prompts_for("other") == []


def test_an_anthropic_request_is_recorded(model: FakeModel) -> None:
    model.answer(SELECT, {"recordIdentifier": "Ada"})
    body = request_body("anthropic", tools=(SELECT,))
    body["system"] = [{"type": "text", "text": "Be careful."}]  # a real provider accepts blocks
    body["messages"] = [
        {"role": "user", "content": [{"type": "text", "text": "Pick the customer."}]},
        {"role": "assistant", "content": "Which one?"},
        {"role": "user", "content": "The VIP one."},
    ]

    call(model, "anthropic", body)

    [recorded] = model.requests
    assert recorded.wire == "anthropic" and recorded.path == "/v1/messages"
    assert recorded.system == "Be careful."
    assert [m["role"] for m in recorded.messages] == ["user", "assistant", "user"]
    assert recorded.tools == [SELECT] and recorded.tool_schemas == {SELECT: SELECT_SCHEMA}
    assert recorded.tool_choice == {"type": "any"} and recorded.model == "claude-sonnet-4-5"
    assert recorded.headers["anthropic-version"] == "2023-06-01"
    text = model.all_text(recorded)
    for part in ("Be careful.", "Pick the customer.", "Which one?", "The VIP one."):
        assert part in text


def test_wait_until_sees_each_request(model: FakeModel) -> None:
    model.answer(GATEWAY, DECISION)
    thread = threading.Thread(target=lambda: call(model, "openai"), daemon=True)
    thread.start()

    assert model.wait_until(lambda: any(r.status == 200 for r in model.requests), timeout=5)
    thread.join(timeout=5)
    assert model.count() == 1
    assert not model.wait_until(lambda: model.count() == 2, timeout=0.05)
