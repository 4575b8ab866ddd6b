"""``GET /list-mcp-tools``: an MCP server's tools, for the workflow designer (protocol §5.7)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from executor.domain.outcomes import NEEDS_OAUTH_REAUTH
from executor.http.errors import ApiError, register_error_handlers
from executor.http.route_docs import documented
from executor.http.runs import EXTENSION_KEY, add_version_header, limit_body_and_authenticate
from executor.mcp.tokens import ReauthNeeded
from executor.schemas.api import McpReauthSchema, McpToolListSchema

MAX_SERVER_ID_CHARS = 255

mcp_tools = Blueprint("mcp_tools", __name__)
mcp_tools.before_request(limit_body_and_authenticate)
mcp_tools.after_request(add_version_header)
register_error_handlers(mcp_tools)


@mcp_tools.get("/list-mcp-tools")
@documented(
    "The tools of an MCP server, for the workflow designer",
    response=McpToolListSchema,
    description="An OAuth2 server is reached with the caller's own stored credential.",
    parameters=(
        {
            "name": "mcpServerId",
            "in": "query",
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_SERVER_ID_CHARS},
        },
    ),
    errors={
        400: 'Missing required query parameter "mcpServerId"',
        404: 'No MCP server is configured for id "<id>"',
        503: "The MCP server could not be reached to list its tools, or the orchestrator could "
        "not be asked for the configurations",
    },
    extra_responses={
        409: {
            "description": "The caller's credential is missing or can no longer be refreshed",
            "content": {"application/json": {"schema": McpReauthSchema}},
        }
    },
    tags=("mcp",),
)
def list_mcp_tools() -> Response | tuple[Response, int]:
    server_id = request.args.get("mcpServerId", "")
    if not server_id:
        raise ApiError(400, 'Missing required query parameter "mcpServerId"')
    if len(server_id) > MAX_SERVER_ID_CHARS:
        raise ApiError(404, "No MCP server is configured for this id")
    servers = _executor().services.mcp
    if servers is None:
        raise ApiError(404, f'No MCP server is configured for id "{server_id}"')
    try:
        # The caller's own credential reaches an OAuth2 server: the user is the token's id.
        toolset = servers.load(server_id, g.executor_user_id)
    except ReauthNeeded:
        body = {"awaitingInputReason": NEEDS_OAUTH_REAUTH, "mcpServerId": server_id}
        return jsonify(body), 409
    if not toolset.configured:
        raise ApiError(404, f'No MCP server is configured for id "{server_id}"')
    if toolset.failures:
        raise ApiError(503, "The MCP server could not be reached to list its tools")
    return jsonify(
        {"tools": [{"name": t.name, "description": t.description} for t in toolset.tools]}
    )


def _executor() -> Any:
    return current_app.extensions[EXTENSION_KEY]
