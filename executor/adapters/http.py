"""A small JSON-over-HTTP client shared by the adapters: timeouts, bounded bodies, retries."""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar
from urllib.parse import unquote, urlencode, urlsplit
from urllib.request import getproxies, proxy_bypass

import certifi
import urllib3
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_chain,
    wait_fixed,
)

from executor.errors import ConfigurationError

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 16 * 1024 * 1024
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
PROTOCOL_RETRY_DELAYS_S = (0.1, 0.5, 2.0)  # protocol §3.2: 4 attempts in all
POOLED_CONNECTIONS = 32  # per host; above MAX_CONCURRENT_RUNS' default with the background marks

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
    """JSON requests to one base URL through a pool of keep-alive connections.

    Built on urllib3: it costs less than half the CPU per call of the client this project used
    first (httpx), and a step makes several calls (see the README's benchmarks). Redirects are
    never followed. ``HTTP(S)_PROXY`` and ``NO_PROXY`` are honoured, as most HTTP clients do.
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float,
        retry_delays_s: tuple[float, ...] = PROTOCOL_RETRY_DELAYS_S,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {"content-type": "application/json", **(headers or {})}
        self._timeout_s = timeout_s
        self._pool = connection_pool(self._base_url)
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
        self._pool.clear()

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
        url = f"{self._base_url}{path}"
        if params:
            url = f"{url}?{urlencode(params)}"
        body = None if json_body is None else _encode(json_body)
        seconds = self._timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + seconds
        try:
            response = self._pool.request(
                method,
                url,
                body=body,
                headers={**self._headers, **headers} if headers else self._headers,
                timeout=urllib3.Timeout(connect=seconds, read=seconds),
                preload_content=False,
                redirect=False,
                retries=False,
            )
            try:
                payload = read_body(response, max_bytes=MAX_RESPONSE_BYTES, deadline=deadline)
            except BodyTooLarge:
                raise HttpError(
                    f"{method} {path} answered more than {MAX_RESPONSE_BYTES} bytes"
                ) from None
            except DeadlinePassed:
                raise HttpError(f"{method} {path} timed out", status=408) from None
            finally:
                response.release_conn()
        except urllib3.exceptions.NewConnectionError as error:
            # Checked first: urllib3 derives it from its connect *timeout* error, for history.
            raise HttpError(f"{method} {path} failed: {_reason(error)}") from error
        except urllib3.exceptions.TimeoutError as error:
            raise HttpError(f"{method} {path} timed out", status=408) from error
        except urllib3.exceptions.HTTPError as error:
            raise HttpError(f"{method} {path} failed: {_reason(error)}") from error
        if not 200 <= response.status < 300:
            failure = HttpError(
                f"{method} {path} answered {response.status}", status=response.status, body=payload
            )
            raise HttpError(f"{failure} {failure.detail}", status=failure.status, body=payload)
        if not payload.strip():
            return None
        try:
            return json.loads(payload)
        except (ValueError, RecursionError) as error:  # RecursionError: nested beyond reason
            raise HttpError(f"{method} {path} answered invalid JSON", body=payload) from error


def connection_pool(base_url: str) -> urllib3.PoolManager:
    """Connections for ``base_url``'s host, through the environment's proxy unless bypassed.

    Loopback hosts are never proxied (a local agent or sandbox is reached directly). Raises
    :class:`executor.errors.ConfigurationError` for a proxy URL urllib3 cannot use.
    """
    options: dict[str, Any] = {
        # Threads beyond this many open a connection each and close it afterwards.
        "maxsize": POOLED_CONNECTIONS,
        "block": False,
        "ca_certs": certifi.where(),  # the same trust store on every machine
    }
    split = urlsplit(base_url)
    host = split.hostname or ""
    proxy = getproxies().get(split.scheme)
    if not proxy or proxy_bypass(host) or _is_loopback(host):
        return urllib3.PoolManager(**options)
    if "://" not in proxy:
        proxy = f"http://{proxy}"  # "proxy.corp:3128", as curl and requests accept it
    proxy_url = urlsplit(proxy)
    if proxy_url.username is not None:
        # urllib3 does not turn the URL's credentials into Proxy-Authorization by itself.
        credentials = f"{unquote(proxy_url.username)}:{unquote(proxy_url.password or '')}"
        options["proxy_headers"] = urllib3.make_headers(proxy_basic_auth=credentials)
        proxy = proxy_url._replace(netloc=proxy_url.netloc.rsplit("@", 1)[1]).geturl()
    try:
        return urllib3.ProxyManager(proxy, **options)
    except urllib3.exceptions.ProxySchemeUnknown:
        raise ConfigurationError(
            f"{split.scheme.upper()}_PROXY: only http:// and https:// proxies are supported"
        ) from None


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _encode(document: Any) -> bytes:
    # NaN and Infinity are not JSON: refuse them here rather than send what a peer cannot parse.
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()


def _reason(error: urllib3.exceptions.HTTPError) -> str:
    """The root cause, without the pool's own wrapping (it repeats the host and port)."""
    reason = getattr(error, "reason", None) or error
    return str(reason)[:300]


class BodyTooLarge(Exception):
    """The answer's body went over the size it may have."""


class DeadlinePassed(Exception):
    """The answer was still arriving when the call's time was up."""


def read_body(response: urllib3.BaseHTTPResponse, *, max_bytes: int, deadline: float) -> bytes:
    """The body, refused when it is larger than ``max_bytes`` or still arriving at ``deadline``
    (``time.monotonic()``). urllib3's read timeout bounds each read, not the whole answer: a peer
    sending a byte now and then would otherwise hold the caller as long as it likes. A read in
    progress may outlast the deadline by one read timeout at most."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.stream(64 * 1024):
        size += len(chunk)
        if size > max_bytes or time.monotonic() > deadline:
            response.close()  # not worth reading to the end to keep the connection
            raise BodyTooLarge() if size > max_bytes else DeadlinePassed()
        chunks.append(chunk)
    return b"".join(chunks)
