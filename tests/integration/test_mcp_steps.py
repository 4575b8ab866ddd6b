"""MCP steps end to end: the fake orchestrator advertises real MCP servers (built with the SDK,
served over HTTP on loopback), the fake model chooses the tool, the executor calls it."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask

from executor.adapters.ai.anthropic import AnthropicModel
from executor.adapters.ai.openai import ForestProxyModel, OpenAiChatModel
from executor.adapters.orchestrator import OrchestratorClient
from executor.extension import runner_of
from executor.mcp.client import McpClient
from executor.mcp.servers import McpServers
from executor.mcp.tokens import ReauthNeeded
from executor.ports import AiModel
from tests.conftest import auth_header, services_for
from tests.drivers import Executor
from tests.fakes.mcp_server import FakeMcpServer
from tests.fakes.model import FakeModel, ModelRequest
from tests.fakes.orchestrator import ENV_SECRET, FakeOrchestrator

TICKETS, CRM = "39", "40"
SUCCESS = {"status": "success"}
AWAITING = {"status": "awaiting-input"}
REAUTH = {"status": "awaiting-input", "awaitingInputReason": "needs-oauth-reauth"}
NO_TOOLS = (
    "Tools could not be loaded for the targeted server. Please try again, or contact your "
    "administrator if the problem persists."
)
TOOL_NOT_FOUND = "The AI selected a tool that doesn't exist. Try rephrasing the step's prompt."
INVOCATION = "The tool failed to execute. Please try again or contact your administrator."
STEP_STATE = "An unexpected error occurred while processing this step."
FAST = (0.01, 0.01, 0.01)


def error(message: str) -> dict[str, Any]:
    return {"status": "error", "error": message}


def mcp_step(
    execution_type: str = "fully-automated",
    server_id: str = TICKETS,
    prompt: str | None = "Open a ticket about the late delivery",
) -> dict[str, Any]:
    return {
        "type": "task",
        "taskType": "mcp-server",
        "title": "Tickets",
        "prompt": prompt,
        "executionType": execution_type,
        "automaticCompletion": False,
        "outgoing": [{"stepId": "next", "buttonText": None}],
        "mcpServerId": server_id,
    }


class TokenSource:
    """The OAuth credentials' access tokens, over a set of tokens the CRM server accepts: each
    refresh issues a new token (valid unless ``refresh_issues_invalid``)."""

    def __init__(self, valid: set[str]) -> None:
        self.valid = valid
        self.asked: list[tuple[int, str, bool]] = []
        self.reauth = False
        self.refresh_issues_invalid = False
        self._current: dict[tuple[int, str], str] = {}
        self._issued = 0

    def access_token(self, user_id: int, mcp_server_id: str, *, force_refresh: bool = False) -> str:
        self.asked.append((user_id, mcp_server_id, force_refresh))
        if self.reauth:
            raise ReauthNeeded(mcp_server_id)
        key = (user_id, mcp_server_id)
        if force_refresh or key not in self._current:
            self._issued += 1
            token = f"access-{self._issued}"
            if not self.refresh_issues_invalid:
                self.valid.add(token)
            self._current[key] = token
        return self._current[key]

    def evict(self, user_id: int, mcp_server_id: str) -> None:
        self._current.pop((user_id, mcp_server_id), None)

    def revoke_all(self) -> None:
        self.valid.clear()


@pytest.fixture
def tickets() -> Iterator[FakeMcpServer]:
    with FakeMcpServer() as server:
        yield server


@pytest.fixture
def valid_tokens() -> set[str]:
    return set()


@pytest.fixture
def tokens(valid_tokens: set[str]) -> TokenSource:
    return TokenSource(valid_tokens)


@pytest.fixture
def crm(valid_tokens: set[str]) -> Iterator[FakeMcpServer]:
    with FakeMcpServer(token_is_valid=valid_tokens.__contains__) as server:
        yield server


def mcp_services(orchestrator: FakeOrchestrator, tokens: Any, ai: AiModel | None = None) -> Any:
    model = ai or ForestProxyModel(orchestrator.url, ENV_SECRET, invoke_timeout_s=2)
    servers = McpServers(
        OrchestratorClient(orchestrator.url, ENV_SECRET, retry_delays_s=FAST),
        McpClient(),
        tokens,
        list_timeout_s=3,
        call_timeout_s=5,
    )
    return replace(services_for(orchestrator), ai_models={"default": model}, mcp=servers)


@pytest.fixture
def build(
    make_app: Callable[..., Flask],
    orchestrator: FakeOrchestrator,
    model: FakeModel,
    tickets: FakeMcpServer,
    crm: FakeMcpServer,
    tokens: TokenSource,
) -> Callable[..., Executor]:
    orchestrator.model = model
    orchestrator.mcp_server_configs = {
        "tickets": {"id": TICKETS, "type": "http", "url": tickets.url},
        "crm": {"id": CRM, "type": "http", "url": crm.url, "authType": "oauth2"},
    }

    def start(ai: AiModel | None = None) -> Executor:
        app = make_app(services=mcp_services(orchestrator, tokens, ai), POLLING_ENABLED=False)
        runner_of(app).start()
        return Executor(app, orchestrator)

    return start


@pytest.fixture
def executor(build: Callable[..., Executor]) -> Executor:
    return build()


def create_ticket(model: FakeModel, title: str = "Late delivery", priority: int = 2) -> None:
    model.answer("create_ticket", {"title": title, "priority": priority})


def summary(model: FakeModel, text: str = "Ticket 42 was opened.") -> None:
    model.answer("summarize-result", {"summary": text})


TICKET_42 = {"result": json.dumps({"id": 42, "title": "Late delivery", "priority": 2})}
TARGET = {
    "name": "create_ticket",
    "sourceId": "tickets",
    "input": {"title": "Late delivery", "priority": 2},
}


# --- the AI is offered the server's tools themselves, on every wire --------------------------


@pytest.mark.parametrize("wire", ["forest-proxy", "openai", "anthropic"])
def test_the_ai_is_offered_the_mcp_tools_and_must_call_one(
    build: Callable[..., Executor], model: FakeModel, wire: str
) -> None:
    ai: AiModel | None = None
    if wire == "openai":
        ai = OpenAiChatModel(
            "gpt-test", "sk-test", invoke_timeout_s=2, base_url=model.openai_base_url
        )
    elif wire == "anthropic":
        ai = AnthropicModel(
            "claude-test", "ak", invoke_timeout_s=2, base_url=model.anthropic_base_url
        )
    executor = build(ai)
    create_ticket(model)
    summary(model)
    assert executor.run(1, [mcp_step()]) == SUCCESS
    choice = model.requests[0]
    assert choice.wire == wire
    assert choice.tools == ["create_ticket", "search_tickets", "wait_for_agent", "close_ticket"]
    assert choice.tool_choice in ("required", {"type": "any"})
    schema = choice.tool_schemas["create_ticket"]
    assert schema["required"] == ["title"]
    assert schema["properties"]["priority"]["type"] == "integer"
    assert choice.messages == [
        {"role": "user", "content": "**Request**: Open a ticket about the late delivery"}
    ]
    assert "Select the tool most relevant to the request" in choice.system


# --- fully automated --------------------------------------------------------------------------


def test_fully_automated_executes_the_chosen_tool_and_keeps_result_and_summary(
    executor: Executor, model: FakeModel, tickets: FakeMcpServer
) -> None:
    create_ticket(model)
    summary(model)
    assert executor.run(1, [mcp_step()]) == SUCCESS
    assert tickets.call_names() == ["create_ticket"]
    assert tickets.calls[0].arguments == {"title": "Late delivery", "priority": 2}
    assert executor.entry(1) == {
        "type": "mcp",
        "stepIndex": 0,
        "executionParams": TARGET,
        "executionResult": {
            "success": True,
            "toolResult": TICKET_42,
            "formattedResponse": "Ticket 42 was opened.",
        },
        "idempotencyPhase": "done",
    }
    [asked] = model.prompts_for("summarize-result")
    assert asked.messages[0]["content"] == (
        'Tool "create_ticket" was executed with input: {"title": "Late delivery", "priority": 2}.'
        f"\nResult: {json.dumps(TICKET_42)}\n\nProvide a concise human-readable summary."
    )
    [entry] = executor.audit(settled=1)
    assert entry["action"] == "action"
    assert entry["type"] == "write"
    assert entry["label"] == TICKETS
    assert entry["records"] == ["1"]
    assert entry["status"] == "completed"
    assert entry["relationships"]["collection"]["data"]["id"] == "11"
    assert executor.steps_view(1) == [executor.entry(1)]


def test_a_summary_failure_is_only_logged(
    executor: Executor, model: FakeModel, tickets: FakeMcpServer, caplog: pytest.LogCaptureFixture
) -> None:
    create_ticket(model)
    model.fail(400)  # the summary request
    with caplog.at_level(logging.WARNING):
        assert executor.run(1, [mcp_step()]) == SUCCESS
    assert executor.entry(1)["executionResult"] == {"success": True, "toolResult": TICKET_42}
    assert any("could not be summarized" in r.getMessage() for r in caplog.records)


def test_a_long_result_is_cut_for_the_summary(executor: Executor, model: FakeModel) -> None:
    model.answer("search_tickets", {"query": "x" * 25_000})
    summary(model, "One ticket matches.")
    assert executor.run(1, [mcp_step()]) == SUCCESS
    [asked] = model.prompts_for("summarize-result")
    result = asked.messages[0]["content"].split("\nResult: ", 1)[1]
    assert result.endswith("\n... [truncated]\n\nProvide a concise human-readable summary.")
    assert len(result.split("\n... [truncated]")[0]) == 20_000
    stored = executor.entry(1)["executionResult"]
    assert len(json.dumps(stored["toolResult"])) > 25_000  # the raw result is kept whole
    assert stored["formattedResponse"] == "One ticket matches."


def test_a_failing_tool_is_an_invocation_error_and_leaves_the_mark(
    executor: Executor, model: FakeModel, tickets: FakeMcpServer
) -> None:
    model.answer("close_ticket", {"ticket_id": 5})
    assert executor.run(1, [mcp_step()]) == error(INVOCATION)
    assert tickets.call_names() == ["close_ticket"]
    assert executor.entry(1) == {"type": "mcp", "stepIndex": 0, "idempotencyPhase": "executing"}
    [entry] = executor.audit(settled=1)
    assert entry["status"] == "failed"
    # Dispatched again, the step refuses to act twice.
    assert executor.redispatch(1) == error(STEP_STATE)
    assert tickets.call_names() == ["close_ticket"]


def test_a_401_from_a_server_without_oauth_is_a_failed_call_never_retried(
    executor: Executor, model: FakeModel, tickets: FakeMcpServer, tokens: TokenSource
) -> None:
    tickets.refuse_calls = True  # e.g. an API-key server whose key was revoked
    model.answer("close_ticket", {"ticket_id": 5})
    assert executor.run(1, [mcp_step()]) == error(INVOCATION)
    assert tickets.answered("tools/call") == [401]  # once: no refresh, no second call
    assert tokens.asked == []
    assert executor.entry(1) == {"type": "mcp", "stepIndex": 0, "idempotencyPhase": "executing"}


def test_a_confirmed_step_whose_server_is_down_has_no_tools(
    executor: Executor, model: FakeModel, tickets: FakeMcpServer
) -> None:
    create_ticket(model)
    assert executor.run(1, [mcp_step("automated-with-confirmation")]) == AWAITING
    tickets.status_override = 500
    assert executor.trigger(1, {"userConfirmed": True}) == error(NO_TOOLS)
    assert tickets.call_names() == []


def test_a_finished_step_dispatched_again_does_not_call_the_tool_again(
    executor: Executor, model: FakeModel, tickets: FakeMcpServer
) -> None:
    create_ticket(model)
    summary(model)
    assert executor.run(1, [mcp_step()]) == SUCCESS
    assert executor.redispatch(1) == SUCCESS
    assert tickets.call_names() == ["create_ticket"]
    assert len(model.requests) == 2


def test_the_ai_calling_a_tool_that_does_not_exist_is_mcp_tool_not_found(
    executor: Executor, model: FakeModel, tickets: FakeMcpServer
) -> None:
    model.answer_with(lambda r: {"name": "delete_all_tickets", "arguments": {}})
    assert executor.run(1, [mcp_step()]) == error(TOOL_NOT_FOUND)
    assert tickets.calls == []
    assert executor.orchestrator.activity_logs == []


def test_arguments_breaking_the_tool_schema_are_refused(
    executor: Executor, model: FakeModel, tickets: FakeMcpServer
) -> None:
    model.answer("create_ticket", {"priority": "urgent"})
    outcome = executor.run(1, [mcp_step()])
    assert outcome == error("The AI made an unexpected choice. Try rephrasing the step's prompt.")
    assert tickets.calls == []


# --- with confirmation ------------------------------------------------------------------------


def test_with_confirmation_the_call_waits_then_runs_once_confirmed(
    executor: Executor, model: FakeModel, tickets: FakeMcpServer
) -> None:
    create_ticket(model)
    assert executor.run(1, [mcp_step("automated-with-confirmation")]) == AWAITING
    assert executor.entry(1) == {"type": "mcp", "stepIndex": 0, "pendingData": TARGET}
    assert tickets.calls == []
    assert executor.orchestrator.activity_logs == []
    summary(model)
    assert executor.trigger(1, {"userConfirmed": True}) == SUCCESS
    assert tickets.call_names() == ["create_ticket"]
    assert executor.entry(1) == {
        "type": "mcp",
        "stepIndex": 0,
        "pendingData": TARGET,
        "userConfirmation": {"userConfirmed": True},
        "executionParams": TARGET,
        "executionResult": {
            "success": True,
            "toolResult": TICKET_42,
            "formattedResponse": "Ticket 42 was opened.",
        },
        "idempotencyPhase": "done",
    }
    assert [e["status"] for e in executor.audit(settled=1)] == ["completed"]


def test_with_confirmation_a_rejection_skips_the_call(
    executor: Executor, model: FakeModel, tickets: FakeMcpServer
) -> None:
    create_ticket(model)
    assert executor.run(1, [mcp_step("automated-with-confirmation")]) == AWAITING
    assert executor.trigger(1, {"userConfirmed": False}) == SUCCESS
    assert tickets.calls == []
    entry = executor.entry(1)
    assert entry["executionResult"] == {"skipped": True}
    assert entry["userConfirmation"] == {"userConfirmed": False}
    assert executor.orchestrator.activity_logs == []


def test_an_invalid_confirmation_is_a_step_state_error(
    executor: Executor, model: FakeModel, tickets: FakeMcpServer
) -> None:
    create_ticket(model)
    assert executor.run(1, [mcp_step("automated-with-confirmation")]) == AWAITING
    assert executor.trigger(1, {"userConfirmed": "yes"}) == error(STEP_STATE)
    assert tickets.calls == []


# --- tool loading -----------------------------------------------------------------------------


def load_failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "MCP servers failed to load tools"]


def test_only_the_servers_with_the_step_s_id_are_loaded(
    executor: Executor, model: FakeModel, tickets: FakeMcpServer, crm: FakeMcpServer
) -> None:
    create_ticket(model)
    summary(model)
    assert executor.run(1, [mcp_step(server_id=TICKETS)]) == SUCCESS
    assert crm.methods == []  # the other server was not even contacted


@pytest.mark.parametrize(
    ("configs", "warning"),
    [
        ({}, "MCP step targets a server but orchestrator returned no MCP configs"),
        (
            {"other": {"id": "77", "type": "http", "url": "http://127.0.0.1:9/mcp"}},
            "MCP step targets a server not advertised by the orchestrator",
        ),
        (
            {"local": {"id": TICKETS, "type": "stdio", "command": "sh", "args": ["-c", "id"]}},
            "MCP step targets a server but orchestrator returned no MCP configs",
        ),
        (
            {"zendesk": {"id": TICKETS, "isForestConnector": True, "integrationName": "Zendesk"}},
            "MCP step targets a server but orchestrator returned no MCP configs",
        ),
    ],
    ids=["no-configs", "other-id", "stdio-ignored", "forest-connector-ignored"],
)
def test_no_server_for_the_step_is_no_mcp_tools(
    executor: Executor,
    model: FakeModel,
    caplog: pytest.LogCaptureFixture,
    configs: dict[str, Any],
    warning: str,
) -> None:
    executor.orchestrator.mcp_server_configs = configs
    with caplog.at_level(logging.INFO):
        assert executor.run(1, [mcp_step()]) == error(NO_TOOLS)
    assert any(r.getMessage() == warning for r in caplog.records)
    assert model.requests == []


def test_a_server_without_tools_is_no_mcp_tools_but_not_a_load_failure(
    executor: Executor, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeMcpServer(tools=False) as empty:
        executor.orchestrator.mcp_server_configs = {
            "empty": {"id": TICKETS, "type": "http", "url": empty.url}
        }
        with caplog.at_level(logging.INFO):
            assert executor.run(1, [mcp_step()]) == error(NO_TOOLS)
    assert load_failures(caplog) == []


@pytest.mark.parametrize(
    ("setup", "kind"),
    [
        (lambda s: s.update(url="http://127.0.0.1:9/mcp"), "connection"),
        (lambda s: s.update(status=403), "unknown"),
        (lambda s: s.update(status=401), "auth"),
        (lambda s: s.update(status=500), "unknown"),
    ],
    ids=["refused", "forbidden", "unauthorized", "server-error"],
)
def test_load_failures_are_classified_and_logged_at_error(
    executor: Executor,
    tickets: FakeMcpServer,
    model: FakeModel,
    caplog: pytest.LogCaptureFixture,
    setup: Callable[[dict[str, Any]], None],
    kind: str,
) -> None:
    options: dict[str, Any] = {"url": tickets.url, "status": None}
    setup(options)
    tickets.status_override = options["status"]
    executor.orchestrator.mcp_server_configs = {
        "tickets": {
            "id": TICKETS,
            "type": "http",
            "url": options["url"],
            "headers": {"X-Key": "s3cr3t-value"},
        }
    }
    with caplog.at_level(logging.INFO):
        assert executor.run(1, [mcp_step()]) == error(NO_TOOLS)
    [record] = load_failures(caplog)
    assert record.levelno == logging.ERROR
    assert record.requestedMcpServerId == TICKETS  # type: ignore[attr-defined]
    assert record.mcpServerName == "tickets"  # type: ignore[attr-defined]
    [failure] = record.failures  # type: ignore[attr-defined]
    assert failure["server"] == "tickets"
    assert failure["kind"] == kind
    assert failure["error"].startswith("tools/list on tickets failed")
    assert isinstance(failure["cause"], str) and failure["cause"]
    assert "s3cr3t" not in json.dumps(record.failures)  # type: ignore[attr-defined]
    assert model.requests == []


def test_an_unreachable_orchestrator_fails_the_step_with_its_message(
    executor: Executor,
) -> None:
    executor.orchestrator.fail("/liana/mcp-server-configs-with-details", 400)
    outcome = executor.run(1, [mcp_step()])
    assert outcome == error(
        "This step couldn't be completed. Please try again, and contact your administrator if "
        "the problem continues."
    )


def test_the_sse_transport_lists_and_calls_tools(executor: Executor, model: FakeModel) -> None:
    with FakeMcpServer(transport="sse") as sse:
        executor.orchestrator.mcp_server_configs = {
            "tickets": {"id": TICKETS, "type": "sse", "url": sse.url}
        }
        create_ticket(model)
        summary(model)
        assert executor.run(1, [mcp_step()]) == SUCCESS
        assert sse.call_names() == ["create_ticket"]
    assert executor.entry(1)["executionResult"]["toolResult"] == TICKET_42


# --- OAuth2 servers ---------------------------------------------------------------------------


def test_an_oauth2_server_is_called_with_the_user_s_access_token(
    executor: Executor, model: FakeModel, crm: FakeMcpServer, tokens: TokenSource
) -> None:
    create_ticket(model)
    summary(model)
    assert executor.run(1, [mcp_step(server_id=CRM)]) == SUCCESS
    assert crm.call_names() == ["create_ticket"]
    assert tokens.asked == [(7, CRM, False)]
    assert executor.entry(1)["executionParams"]["sourceId"] == "crm"


def test_a_refused_token_at_load_is_refreshed_once(
    executor: Executor, model: FakeModel, crm: FakeMcpServer, tokens: TokenSource
) -> None:
    tokens.access_token(7, CRM)
    tokens.revoke_all()  # the cached token is no longer accepted
    tokens.asked.clear()
    create_ticket(model)
    summary(model)
    assert executor.run(1, [mcp_step(server_id=CRM)]) == SUCCESS
    assert tokens.asked == [(7, CRM, False), (7, CRM, True)]
    assert crm.call_names() == ["create_ticket"]


def test_a_401_on_the_call_refreshes_reloads_and_retries_once(
    executor: Executor, model: FakeModel, crm: FakeMcpServer, tokens: TokenSource
) -> None:
    def choose_and_revoke(request: ModelRequest) -> dict[str, Any]:
        tokens.revoke_all()  # the token expires between the listing and the call
        return {"name": "create_ticket", "arguments": {"title": "Late delivery", "priority": 2}}

    model.answer_with(choose_and_revoke)
    summary(model)
    assert executor.run(1, [mcp_step(server_id=CRM)]) == SUCCESS
    assert crm.call_names() == ["create_ticket"]  # the refused call never reached the tool
    assert any(status == 401 for _, status in crm.methods)  # refused before the retry
    assert tokens.asked == [(7, CRM, False), (7, CRM, True)]
    assert executor.entry(1)["idempotencyPhase"] == "done"
    assert [e["status"] for e in executor.audit(settled=1)] == ["completed"]


def test_a_second_401_pauses_for_reauthentication_and_clears_the_mark(
    executor: Executor, model: FakeModel, crm: FakeMcpServer, tokens: TokenSource
) -> None:
    crm.refuse_calls = True
    create_ticket(model)
    assert executor.run(1, [mcp_step(server_id=CRM)]) == REAUTH
    assert crm.answered("tools/call") == [401, 401]
    assert executor.orchestrator.updates(1)[0]["stepUpdate"]["attributes"]["done"] is False
    # Fully automated: the bare mark is gone, so the resumed step is not "interrupted".
    assert executor.steps_view(1) == []
    assert [e["status"] for e in executor.audit(settled=1)] == ["failed"]
    crm.refuse_calls = False  # the user reconnected
    create_ticket(model)
    summary(model)
    assert executor.trigger(1) == SUCCESS
    assert crm.call_names() == ["create_ticket"]


def test_reauthentication_with_confirmation_keeps_the_proposal(
    executor: Executor, model: FakeModel, crm: FakeMcpServer, tokens: TokenSource
) -> None:
    create_ticket(model)
    assert executor.run(1, [mcp_step("automated-with-confirmation", server_id=CRM)]) == AWAITING
    crm.refuse_calls = True
    assert executor.trigger(1, {"userConfirmed": True}) == REAUTH
    entry = executor.entry(1)
    assert "idempotencyPhase" not in entry
    assert entry["pendingData"]["name"] == "create_ticket"
    crm.refuse_calls = False
    summary(model)
    assert executor.trigger(1) == SUCCESS  # the stored confirmation still holds
    assert crm.call_names() == ["create_ticket"]


def test_a_refresh_needing_consent_pauses_before_anything_runs(
    executor: Executor, model: FakeModel, crm: FakeMcpServer, tokens: TokenSource
) -> None:
    tokens.reauth = True
    assert executor.run(1, [mcp_step(server_id=CRM)]) == REAUTH
    assert crm.methods == []
    assert model.requests == []
    assert executor.steps_view(1) == []


def test_a_refreshed_token_still_refused_at_load_is_reauthentication(
    executor: Executor, model: FakeModel, crm: FakeMcpServer, tokens: TokenSource
) -> None:
    tokens.refresh_issues_invalid = True
    assert executor.run(1, [mcp_step(server_id=CRM)]) == REAUTH
    assert tokens.asked == [(7, CRM, False), (7, CRM, True)]
    assert model.requests == []


def test_a_non_auth_refresh_failure_after_a_401_clears_the_mark_and_fails(
    executor: Executor, model: FakeModel, crm: FakeMcpServer, tokens: TokenSource
) -> None:
    class RefreshFailed(Exception):
        pass

    original = tokens.access_token

    def failing_refresh(user_id: int, server_id: str, *, force_refresh: bool = False) -> str:
        if force_refresh:
            raise RefreshFailed("token endpoint unreachable")
        return original(user_id, server_id)

    tokens.access_token = failing_refresh  # type: ignore[method-assign]
    crm.refuse_calls = True
    create_ticket(model)
    outcome = executor.run(1, [mcp_step(server_id=CRM)])
    assert outcome == error("Unexpected error during step execution")
    assert executor.steps_view(1) == []
    assert crm.answered("tools/call") == [401]


# --- stop -------------------------------------------------------------------------------------


def test_stop_closes_the_mcp_connections_and_their_thread(
    executor: Executor, model: FakeModel, tickets: FakeMcpServer
) -> None:
    create_ticket(model)
    summary(model)
    assert executor.run(1, [mcp_step()]) == SUCCESS
    assert any(t.name == "executor-mcp-client" for t in threading.enumerate())
    executor.runner.stop()
    assert not any(t.name == "executor-mcp-client" for t in threading.enumerate())


# --- GET /list-mcp-tools ----------------------------------------------------------------------


def list_tools(executor: Executor, query: str, user_id: int = 7) -> Any:
    return executor.client.get(f"/list-mcp-tools{query}", headers=auth_header(user_id))


def test_list_mcp_tools_lists_names_and_descriptions(executor: Executor) -> None:
    response = list_tools(executor, f"?mcpServerId={TICKETS}")
    assert response.status_code == 200
    assert response.headers["X-Executor-Version"]
    assert response.json["tools"][0] == {
        "name": "create_ticket",
        "description": "Create a support ticket and return it.",
    }
    assert [t["name"] for t in response.json["tools"]] == [
        "create_ticket",
        "search_tickets",
        "wait_for_agent",
        "close_ticket",
    ]


def test_list_mcp_tools_reaches_an_oauth2_server_with_the_caller_s_token(
    executor: Executor, tokens: TokenSource
) -> None:
    response = list_tools(executor, f"?mcpServerId={CRM}", user_id=12)
    assert response.status_code == 200
    assert tokens.asked == [(12, CRM, False)]


def test_list_mcp_tools_errors(executor: Executor, tokens: TokenSource) -> None:
    assert executor.client.get(f"/list-mcp-tools?mcpServerId={TICKETS}").status_code == 401
    missing = list_tools(executor, "")
    assert (missing.status_code, missing.json) == (
        400,
        {"error": 'Missing required query parameter "mcpServerId"'},
    )
    unknown = list_tools(executor, "?mcpServerId=77")
    assert (unknown.status_code, unknown.json) == (
        404,
        {"error": 'No MCP server is configured for id "77"'},
    )
    tokens.reauth = True
    reauth = list_tools(executor, f"?mcpServerId={CRM}")
    assert (reauth.status_code, reauth.json) == (
        409,
        {"awaitingInputReason": "needs-oauth-reauth", "mcpServerId": CRM},
    )


def test_list_mcp_tools_answers_503_when_the_server_cannot_be_reached(
    executor: Executor, tickets: FakeMcpServer
) -> None:
    tickets.status_override = 502
    response = list_tools(executor, f"?mcpServerId={TICKETS}")
    assert (response.status_code, response.json) == (
        503,
        {"error": "The MCP server could not be reached to list its tools"},
    )
