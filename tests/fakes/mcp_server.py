"""A real MCP server for the tests, built with the same SDK the executor uses, served over HTTP on
a loopback port (streamable HTTP at ``/mcp``, or SSE at ``/sse``) by uvicorn in a thread.

Tools: ``create_ticket`` (returns the new ticket), ``search_tickets`` (returns matches),
``wait_for_agent`` (blocks until ``release`` is set) and ``close_ticket``, which always fails.

With ``token_is_valid`` set, every request must carry ``Authorization: Bearer <token>`` with a
token the callable accepts, else it is answered 401 (the OAuth helper's fake token endpoint
exposes such an ``is_valid``; a set's ``__contains__`` does too). ``refuse_calls`` answers 401 to
every ``tools/call`` whatever the token (a server that keeps refusing a refreshed token);
``status_override`` answers that status to everything.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import uvicorn
from mcp.server.mcpserver import MCPServer


@dataclass(frozen=True)
class ToolCallSeen:
    name: str
    arguments: dict[str, Any]


class FakeMcpServer:
    def __init__(
        self,
        *,
        transport: Literal["http", "sse"] = "http",
        token_is_valid: Callable[[str], bool] | None = None,
        tools: bool = True,
    ) -> None:
        self.transport = transport
        self.token_is_valid = token_is_valid
        self.refuse_calls = False
        self.status_override: int | None = None
        self.calls: list[ToolCallSeen] = []  # tool invocations that reached a tool
        self.methods: list[tuple[str, int]] = []  # (JSON-RPC method, status answered)
        self.release = threading.Event()  # lets wait_for_agent return
        self._lock = threading.Lock()
        self._mcp = MCPServer("tickets")
        if tools:
            self._add_tools()
        starlette = self._mcp.streamable_http_app() if transport == "http" else self._mcp.sse_app()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            self._guard(starlette),
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name="fake-mcp-server",
            daemon=True,
        )

    @property
    def url(self) -> str:
        path = "/mcp" if self.transport == "http" else "/sse"
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> FakeMcpServer:
        self._thread.start()
        while not self._server.started:  # startup takes a few event-loop turns
            self._thread.join(0.01)
            if not self._thread.is_alive():
                raise RuntimeError("The fake MCP server did not start")
        return self

    def stop(self) -> None:
        self.release.set()
        self._server.should_exit = True
        self._thread.join(10)
        self._socket.close()

    def __enter__(self) -> FakeMcpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call_names(self) -> list[str]:
        with self._lock:
            return [c.name for c in self.calls]

    def answered(self, method: str) -> list[int]:
        """The statuses answered to requests of one JSON-RPC method."""
        with self._lock:
            return [status for m, status in self.methods if m == method]

    # --- tools ----------------------------------------------------------------------------------

    def _add_tools(self) -> None:
        def seen(name: str, **arguments: Any) -> None:
            with self._lock:
                self.calls.append(ToolCallSeen(name, arguments))

        @self._mcp.tool()
        def create_ticket(title: str, priority: int = 1) -> str:
            """Create a support ticket and return it."""
            seen("create_ticket", title=title, priority=priority)
            return json.dumps({"id": 42, "title": title, "priority": priority})

        @self._mcp.tool()
        def search_tickets(query: str) -> str:
            """Search support tickets by text."""
            seen("search_tickets", query=query)
            return json.dumps([{"id": 7, "title": f"About {query}"}])

        @self._mcp.tool()
        def wait_for_agent(ticket_id: int) -> str:
            """Wait until a human agent picks the ticket up (until ``release`` is set)."""
            seen("wait_for_agent", ticket_id=ticket_id)
            self.release.wait(30)
            return "picked up"

        @self._mcp.tool()
        def close_ticket(ticket_id: int) -> str:
            """Close a ticket (this server cannot: it always fails)."""
            seen("close_ticket", ticket_id=ticket_id)
            raise RuntimeError("the ticket store is read-only")

    # --- the HTTP guard -------------------------------------------------------------------------

    def _guard(self, app: Any) -> Any:
        """Answers 401 (or ``status_override``) before the MCP app sees a request."""

        async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            body, replay = await _buffered(receive)
            method = _rpc_method(body)
            status = self._refusal(scope, method)
            with self._lock:
                self.methods.append((method, status or 200))
            if status is not None:
                await send(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": b'{"error":"refused"}'})
                return
            await app(scope, replay, send)

        return asgi

    def _refusal(self, scope: dict[str, Any], method: str) -> int | None:
        if self.status_override is not None:
            return self.status_override
        if self.refuse_calls and method == "tools/call":
            return 401
        if self.token_is_valid is None:
            return None
        headers = dict(scope["headers"])
        scheme, _, token = headers.get(b"authorization", b"").decode().partition(" ")
        if scheme.lower() != "bearer" or not self.token_is_valid(token):
            return 401
        return None


async def _buffered(receive: Any) -> tuple[bytes, Any]:
    """Read the request body, and a ``receive`` that hands it over again to the app."""
    chunks: list[bytes] = []
    messages: list[dict[str, Any]] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break

    async def replay() -> Any:
        if messages:
            return messages.pop(0)
        return await receive()

    return b"".join(chunks), replay


def _rpc_method(body: bytes) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        return ""
    return str(parsed.get("method", "")) if isinstance(parsed, dict) else ""
