"""The orchestrator's MCP server configurations (protocol §3.3.7), fetched per use."""

from __future__ import annotations

from marshmallow import ValidationError

from executor.adapters.http import (
    PROTOCOL_RETRY_DELAYS_S,
    TRANSIENT_STATUSES,
    HttpError,
    JsonHttpClient,
)
from executor.adapters.orchestrator import REQUEST_TIMEOUT_S
from executor.errors import WorkflowPortError
from executor.mcp.configs import McpServerConfig
from executor.schemas.mcp import parse_server_configs

CONFIGS_PATH = "/liana/mcp-server-configs-with-details"


class McpConfigClient:
    """``GET {FOREST_SERVER_URL}/liana/mcp-server-configs-with-details`` with the environment
    secret, retried like the other retried orchestrator calls.

    Not cached: a server added, removed or re-pointed in Forest Admin applies to the next step.
    """

    def __init__(
        self,
        base_url: str,
        env_secret: str,
        *,
        timeout_s: float = REQUEST_TIMEOUT_S,
        retry_delays_s: tuple[float, ...] = PROTOCOL_RETRY_DELAYS_S,
    ) -> None:
        self._http = JsonHttpClient(
            base_url,
            headers={"forest-secret-key": env_secret},
            timeout_s=timeout_s,
            retry_delays_s=retry_delays_s,
        )

    def server_configs(self) -> list[McpServerConfig]:
        """The usable remote servers; raises :class:`WorkflowPortError`."""
        try:
            payload = self._http.request(
                "GET",
                CONFIGS_PATH,
                operation="mcp-server-configs-with-details",
                retry_on=TRANSIENT_STATUSES,
            )
        except HttpError as error:
            raise WorkflowPortError(str(error), status=error.status) from error
        try:
            return parse_server_configs({} if payload is None else payload)
        except ValidationError as error:
            raise WorkflowPortError(f"Invalid MCP server configurations: {error}") from error

    def close(self) -> None:
        self._http.close()
