"""The orchestrator's MCP server configurations, validated (protocol §3.3.7, §10.1)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from marshmallow import ValidationError

from executor.mcp.configs import McpServerConfig, Transport
from executor.schemas.mcp import parse_server_configs


def test_http_and_sse_servers_are_kept_in_order_with_their_headers() -> None:
    configs = parse_server_configs(
        {
            "acme-crm": {
                "id": "39",
                "type": "http",
                "url": "https://mcp.acme.example/mcp",
                "authType": "oauth2",
                "unknownKey": True,
            },
            "search": {
                "id": 40,
                "type": "sse",
                "url": "http://10.0.0.5:8000/sse",
                "headers": {"X-Api-Key": "k"},
            },
        }
    )
    assert configs == [
        McpServerConfig(
            "acme-crm",
            "39",
            Transport.STREAMABLE_HTTP,
            "https://mcp.acme.example/mcp",
            {},
            oauth2=True,
        ),
        McpServerConfig(
            "search", "40", Transport.SSE, "http://10.0.0.5:8000/sse", {"X-Api-Key": "k"}
        ),
    ]


@pytest.mark.parametrize(
    "config",
    [
        {"id": "1", "type": "stdio", "command": "npx", "args": ["server"]},
        {"id": "1", "command": "/bin/sh"},
        {"id": "1", "isForestConnector": True, "integrationName": "Zendesk", "config": {}},
        "not an object",
        {"id": "1", "type": "http", "url": "file:///etc/passwd"},
        {"id": "1", "type": "http", "url": "/relative/mcp"},
        {"id": "1", "type": "websocket", "url": "http://h/mcp"},
        {"id": "", "type": "http", "url": "http://h/mcp"},
        {"type": "http", "url": "http://h/mcp"},
        {"id": "1", "type": "http", "url": "http://h/mcp", "headers": {"X": 1}},
        {"id": True, "type": "http", "url": "http://h/mcp"},
    ],
    ids=[
        "stdio",
        "command-without-type",
        "forest-connector",
        "not-an-object",
        "file-url",
        "relative-url",
        "unknown-transport",
        "empty-id",
        "no-id",
        "non-string-header",
        "boolean-id",
    ],
)
def test_unusable_configurations_are_skipped_with_a_logged_reason(
    config: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        assert parse_server_configs({"bad": config}) == []
    [record] = [r for r in caplog.records if r.getMessage().startswith("MCP server configuration")]
    assert record.mcp_server == "bad"  # type: ignore[attr-defined]


def test_a_skipped_configuration_never_logs_its_headers(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        parse_server_configs(
            {"bad": {"id": "1", "type": "http", "url": "nope", "headers": {"A": "s3cr3t"}}}
        )
    assert "s3cr3t" not in caplog.text


def test_a_non_object_answer_is_invalid() -> None:
    with pytest.raises(ValidationError):
        parse_server_configs(["not", "a", "map"])


def test_the_user_s_bearer_replaces_a_configured_authorization() -> None:
    server = McpServerConfig(
        "crm", "39", Transport.STREAMABLE_HTTP, "https://h/mcp", {"authorization": "x", "A": "b"}
    )
    assert server.with_bearer("tok").headers == {"A": "b", "Authorization": "Bearer tok"}
