"""Talking to remote MCP servers with the official MCP SDK (protocol §10.2).

The SDK is asyncio; the executor runs each step in a thread of its own. One event loop, on one
named thread, serves every MCP operation of the process: a step thread submits a coroutine and
waits for it under a deadline. Each operation opens its own connection (handshake, request,
close), so a connection never outlives the operation that needed it, and two steps never share
one. ``close()`` cancels whatever is still running and joins the thread (runner stop).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import anyio
import httpx2
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent

from executor.mcp.configs import McpServerConfig, Transport
from executor.mcp.tools import FailureKind, McpOperationError, McpTool

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_TOOL_PAGES = 50  # a tools/list paginated beyond reason is cut, not followed forever
_JOIN_SLACK_S = 2.0  # the loop's own deadline fires first; this only guards a stuck loop


class McpClient:
    """Lists and calls the tools of remote MCP servers (streamable HTTP and SSE)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._futures: set[concurrent.futures.Future[Any]] = set()

    # --- operations -----------------------------------------------------------------------------

    def list_tools(self, server: McpServerConfig, *, timeout_s: float) -> list[McpTool]:
        """Every tool of ``server`` (all pages). Raises :class:`McpOperationError`."""

        async def operation(session: Client) -> list[McpTool]:
            tools: list[McpTool] = []
            cursor: str | None = None
            for _ in range(MAX_TOOL_PAGES):
                page = await session.list_tools(cursor=cursor, cache_mode="bypass")
                tools.extend(
                    McpTool(t.name, t.description or "", dict(t.input_schema), server.name)
                    for t in page.tools
                )
                cursor = page.next_cursor
                if not cursor:
                    break
            return tools

        return self._run(server, operation, timeout_s, what="tools/list")

    def call_tool(
        self, server: McpServerConfig, name: str, arguments: dict[str, Any], *, timeout_s: float
    ) -> Any:
        """Call ``name`` and return its result as JSON-ready data. A result the tool itself marks
        as an error is a failure too. Raises :class:`McpOperationError`."""

        async def operation(session: Client) -> CallToolResult:
            return await session.call_tool(name, arguments)

        result = self._run(server, operation, timeout_s, what="tools/call")
        if result.is_error:
            text = _text_of(result)
            kind: FailureKind = "auth" if "unauthorized" in text.lower() else "unknown"
            raise McpOperationError(
                f"Tool {name} of {server.name} reported an error", kind=kind, cause=text[:500]
            )
        return tool_result_data(result)

    def close(self) -> None:
        """Cancel running operations, stop the loop and join its thread. A later operation
        starts a new loop (a stopped runner may be started again)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
            futures = list(self._futures)
        for future in futures:
            future.cancel()
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        if thread.is_alive():
            log.error("MCP client thread did not stop")
            return
        loop.close()

    # --- machinery ------------------------------------------------------------------------------

    def _run(
        self,
        server: McpServerConfig,
        operation: Callable[[Client], Awaitable[T]],
        timeout_s: float,
        *,
        what: str,
    ) -> T:
        statuses: list[int] = []

        async def bounded() -> T:
            with anyio.fail_after(timeout_s):
                async with _session(server, statuses, timeout_s) as session:
                    return await operation(session)

        future = self._submit(bounded())
        try:
            return future.result(timeout=timeout_s + _JOIN_SLACK_S)
        except concurrent.futures.TimeoutError as error:
            future.cancel()
            raise _classified(server, what, TimeoutError(what), statuses) from error
        except concurrent.futures.CancelledError as error:
            raise McpOperationError(
                f"{what} on {server.name} cancelled: the executor is stopping",
                kind="connection",
                cause="cancelled",
            ) from error
        except Exception as error:
            raise _classified(server, what, error, statuses) from error
        finally:
            with self._lock:
                self._futures.discard(future)

    def _submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=_serve, args=(loop,), name="executor-mcp-client", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
            self._futures.add(future)
        return future


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        # Give cancelled operations the chance to close their connections.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=5))
        loop.run_until_complete(loop.shutdown_asyncgens())


@asynccontextmanager
async def _session(
    server: McpServerConfig, statuses: list[int], timeout_s: float
) -> AsyncIterator[Client]:
    """A connected, initialized session; HTTP statuses seen on the way are recorded (the SDK
    turns a 401 into a generic JSON-RPC error, and the status is what classifies it)."""

    async def record(response: httpx2.Response) -> None:
        statuses.append(response.status_code)

    def http_client(
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
    ) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            headers={**(headers or {}), **server.headers},
            timeout=timeout or httpx2.Timeout(timeout_s),
            auth=auth,
            event_hooks={"response": [record]},
        )

    transport: AbstractAsyncContextManager[Any]
    if server.transport is Transport.SSE:
        transport = sse_client(
            server.url,
            timeout=timeout_s,
            sse_read_timeout=timeout_s,
            httpx_client_factory=http_client,
        )
        async with Client(transport, cache=None) as session:
            yield session
        return
    async with http_client() as client:
        transport = streamable_http_client(server.url, http_client=client)
        async with Client(transport, cache=None) as session:
            yield session


def _classified(
    server: McpServerConfig, what: str, error: BaseException, statuses: list[int]
) -> McpOperationError:
    causes = list(_chain(error))
    # The SDK's task groups wrap the real cause in groups and cancellations: keep what says why.
    telling = dict.fromkeys(
        f"{type(c).__name__}: {c}" if str(c) else type(c).__name__
        for c in causes
        if not isinstance(c, BaseExceptionGroup | asyncio.CancelledError | anyio.WouldBlock)
    )
    text = "; ".join(telling)[:500]
    kind: FailureKind
    if 401 in statuses or any("unauthorized" in str(c).lower() for c in causes):
        kind = "auth"
    elif any(
        isinstance(c, TimeoutError | OSError | httpx2.TransportError) for c in causes
    ) and not any(s >= 400 for s in statuses):
        kind = "connection"
    else:
        kind = "unknown"  # 403 included, as the protocol says
    status = f" (HTTP {statuses[-1]})" if statuses and statuses[-1] >= 400 else ""
    return McpOperationError(f"{what} on {server.name} failed{status}", kind=kind, cause=text)


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error, the errors grouped in it, and their causes (each once)."""
    seen: set[int] = set()
    stack = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                stack.append(linked)


def _text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def tool_result_data(result: CallToolResult) -> Any:
    """What is stored as ``toolResult``: the structured content when the tool gave one, else its
    text (all-text results, the usual case), else the content blocks as JSON."""
    if result.structured_content is not None:
        return result.structured_content
    if all(isinstance(c, TextContent) for c in result.content):
        return _text_of(result)
    return [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in result.content]
