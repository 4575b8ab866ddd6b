"""The body of ``POST /mcp-oauth-credentials`` (protocol §10.4): a closed object."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from executor.mcp.credentials import AUTH_METHODS, OAuthCredential
from executor.mcp.token_endpoint import token_endpoint_problem


class DateText(fields.String):
    """A parseable date string (ISO 8601 or RFC 2822), as an aware datetime (UTC when naive)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        parsed = _parse_date(text)
        if parsed is None:
            raise ValidationError("Not a valid date.")
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _parse_date(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None


class CredentialDepositSchema(Schema):
    """Loads an :class:`OAuthCredential`. The token endpoint must pass the safety check of
    ``environment`` (``EXECUTOR_ENV``). A user id in the body is an unknown field: the owner is
    always the caller."""

    class Meta:
        unknown = RAISE

    mcp_server_id = fields.String(
        data_key="mcpServerId", required=True, validate=validate.Length(1, 255)
    )
    refresh_token = fields.String(
        data_key="refreshToken", required=True, validate=validate.Length(min=1)
    )
    client_id = fields.String(data_key="clientId", validate=validate.Length(1, 255))
    client_secret = fields.String(data_key="clientSecret", validate=validate.Length(min=1))
    client_secret_expires_at = DateText(data_key="clientSecretExpiresAt")
    token_endpoint = fields.String(
        data_key="tokenEndpoint", required=True, validate=validate.Length(1, 2048)
    )
    token_endpoint_auth_method = fields.String(
        data_key="tokenEndpointAuthMethod", validate=validate.OneOf(AUTH_METHODS)
    )
    scopes = fields.String(validate=validate.Length(max=2048))

    def __init__(self, *, environment: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.environment = environment

    @validates_schema(skip_on_field_errors=False)
    def _check(self, data: dict[str, Any], **kwargs: Any) -> None:
        errors: dict[str, list[str]] = {}
        if "client_secret" in data and "client_id" not in data:
            errors["clientSecret"] = ["Requires clientId."]
        endpoint = data.get("token_endpoint")
        if endpoint is not None:
            problem = token_endpoint_problem(endpoint, environment=self.environment)
            if problem is not None:
                errors["tokenEndpoint"] = [f"Unsafe token endpoint: {problem}."]
        if errors:
            raise ValidationError(errors)

    @post_load
    def _credential(self, data: dict[str, Any], **kwargs: Any) -> OAuthCredential:
        return OAuthCredential(**data)


def validation_message(messages: Any) -> str:
    """``Invalid request body — <path>: <message>; …`` (protocol §5.7; root issues: ``body``)."""
    issues: list[str] = []

    def walk(node: Any, path: list[str]) -> None:
        if isinstance(node, dict):
            for key, child in node.items():
                walk(child, path if key == "_schema" else [*path, str(key)])
        elif isinstance(node, list | tuple):
            for child in node:
                walk(child, path)
        else:
            issues.append(f"{'.'.join(path) or 'body'}: {node}")

    walk(messages, [])
    return "Invalid request body — " + "; ".join(issues)


class CredentialStoredSchema(Schema):
    """The answer to a deposit (documentation of ``POST /mcp-oauth-credentials``)."""

    stored = fields.Boolean(required=True, metadata={"description": "Always true"})


class EncryptionKeyMissingSchema(Schema):
    """The protocol's typed 503 when no encryption key is configured (§5.7)."""

    code = fields.String(
        required=True, metadata={"description": "`executor_encryption_key_missing`"}
    )
