"""A fake AI model server speaking two wire formats over a real loopback socket (protocol §8).

Routes (all ``POST``):

- ``/v1/chat/completions``: OpenAI Chat Completions (an OpenAI base URL is ``f"{url}/v1"``);
- ``/v1/messages``: Anthropic Messages (its base URL is ``url``);
- ``/liana/v1/ai-proxy``: the Forest server's AI proxy, OpenAI format, authenticated by the
  ``forest-secret-key`` and ``user-id`` headers and never by ``Authorization``.

Each test scripts the replies: a FIFO queue of planned replies, consumed one per request. A planned
reply may name the tool it expects to answer; it then goes to the first request offering that tool
(a plan naming no tool goes to any request). A request nothing is scripted for gets a loud HTTP 500
(``no scripted answer for tools [...]``). Requests are validated the way the real provider would
(400/401 with the provider's error body); every request, valid or not, is recorded as a
:class:`ModelRequest`.

``handle(request)`` answers those three paths (``None`` for any other), so another fake (the fake
orchestrator, which serves ``FOREST_SERVER_URL``) can delegate ``/liana/v1/ai-proxy`` to it. When
delegating, still call :meth:`FakeModel.stop` at teardown: it releases the handlers held by
:meth:`FakeModel.slow`.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

Wire = Literal["openai", "anthropic", "forest-proxy"]
Arguments = dict[str, Any] | list[Any] | str | None

OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"
PROXY_PATH = "/liana/v1/ai-proxy"
ROUTES: dict[str, Wire] = {
    OPENAI_PATH: "openai",
    ANTHROPIC_PATH: "anthropic",
    PROXY_PATH: "forest-proxy",
}

OPENAI_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
OPENAI_SYSTEM_ROLES = frozenset({"system", "developer"})
ANTHROPIC_ROLES = frozenset({"user", "assistant"})
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # what both providers accept

_MISSING: Any = object()  # "no arguments at all" (distinct from an explicit None)


@dataclass
class ModelRequest:
    """One request the fake received, parsed for assertions.

    ``headers`` has lower-case names. ``system`` is the Anthropic ``system`` text, or the OpenAI
    system (and developer) messages joined by a blank line; ``messages`` are the other messages as
    ``{role, content}``. ``status`` is the HTTP status the fake answered (0 while still pending).
    """

    wire: Wire
    path: str
    headers: dict[str, str]
    body: Any
    system: str = ""
    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    tool_schemas: dict[str, Any] = field(default_factory=dict)
    tool_choice: Any = None
    model: Any = None
    status: int = 0


@dataclass
class _Plan:
    """A planned reply (or, for ``kind == "slow"``, a planned delay) used ``remaining`` times."""

    kind: Literal["call", "custom", "text", "fail", "slow"]
    remaining: int
    tool: str | None = None  # the tool a request must offer to get this plan
    arguments: Any = _MISSING
    fn: Callable[[ModelRequest], Any] | None = None
    text: str = ""
    status: int = 0
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def fits(self, request: ModelRequest) -> bool:
        return self.tool is None or self.tool in request.tools


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class FakeModel:
    """Start with :meth:`start` (or as a context manager); ``url`` is its base URL.

    ``api_key`` (optional) is the only key accepted (OpenAI ``Authorization: Bearer``, Anthropic
    ``x-api-key``); ``forest_secret`` (optional) the only ``forest-secret-key`` accepted by the
    proxy. Unset, any non-empty value is accepted.
    """

    def __init__(self, *, api_key: str | None = None, forest_secret: str | None = None) -> None:
        self.api_key = api_key
        self.forest_secret = forest_secret
        self.requests: list[ModelRequest] = []
        self.unscripted: list[ModelRequest] = []  # requests answered "no scripted answer"
        self._replies: list[_Plan] = []
        self._delays: list[_Plan] = []
        self._ids = itertools.count(1)
        self._released = threading.Event()  # set by stop(): slow handlers answer at once
        self._changed = threading.Condition()
        self._started = False
        self._stopped = False
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    def start(self) -> FakeModel:
        self._started = True
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release every slow handler, then close the socket (safe to call twice, or unstarted)."""
        self._released.set()
        if self._stopped:
            return
        self._stopped = True
        if self._started:
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeModel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- scripting ------------------------------------------------------------------------------

    def answer(self, tool: str, arguments: Arguments, *, times: int = 1) -> None:
        """Reply with a call to ``tool``, given to the first request offering ``tool``.

        A dict (or list) is the arguments: JSON-encoded into OpenAI ``function.arguments``, sent
        as is as Anthropic ``input``. A ``str`` is sent RAW as OpenAI ``arguments`` (malformed JSON
        included); Anthropic's ``input`` is JSON by construction, so there the string itself is the
        ``input`` value (not an object, hence malformed too). ``None`` means missing arguments:
        OpenAI ``"arguments": null``, Anthropic without an ``input`` key.
        """
        self._plan(_Plan("call", _times(times), tool=tool, arguments=arguments))

    def answer_with(
        self,
        fn: Callable[[ModelRequest], Any],
        *,
        times: int = 1,
        tool: str | None = None,
    ) -> None:
        """Reply with the tool call ``fn(request)`` returns: ``{"name": ..., "arguments": ...}``.

        ``arguments`` follows :meth:`answer`'s rules (a missing key means missing arguments). ``fn``
        may also return a list of such dicts: the reply then carries several tool calls, in order.
        """
        self._plan(_Plan("custom", _times(times), tool=tool, fn=fn))

    def no_tool_call(
        self, *, text: str = "I cannot decide", times: int = 1, tool: str | None = None
    ) -> None:
        """Reply with plain text and no tool call."""
        self._plan(_Plan("text", _times(times), tool=tool, text=text))

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        body: Any = None,
        tool: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer HTTP ``status`` with the provider's error body (or ``body``: a str is sent raw,
        anything else JSON-encoded), plus ``headers`` (e.g. ``{"retry-after": "0"}``)."""
        self._plan(
            _Plan(
                "fail",
                _times(times),
                tool=tool,
                status=status,
                body=body,
                headers=dict(headers or {}),
            )
        )

    def slow(self, seconds: float, *, times: int = 1, tool: str | None = None) -> None:
        """Make the next ``times`` (valid) requests wait ``seconds`` before answering.

        The delay is independent of the reply queue: a slow request takes its planned reply when it
        arrives and sends it after the delay, or at once when :meth:`stop` is called.
        """
        with self._changed:
            self._delays.append(_Plan("slow", _times(times), tool=tool, seconds=seconds))

    @property
    def remaining(self) -> int:
        """How many scripted replies are still unused."""
        with self._changed:
            return sum(plan.remaining for plan in self._replies)

    def _plan(self, plan: _Plan) -> None:
        with self._changed:
            self._replies.append(plan)

    # --- observation ----------------------------------------------------------------------------

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Wait until ``predicate()`` holds, re-checked when a request arrives and is answered."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout=timeout)

    def count(self) -> int:
        with self._changed:
            return len(self.requests)

    def prompts_for(self, tool: str) -> list[ModelRequest]:
        """The recorded requests offering ``tool``, in arrival order."""
        with self._changed:
            return [r for r in self.requests if tool in r.tools]

    @staticmethod
    def all_text(request: ModelRequest) -> str:
        """The system prompt and every message's content, as one text."""
        parts = [request.system] if request.system else []
        parts += [_text(m.get("content")) for m in request.messages]
        return "\n\n".join(parts)

    # --- protocol -------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response | None:
        """Answer a model request (one of the three paths), or ``None`` for any other path."""
        wire = ROUTES.get(request.path)
        if wire is None:
            return None
        body = _json_body(request)
        recorded = _record(wire, request, body)
        with self._changed:
            self.requests.append(recorded)
            self._changed.notify_all()
        response = self._answer(recorded, request)
        with self._changed:
            recorded.status = response.status_code
            self._changed.notify_all()
        return response

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        response = self.handle(request)
        if response is None:
            response = _openai_error(404, f"Unknown path {request.path}")
        return response(environ, start_response)

    def _answer(self, recorded: ModelRequest, request: Request) -> Response:
        error = _anthropic_error if recorded.wire == "anthropic" else _openai_error
        if request.method != "POST":
            return error(405, f"Method {request.method} not allowed")
        try:
            if recorded.wire == "anthropic":
                self._check_anthropic(recorded)
            else:
                self._check_openai(recorded)
        except _BadRequest as bad:
            return error(bad.status, bad.message)
        with self._changed:
            plan = _take(self._replies, recorded)
            delay = _take(self._delays, recorded)
            if plan is None:
                self.unscripted.append(recorded)
        if delay is not None:
            self._released.wait(delay.seconds)  # a slow provider; stop() cuts it short
        if plan is None:
            return error(500, f"no scripted answer for tools {recorded.tools!r}")
        if plan.kind == "fail":
            return self._failure(recorded, plan)
        return self._reply(recorded, plan)

    def _check_openai(self, r: ModelRequest) -> None:
        if r.wire == "forest-proxy":
            if "authorization" in r.headers:
                raise _BadRequest(400, "The AI proxy does not accept an Authorization header")
            for name in ("forest-secret-key", "user-id"):
                if not r.headers.get(name):
                    raise _BadRequest(400, f"Missing header {name}")
            if (
                self.forest_secret is not None
                and r.headers["forest-secret-key"] != self.forest_secret
            ):
                raise _BadRequest(401, "Invalid forest-secret-key")
        else:
            auth = r.headers.get("authorization", "")
            key = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
            if not key:
                raise _BadRequest(401, "You didn't provide an API key (Authorization: Bearer).")
            if self.api_key is not None and key != self.api_key:
                raise _BadRequest(401, "Incorrect API key provided.")
        body = _object(r.body)
        _common_checks(body)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest(400, "'messages' must be a non-empty array")
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in OPENAI_ROLES:
                raise _BadRequest(400, f"messages[{i}].role must be one of {sorted(OPENAI_ROLES)}")
            content = message.get("content")
            if content is None and not (
                message["role"] == "assistant" and message.get("tool_calls")
            ):
                raise _BadRequest(400, f"messages[{i}].content is required")
            if content is not None and not isinstance(content, str | list):
                raise _BadRequest(400, f"messages[{i}].content must be a string or an array")
        tools = body.get("tools")
        if tools is not None:
            if not isinstance(tools, list) or not tools:
                raise _BadRequest(400, "'tools' must be a non-empty array")
            for i, tool in enumerate(tools):
                function = tool.get("function") if isinstance(tool, dict) else None
                if not isinstance(function, dict) or tool.get("type") != "function":
                    raise _BadRequest(400, f"tools[{i}] must be {{type: function, function}}")
                _check_tool_name(function.get("name"), f"tools[{i}].function.name")
                if not isinstance(function.get("parameters"), dict):
                    raise _BadRequest(400, f"tools[{i}].function.parameters must be an object")
            _unique(r.tools)
        choice = body.get("tool_choice")
        if choice is not None:
            if not tools:
                raise _BadRequest(400, "'tool_choice' is only allowed when 'tools' are given")
            named = isinstance(choice, dict) and choice.get("type") == "function"
            if choice not in ("none", "auto", "required") and not named:
                raise _BadRequest(400, "'tool_choice' must be none, auto, required or a function")

    def _check_anthropic(self, r: ModelRequest) -> None:
        key = r.headers.get("x-api-key")
        if not key:
            raise _BadRequest(401, "x-api-key header is required")
        if self.api_key is not None and key != self.api_key:
            raise _BadRequest(401, "invalid x-api-key")
        if not r.headers.get("anthropic-version"):
            raise _BadRequest(400, "anthropic-version: header is required")
        body = _object(r.body)
        _common_checks(body)
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise _BadRequest(400, "max_tokens: Field required (a positive integer)")
        system = body.get("system")
        if system is not None and not isinstance(system, str | list):
            raise _BadRequest(400, "system: must be a string or an array of text blocks")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest(400, "messages: at least one message is required")
        for i, message in enumerate(messages):
            role = message.get("role") if isinstance(message, dict) else None
            if role not in ANTHROPIC_ROLES:
                hint = " (use the top-level system parameter)" if role == "system" else ""
                raise _BadRequest(400, f"messages.{i}.role: must be user or assistant{hint}")
            content = message.get("content")
            if not isinstance(content, str | list) or not content:
                raise _BadRequest(400, f"messages.{i}.content: must be a non-empty string or list")
        tools = body.get("tools")
        if tools is not None:
            if not isinstance(tools, list):
                raise _BadRequest(400, "tools: must be an array")
            for i, tool in enumerate(tools):
                if not isinstance(tool, dict):
                    raise _BadRequest(400, f"tools.{i}: must be an object")
                _check_tool_name(tool.get("name"), f"tools.{i}.name")
                schema = tool.get("input_schema")
                if not isinstance(schema, dict) or schema.get("type") != "object":
                    raise _BadRequest(400, f"tools.{i}.input_schema: an object schema is required")
            _unique(r.tools)
        choice = body.get("tool_choice")
        if choice is not None:
            if not tools:
                raise _BadRequest(400, "tool_choice may only be specified while providing tools")
            kind = choice.get("type") if isinstance(choice, dict) else None
            if kind not in ("auto", "any", "tool", "none"):
                raise _BadRequest(400, "tool_choice.type: must be auto, any, tool or none")
            if kind == "tool" and not isinstance(choice.get("name"), str):
                raise _BadRequest(400, "tool_choice.name: Field required")

    # --- replies --------------------------------------------------------------------------------

    def _failure(self, r: ModelRequest, plan: _Plan) -> Response:
        if plan.body is None:
            error = _anthropic_error if r.wire == "anthropic" else _openai_error
            response = error(plan.status, f"scripted failure {plan.status}")
        else:
            raw = plan.body if isinstance(plan.body, str) else json.dumps(plan.body)
            response = Response(raw, status=plan.status, mimetype="application/json")
        for name, value in plan.headers.items():
            response.headers[name] = value
        return response

    def _reply(self, r: ModelRequest, plan: _Plan) -> Response:
        calls: list[tuple[str, Any]] = []
        if plan.kind == "call":
            assert plan.tool is not None
            calls.append((plan.tool, plan.arguments))
        elif plan.kind == "custom":
            assert plan.fn is not None
            produced = plan.fn(r)
            for call in produced if isinstance(produced, list) else [produced]:
                calls.append((call["name"], call.get("arguments", None)))
        n = next(self._ids)
        usage_in = max(1, len(FakeModel.all_text(r)) // 4)
        if r.wire == "anthropic":
            content: list[dict[str, Any]] = []
            for i, (name, arguments) in enumerate(calls):
                block: dict[str, Any] = {"type": "tool_use", "id": f"toolu_fake_{n}_{i}"}
                block["name"] = name
                if arguments is not None:
                    block["input"] = arguments
                content.append(block)
            if not calls:
                content.append({"type": "text", "text": plan.text})
            return _json(
                {
                    "id": f"msg_fake_{n}",
                    "type": "message",
                    "role": "assistant",
                    "model": r.model,
                    "content": content,
                    "stop_reason": "tool_use" if calls else "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": usage_in, "output_tokens": 20},
                }
            )
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        if calls:
            message["tool_calls"] = [
                {
                    "id": f"call_fake_{n}_{i}",
                    "type": "function",
                    "function": {"name": name, "arguments": _openai_arguments(arguments)},
                }
                for i, (name, arguments) in enumerate(calls)
            ]
        else:
            message["content"] = plan.text
        return _json(
            {
                "id": f"chatcmpl-fake-{n}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": r.model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": "tool_calls" if calls else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": usage_in,
                    "completion_tokens": 20,
                    "total_tokens": usage_in + 20,
                },
            }
        )


# --- helpers ------------------------------------------------------------------------------------


def _times(times: int) -> int:
    if times < 1:
        raise ValueError("times must be at least 1")
    return times


def _take(plans: list[_Plan], request: ModelRequest) -> _Plan | None:
    """Use once the first plan fitting ``request`` (the caller holds the lock)."""
    for i, plan in enumerate(plans):
        if plan.fits(request):
            plan.remaining -= 1
            if plan.remaining == 0:
                del plans[i]
            return plan
    return None


def _json_body(request: Request) -> Any:
    try:
        return json.loads(request.get_data(cache=True) or b"null")
    except ValueError:
        return None


def _record(wire: Wire, request: Request, body: Any) -> ModelRequest:
    """Parse what can be parsed; validation (and its error) comes later."""
    recorded = ModelRequest(
        wire=wire,
        path=request.path,
        headers={name.lower(): value for name, value in request.headers.items()},
        body=body,
    )
    if not isinstance(body, dict):
        return recorded
    recorded.model = body.get("model")
    recorded.tool_choice = body.get("tool_choice")
    raw_messages = body.get("messages")
    messages = (
        [m for m in raw_messages if isinstance(m, dict)] if isinstance(raw_messages, list) else []
    )
    raw_tools = body.get("tools")
    tools = [t for t in raw_tools if isinstance(t, dict)] if isinstance(raw_tools, list) else []
    if wire == "anthropic":
        recorded.system = _text(body.get("system"))
        recorded.messages = [{"role": m.get("role"), "content": m.get("content")} for m in messages]
        for tool in tools:
            if isinstance(tool.get("name"), str):
                recorded.tools.append(tool["name"])
                recorded.tool_schemas[tool["name"]] = tool.get("input_schema")
    else:
        system = [m for m in messages if m.get("role") in OPENAI_SYSTEM_ROLES]
        recorded.system = "\n\n".join(_text(m.get("content")) for m in system)
        recorded.messages = [
            {"role": m.get("role"), "content": m.get("content")}
            for m in messages
            if m.get("role") not in OPENAI_SYSTEM_ROLES
        ]
        for tool in tools:
            function = tool.get("function")
            if isinstance(function, dict) and isinstance(function.get("name"), str):
                recorded.tools.append(function["name"])
                recorded.tool_schemas[function["name"]] = function.get("parameters")
    return recorded


def _text(content: Any) -> str:
    """The text of a message content: a string, or the parts of a list (text parts as text)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
            else:
                parts.append(json.dumps(part))
        return "\n".join(parts)
    return json.dumps(content)


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _BadRequest(400, "The request body must be a JSON object")
    return body


def _common_checks(body: dict[str, Any]) -> None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise _BadRequest(400, "model: Field required")
    if body.get("stream"):
        raise _BadRequest(400, "The fake model does not stream: send stream false")


def _check_tool_name(name: Any, where: str) -> None:
    if not isinstance(name, str) or not TOOL_NAME.match(name):
        raise _BadRequest(400, f"{where}: must match {TOOL_NAME.pattern}")


def _unique(names: list[str]) -> None:
    if len(set(names)) != len(names):
        raise _BadRequest(400, "Tool names must be unique")


def _openai_arguments(arguments: Any) -> Any:
    if arguments is None or isinstance(arguments, str):
        return arguments  # null, or raw text (possibly not JSON at all)
    return json.dumps(arguments)


_OPENAI_ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "unknown_url"),
    405: ("invalid_request_error", "method_not_allowed"),
    429: ("requests", "rate_limit_exceeded"),
}
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _openai_error(status: int, message: str) -> Response:
    kind, code = _OPENAI_ERRORS.get(status, ("server_error", None))
    error = {"message": message, "type": kind, "param": None, "code": code}
    return _json({"error": error}, status)


def _anthropic_error(status: int, message: str) -> Response:
    kind = _ANTHROPIC_ERRORS.get(status, "api_error")
    payload = {"type": "error", "error": {"type": kind, "message": message}}
    return _json(payload, status)


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json")
