"""A small JSON-over-HTTP client shared by the adapters: timeouts, bounded bodies, retries."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_chain,
    wait_fixed,
)

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 16 * 1024 * 1024
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
PROTOCOL_RETRY_DELAYS_S = (0.1, 0.5, 2.0)  # protocol §3.2: 4 attempts in all

T = TypeVar("T")


class HttpError(Exception):
    """A failed call: ``status`` is the HTTP status (408 for a timeout, None without a response);
    ``body`` is the answer's body, for callers that must look into it."""

    def __init__(self, message: str, *, status: int | None = None, body: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.body = body

    @property
    def detail(self) -> str:
        """The server's own message (``errors[0].detail``) when it sent one."""
        try:
            return str(json.loads(self.body)["errors"][0]["detail"])[:200]
        except Exception:
            return "(no detail)"


class JsonHttpClient:
    """JSON requests to one base URL through a pooled ``httpx.Client``."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float,
        retry_delays_s: tuple[float, ...] = PROTOCOL_RETRY_DELAYS_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"content-type": "application/json", **(headers or {})},
            timeout=timeout_s,
            transport=transport,
        )
        self._retry_delays_s = retry_delays_s

    def request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        retry_on: Collection[int] = (),
        timeout_s: float | None = None,
    ) -> Any:
        """Send and return the parsed JSON answer (``None`` for an empty body).

        Failures whose status is in ``retry_on`` are retried on the protocol's schedule, each
        retry logged as a warning. Raises :class:`HttpError`.
        """

        def attempt() -> Any:
            return self._send(method, path, json_body, params, headers, timeout_s)

        if not retry_on:
            return attempt()
        return self._with_retries(attempt, operation, frozenset(retry_on))

    def close(self) -> None:
        self._client.close()

    def _with_retries(
        self, attempt: Callable[[], T], operation: str, statuses: frozenset[int]
    ) -> T:
        def warn(state: RetryCallState) -> None:
            log.warning('"%s" failed, retrying', operation)

        retrying = Retrying(
            stop=stop_after_attempt(len(self._retry_delays_s) + 1),
            wait=wait_chain(*(wait_fixed(d) for d in self._retry_delays_s)),
            retry=retry_if_exception(
                lambda error: isinstance(error, HttpError) and error.status in statuses
            ),
            before_sleep=warn,
            reraise=True,
        )
        return retrying(attempt)

    def _send(
        self,
        method: str,
        path: str,
        json_body: Any,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        timeout_s: float | None,
    ) -> Any:
        extra: dict[str, Any] = {} if timeout_s is None else {"timeout": timeout_s}
        try:
            with self._client.stream(
                method, path, json=json_body, params=params, headers=headers, **extra
            ) as response:
                body = _read_bounded(response)
        except httpx.TimeoutException as error:
            raise HttpError(f"{method} {path} timed out", status=408) from error
        except httpx.HTTPError as error:
            raise HttpError(f"{method} {path} failed: {error}") from error
        if not response.is_success:
            failure = HttpError(
                f"{method} {path} answered {response.status_code}",
                status=response.status_code,
                body=body,
            )
            raise HttpError(f"{failure} {failure.detail}", status=failure.status, body=body)
        if not body.strip():
            return None
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as error:  # RecursionError: nested beyond reason
            raise HttpError(f"{method} {path} answered invalid JSON", body=body) from error


def _read_bounded(response: httpx.Response) -> bytes:
    """Read the body, refusing one larger than any sane answer."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise HttpError(
                f"{response.request.method} {response.request.url.path} answered more than "
                f"{MAX_RESPONSE_BYTES} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)
