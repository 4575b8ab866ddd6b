"""MCP steps with the real OAuth credential code: a user deposits a credential through the API,
the executor refreshes access tokens from it at a real token endpoint, and the MCP server (built
with the SDK) accepts only the tokens that endpoint issued."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask

from executor.adapters.ai.openai import ForestProxyModel
from executor.adapters.orchestrator import OrchestratorClient
from executor.adapters.stores.memory_credentials import MemoryMcpCredentialStore
from executor.extension import runner_of
from executor.mcp.client import McpClient
from executor.mcp.credentials import McpCredentials
from executor.mcp.servers import McpServers
from executor.mcp.tokens import McpAccessTokens
from tests.conftest import auth_header, services_for
from tests.drivers import Executor
from tests.fakes.mcp_server import FakeMcpServer
from tests.fakes.model import FakeModel
from tests.fakes.oauth import FakeOAuthServer
from tests.fakes.orchestrator import ENV_SECRET, FakeOrchestrator
from tests.integration.test_mcp_steps import REAUTH, SUCCESS, create_ticket, mcp_step, summary

CRM = "40"
USER = 7  # the user the driver triggers runs as
KEY = "an encryption key for the tests, long enough"


@pytest.fixture
def oauth() -> Iterator[FakeOAuthServer]:
    with FakeOAuthServer(rotate=True) as server:
        yield server


@pytest.fixture
def crm(oauth: FakeOAuthServer) -> Iterator[FakeMcpServer]:
    with FakeMcpServer(token_is_valid=oauth.is_valid) as server:
        yield server


@pytest.fixture
def executor(
    make_app: Callable[..., Flask],
    orchestrator: FakeOrchestrator,
    model: FakeModel,
    crm: FakeMcpServer,
) -> Iterator[Executor]:
    orchestrator.model = model
    orchestrator.mcp_server_configs = {
        "crm": {"id": CRM, "type": "http", "url": crm.url, "authType": "oauth2"}
    }
    # Loopback token endpoints over http are allowed in the test environment only.
    credentials = McpCredentials(MemoryMcpCredentialStore(), encryption_key=KEY, environment="test")
    tokens = McpAccessTokens(credentials)
    servers = McpServers(
        OrchestratorClient(orchestrator.url, ENV_SECRET, retry_delays_s=(0.01,) * 3),
        McpClient(),
        tokens,
        list_timeout_s=3,
        call_timeout_s=5,
    )
    services = replace(
        services_for(orchestrator),
        ai_models={"default": ForestProxyModel(orchestrator.url, ENV_SECRET, invoke_timeout_s=2)},
        mcp_credentials=credentials,
        mcp_tokens=tokens,
        mcp=servers,
    )
    app = make_app(services=services, POLLING_ENABLED=False)
    runner_of(app).start()
    yield Executor(app, orchestrator)
    runner_of(app).stop()


def deposit(executor: Executor, oauth: FakeOAuthServer) -> Any:
    body = {
        "mcpServerId": CRM,
        "refreshToken": oauth.issue_refresh_token(),
        "tokenEndpoint": oauth.token_endpoint,
    }
    return executor.client.post(
        "/mcp-oauth-credentials",
        data=json.dumps(body),
        headers={**auth_header(USER), "Content-Type": "application/json"},
    )


def test_a_deposited_credential_lets_the_step_call_the_tool(
    executor: Executor, oauth: FakeOAuthServer, crm: FakeMcpServer, model: FakeModel
) -> None:
    assert deposit(executor, oauth).get_json() == {"stored": True}

    create_ticket(model)
    summary(model)
    assert executor.run(1, [mcp_step(server_id=CRM)]) == SUCCESS
    assert crm.call_names() == ["create_ticket"]
    assert len(oauth.refresh_requests) == 1  # one refresh; tools/list and tools/call share it
    assert executor.entry(1)["executionResult"]["success"] is True

    tools = executor.client.get(f"/list-mcp-tools?mcpServerId={CRM}", headers=auth_header(USER))
    assert tools.status_code == 200
    assert "create_ticket" in [t["name"] for t in tools.get_json()["tools"]]
    assert len(oauth.refresh_requests) == 1  # the cached access token again


def test_an_expired_token_is_refreshed_once_and_the_call_retried(
    executor: Executor, oauth: FakeOAuthServer, crm: FakeMcpServer, model: FakeModel
) -> None:
    deposit(executor, oauth)
    create_ticket(model)
    summary(model)
    assert executor.run(1, [mcp_step(server_id=CRM)]) == SUCCESS

    oauth.expire_access_tokens()  # the cached token is now refused: 401, refresh, retry
    create_ticket(model, title="Second")
    summary(model)
    assert executor.run(2, [mcp_step(server_id=CRM)]) == SUCCESS
    assert crm.call_names() == ["create_ticket", "create_ticket"]
    assert len(oauth.refresh_requests) == 2


def test_a_revoked_credential_pauses_the_step_for_reauthentication(
    executor: Executor, oauth: FakeOAuthServer, crm: FakeMcpServer, model: FakeModel
) -> None:
    deposit(executor, oauth)
    create_ticket(model)
    summary(model)
    assert executor.run(1, [mcp_step(server_id=CRM)]) == SUCCESS

    oauth.revoke_all()  # access and refresh tokens alike: the user must reconnect
    create_ticket(model)
    assert executor.run(2, [mcp_step(server_id=CRM)]) == REAUTH
    assert crm.call_names() == ["create_ticket"]  # the second call never reached the tool
    assert executor.steps_view(2) == []  # no write-ahead mark left behind

    listing = executor.client.get(f"/list-mcp-tools?mcpServerId={CRM}", headers=auth_header(USER))
    assert (listing.status_code, listing.get_json()) == (
        409,
        {"awaitingInputReason": "needs-oauth-reauth", "mcpServerId": CRM},
    )

    assert deposit(executor, oauth).status_code == 200  # the user reconnects
    create_ticket(model)
    summary(model)
    assert executor.trigger(2) == SUCCESS
    assert crm.call_names() == ["create_ticket", "create_ticket"]


def test_without_a_credential_the_step_asks_the_user_to_connect(
    executor: Executor, model: FakeModel, crm: FakeMcpServer
) -> None:
    create_ticket(model)
    assert executor.run(1, [mcp_step(server_id=CRM)]) == REAUTH
    assert crm.call_names() == []
