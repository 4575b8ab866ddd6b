"""The orchestrator's MCP server configurations (protocol §3.3.7, §10.1), validated.

Only remote servers (``http`` and ``sse``) are kept. Configurations that would start a local
process (``stdio``) are never honoured: the executor does not spawn commands it received over the
network. Forest connectors are built into the reference and out of scope here.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates

from executor.mcp.configs import McpServerConfig, Transport
from executor.schemas.fields import StrictString

log = logging.getLogger(__name__)

MAX_NAME_CHARS = 255
MAX_URL_CHARS = 2048


class _ServerId(fields.Field[str]):
    """The server's id: a non-empty string, or an integer sent as a number."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str) and value and len(value) <= MAX_NAME_CHARS:
            return value
        raise ValidationError("Must be a non-empty string.")


class RemoteServerSchema(Schema):
    """A remote (``http`` / ``sse``) server; unknown keys are the Forest server's business."""

    class Meta:
        unknown = EXCLUDE

    id = _ServerId(required=True)
    type = StrictString(required=True, validate=validate.OneOf([t.value for t in Transport]))
    url = StrictString(required=True, validate=validate.Length(min=1, max=MAX_URL_CHARS))
    headers = fields.Dict(
        keys=StrictString(validate=validate.Length(min=1, max=256)),
        values=StrictString(validate=validate.Length(max=8192)),
        load_default=dict,
    )
    authType = StrictString(load_default=None, allow_none=True)

    @validates("url")
    def _absolute_http(self, value: str, **_: Any) -> None:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError("Must be an absolute http(s) URL.")


_REMOTE = RemoteServerSchema()


def parse_server_configs(payload: Any) -> list[McpServerConfig]:
    """The usable servers of the orchestrator's answer, in its order.

    Anything else is skipped with a logged reason (never with its headers: they may hold secrets).
    """
    if not isinstance(payload, dict):
        raise ValidationError("The MCP server configurations must be a JSON object.")
    servers: list[McpServerConfig] = []
    for name, raw in payload.items():
        reason = _skip_reason(raw)
        if reason is not None:
            log.info("MCP server configuration ignored — %s", reason, extra={"mcp_server": name})
            continue
        try:
            loaded = _REMOTE.load(raw)
        except ValidationError as error:
            log.warning(
                "MCP server configuration ignored — invalid: %s",
                sorted(error.messages_dict),
                extra={"mcp_server": name},
            )
            continue
        servers.append(
            McpServerConfig(
                name=name,
                server_id=loaded["id"],
                transport=Transport(loaded["type"]),
                url=loaded["url"],
                headers=loaded["headers"],
                oauth2=loaded["authType"] == "oauth2",
            )
        )
    return servers


def _skip_reason(raw: Any) -> str | None:
    if not isinstance(raw, dict):
        return "not an object"
    if raw.get("isForestConnector") is True:
        return "Forest connectors are not supported by this executor"
    kind = raw.get("type")
    if kind == "stdio" or (kind is None and "command" in raw):
        return "stdio servers would start a local process, which this executor never does"
    return None
