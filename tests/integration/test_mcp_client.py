"""The MCP client and the configuration client over real sockets."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from executor.adapters.orchestrator import OrchestratorClient
from executor.errors import WorkflowPortError
from executor.mcp.client import McpClient
from executor.mcp.configs import McpServerConfig, Transport
from executor.mcp.tools import McpOperationError
from tests.fakes.mcp_server import FakeMcpServer
from tests.fakes.orchestrator import ENV_SECRET, FakeOrchestrator
from tests.processes import REPO
from tests.waiting import eventually

CONFIGS = "/liana/mcp-server-configs-with-details"
FAST = (0.01, 0.01, 0.01)


@pytest.fixture
def client() -> Iterator[McpClient]:
    client = McpClient()
    yield client
    client.close()


def server_config(server: FakeMcpServer) -> McpServerConfig:
    return McpServerConfig("tickets", "39", Transport(server.transport), server.url)


def mcp_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "executor-mcp-client"]


# --- the configuration client -----------------------------------------------------------------


def test_configs_are_fetched_with_the_environment_secret(orchestrator: FakeOrchestrator) -> None:
    orchestrator.mcp_server_configs = {"crm": {"id": "39", "type": "http", "url": "http://h/mcp"}}
    configs = OrchestratorClient(orchestrator.url, ENV_SECRET, retry_delays_s=FAST)
    [server] = configs.mcp_server_configs()
    assert (server.name, server.server_id) == ("crm", "39")
    [request] = [r for r in orchestrator.requests if r.path == CONFIGS]
    assert request.headers["Forest-Secret-Key"] == ENV_SECRET
    configs.close()


def test_config_fetches_are_retried_on_transient_failures(orchestrator: FakeOrchestrator) -> None:
    orchestrator.fail(CONFIGS, 503, times=3)
    configs = OrchestratorClient(orchestrator.url, ENV_SECRET, retry_delays_s=FAST)
    assert configs.mcp_server_configs() == []
    assert orchestrator.count(CONFIGS) == 4
    configs.close()


@pytest.mark.parametrize("answer_status", [401, 404])
def test_config_fetch_failures_are_workflow_port_errors(
    orchestrator: FakeOrchestrator, answer_status: int
) -> None:
    orchestrator.fail(CONFIGS, answer_status)
    configs = OrchestratorClient(orchestrator.url, ENV_SECRET, retry_delays_s=FAST)
    with pytest.raises(WorkflowPortError):
        configs.mcp_server_configs()
    assert orchestrator.count(CONFIGS) == 1
    configs.close()


def test_a_config_answer_that_is_not_an_object_is_a_workflow_port_error(
    orchestrator: FakeOrchestrator,
) -> None:
    orchestrator.mcp_server_configs = ["nope"]  # type: ignore[assignment]
    configs = OrchestratorClient(orchestrator.url, ENV_SECRET, retry_delays_s=FAST)
    with pytest.raises(WorkflowPortError):
        configs.mcp_server_configs()
    configs.close()


# --- the MCP client ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["http", "sse"])
def test_tools_are_listed_and_called_over_both_transports(
    client: McpClient, transport: str
) -> None:
    with FakeMcpServer(transport=transport) as server:  # type: ignore[arg-type]
        config = server_config(server)
        tools = client.list_tools(config, timeout_s=5)
        assert [t.name for t in tools][:2] == ["create_ticket", "search_tickets"]
        assert {t.source_id for t in tools} == {"tickets"}
        result = client.call_tool(config, "search_tickets", {"query": "late"}, timeout_s=5)
        assert result == {"result": '[{"id": 7, "title": "About late"}]'}
        with pytest.raises(McpOperationError) as failed:
            client.call_tool(config, "close_ticket", {"ticket_id": 1}, timeout_s=5)
        assert failed.value.kind == "unknown"


def test_configured_headers_are_sent(client: McpClient) -> None:
    with FakeMcpServer(token_is_valid={"static-key"}.__contains__) as server:
        config = McpServerConfig(
            "t", "39", Transport.STREAMABLE_HTTP, server.url, {"Authorization": "Bearer static-key"}
        )
        assert client.list_tools(config, timeout_s=5)


def test_a_call_outliving_its_timeout_is_a_connection_failure(client: McpClient) -> None:
    with FakeMcpServer() as server:
        started = time.monotonic()
        with pytest.raises(McpOperationError) as failed:
            client.call_tool(server_config(server), "wait_for_agent", {"ticket_id": 1}, timeout_s=1)
        assert failed.value.kind == "connection"
        assert time.monotonic() - started < 5


def test_close_cancels_running_calls_and_joins_the_loop_thread() -> None:
    client = McpClient()
    with FakeMcpServer() as server:
        failures: list[McpOperationError] = []

        def call() -> None:
            try:
                client.call_tool(
                    server_config(server), "wait_for_agent", {"ticket_id": 1}, timeout_s=20
                )
            except McpOperationError as error:
                failures.append(error)

        caller = threading.Thread(target=call)
        caller.start()
        assert eventually(lambda: server.call_names() == ["wait_for_agent"])
        started = time.monotonic()
        client.close()
        caller.join(10)
        assert not caller.is_alive()
        assert time.monotonic() - started < 5
        assert [f.kind for f in failures] == ["connection"]
        assert mcp_threads() == []
        # A closed client starts a new loop for the next operation (a runner may start again).
        assert client.list_tools(server_config(server), timeout_s=5)
        client.close()
        assert mcp_threads() == []


def test_the_sdk_is_imported_only_when_an_mcp_operation_runs(tmp_path: Any) -> None:
    """The MCP SDK costs about 28 MiB once imported: an executor without MCP steps never pays."""
    script = """
import sys
from executor import create_app
from executor.extension import executor_state
app = create_app({
    "FOREST_ENV_SECRET": "ab" * 32, "FOREST_AUTH_SECRET": "secret",
    "AGENT_URL": "http://127.0.0.1:9", "IN_MEMORY_STORE": True,
})
assert "mcp" not in sys.modules, "imported by create_app"
servers = executor_state(app).services.mcp
servers.client  # the first MCP operation makes the client
assert "mcp" in sys.modules
servers.close()
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "EXECUTOR_INSTANCE_PATH": str(tmp_path)},
    )
    assert result.stdout.strip() == "ok", result.stderr
