"""The MCP tools of one step: its server's configuration, the user's access token, the tools
loaded over the network, and calls to them (protocol §10.2, §10.3, §7.7)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from executor.mcp.configs import McpServerConfig
from executor.mcp.tokens import AccessTokenSource, ReauthNeeded
from executor.mcp.tools import McpOperationError, McpTool

if TYPE_CHECKING:
    from executor.mcp.client import McpClient

log = logging.getLogger(__name__)

LIST_TIMEOUT_S = 15.0  # per server, protocol §10.2
DEFAULT_CALL_TIMEOUT_S = 300.0  # STEP_TIMEOUT_S's default


class McpConfigSource(Protocol):
    """Where the MCP server configurations come from (the orchestrator)."""

    def mcp_server_configs(self) -> list[McpServerConfig]: ...


@dataclass(frozen=True)
class LoadFailure:
    server: str
    kind: str
    error: str
    cause: str

    def as_log(self) -> dict[str, str]:
        return {"server": self.server, "kind": self.kind, "error": self.error, "cause": self.cause}


class McpToolset:
    """The tools one step may use, for one user, and the way to call them.

    The servers it holds already carry the user's bearer token (OAuth2 servers).
    """

    def __init__(
        self,
        owner: McpServers,
        mcp_server_id: str,
        user_id: int,
        servers: Sequence[McpServerConfig],
        tools: Sequence[McpTool],
        *,
        configured: bool = True,
        failures: Sequence[LoadFailure] = (),
    ) -> None:
        self._owner = owner
        self.mcp_server_id = mcp_server_id
        self.user_id = user_id
        self._servers = {s.name: s for s in servers}
        self.tools = list(tools)
        self.configured = configured  # False: the orchestrator advertises no server with the id
        self.failures = list(failures)  # servers that could not be loaded (logged)

    def find(self, name: str, source_id: str | None = None) -> McpTool | None:
        for tool in self.tools:
            if tool.name == name and (source_id is None or tool.source_id == source_id):
                return tool
        return None

    def uses_oauth(self, tool: McpTool) -> bool:
        """Whether ``tool``'s server is reached with the user's OAuth2 access token."""
        return self._servers[tool.source_id].oauth2

    def call(self, tool: McpTool, arguments: dict[str, Any]) -> Any:
        """Invoke ``tool``. Raises :class:`McpOperationError` (``is_auth`` for a 401)."""
        return self._owner.client.call_tool(
            self._servers[tool.source_id],
            tool.name,
            arguments,
            timeout_s=self._owner.call_timeout_s,
        )

    def reloaded(self) -> McpToolset:
        """The same scope loaded again with a freshly refreshed token (after a 401 on a call).
        Raises :class:`ReauthNeeded` when the token cannot be refreshed or is still refused."""
        return self._owner.load(self.mcp_server_id, self.user_id, force_refresh=True)


class McpServers:
    """Loads the tools of the server a step targets (protocol §10.2, §10.3)."""

    def __init__(
        self,
        configs: McpConfigSource,
        client: McpClient | None = None,
        tokens: AccessTokenSource | None = None,
        *,
        list_timeout_s: float = LIST_TIMEOUT_S,
        call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
    ) -> None:
        """``client``: the SDK client; by default one is made at the first MCP operation, so the
        SDK is only imported by executors that run MCP steps (see :mod:`executor.mcp.tools`)."""
        self._configs = configs
        self._client = client
        self._client_lock = threading.Lock()
        self._tokens = tokens
        self._list_timeout_s = list_timeout_s
        # A call may take as long as its step may: the step's deadline bounds it anyway.
        self.call_timeout_s = call_timeout_s

    @property
    def client(self) -> McpClient:
        with self._client_lock:
            if self._client is None:
                from executor.mcp.client import McpClient  # the SDK, imported on first use

                self._client = McpClient()
            return self._client

    def close(self) -> None:
        """Close every MCP connection (runner stop); a later load opens new ones."""
        with self._client_lock:
            client = self._client
        if client is not None:
            client.close()

    def load(self, mcp_server_id: str, user_id: int, *, force_refresh: bool = False) -> McpToolset:
        """The tools of the servers configured with this id (none when none is, or when every
        one failed to load: the failures are logged at Error).

        Raises :class:`ReauthNeeded` when an OAuth2 server needs the user to connect again, and
        :class:`executor.errors.WorkflowPortError` when the configurations cannot be fetched.
        """
        servers = self.scoped(mcp_server_id)
        if servers is None:
            return McpToolset(self, mcp_server_id, user_id, [], [], configured=False)
        reached, tools, failures = self._load(servers, mcp_server_id, user_id, force_refresh)
        if _token_refused(servers, failures):
            if force_refresh:
                raise ReauthNeeded(mcp_server_id)
            # A token the server refuses: refresh it once and load again (protocol §10.3).
            reached, tools, failures = self._load(servers, mcp_server_id, user_id, True)
            if _token_refused(servers, failures):
                raise ReauthNeeded(mcp_server_id)
        if failures:
            log.error(
                "MCP servers failed to load tools",
                extra={
                    "requestedMcpServerId": mcp_server_id,
                    "mcpServerName": servers[0].name,
                    "failures": [f.as_log() for f in failures],
                },
            )
        return McpToolset(self, mcp_server_id, user_id, reached, tools, failures=failures)

    def scoped(self, mcp_server_id: str) -> list[McpServerConfig] | None:
        """The configurations with this id, matched by id (not by name); ``None`` (logged) when
        there is none."""
        configs = self._configs.mcp_server_configs()
        if not configs:
            log.warning(
                "MCP step targets a server but orchestrator returned no MCP configs",
                extra={"requestedMcpServerId": mcp_server_id},
            )
            return None
        scoped = [c for c in configs if c.server_id == mcp_server_id]
        if not scoped:
            log.warning(
                "MCP step targets a server not advertised by the orchestrator",
                extra={
                    "requestedMcpServerId": mcp_server_id,
                    "availableMcpServerIds": sorted({c.server_id for c in configs}),
                },
            )
            return None
        return scoped

    def _load(
        self,
        servers: Sequence[McpServerConfig],
        mcp_server_id: str,
        user_id: int,
        force_refresh: bool,
    ) -> tuple[list[McpServerConfig], list[McpTool], list[LoadFailure]]:
        """The servers as called (with the user's bearer token for OAuth2 ones), their tools,
        and the servers that failed."""
        token: str | None = None
        if any(s.oauth2 for s in servers):
            if self._tokens is None:
                # Nothing can give this user a token: the server would refuse, which is re-auth.
                raise ReauthNeeded(mcp_server_id)
            token = self._tokens.access_token(user_id, mcp_server_id, force_refresh=force_refresh)
        reached = [s.with_bearer(token) if s.oauth2 and token else s for s in servers]
        tools, failures = self._list_all(reached)
        return reached, tools, failures

    def _list_all(
        self, servers: Sequence[McpServerConfig]
    ) -> tuple[list[McpTool], list[LoadFailure]]:
        tools: list[McpTool] = []
        failures: list[LoadFailure] = []
        for server in servers:
            try:
                tools.extend(self.client.list_tools(server, timeout_s=self._list_timeout_s))
            except McpOperationError as error:
                failures.append(LoadFailure(server.name, error.kind, str(error), error.cause))
        return tools, failures


def _token_refused(servers: Sequence[McpServerConfig], failures: Sequence[LoadFailure]) -> bool:
    oauth = {s.name for s in servers if s.oauth2}
    return any(f.kind == "auth" and f.server in oauth for f in failures)
