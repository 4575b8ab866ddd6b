"""``/mcp-oauth-credentials``: a user deposits and deletes their MCP OAuth credentials
(protocol §5.7, §10.4). The owner is always the caller's token ``id``."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from marshmallow import ValidationError

from executor.http.errors import ApiError, register_error_handlers
from executor.http.route_docs import documented
from executor.http.runs import EXTENSION_KEY, add_version_header, limit_body_and_authenticate
from executor.mcp.credentials import OAuthCredential
from executor.schemas.mcp_credentials import (
    CredentialDepositSchema,
    CredentialStoredSchema,
    EncryptionKeyMissingSchema,
    validation_message,
)

# A deposit is a few kilobytes (the longest fields are 2048 characters); refresh tokens are
# opaque but short in practice. Far below MAX_REQUEST_BYTES.
MAX_DEPOSIT_BYTES = 64 * 1024
# The credential table's user_id is an INTEGER (protocol §11.3); tokens may carry larger ids.
MAX_CREDENTIAL_USER_ID = 2**31 - 1

mcp_credentials = Blueprint("mcp_credentials", __name__)
mcp_credentials.before_request(limit_body_and_authenticate)
mcp_credentials.after_request(add_version_header)
register_error_handlers(mcp_credentials)

_SCHEMAS: dict[str, CredentialDepositSchema] = {}


def _executor() -> Any:
    return current_app.extensions[EXTENSION_KEY]


def _deposit_schema(environment: str) -> CredentialDepositSchema:
    schema = _SCHEMAS.get(environment)
    if schema is None:
        schema = _SCHEMAS.setdefault(environment, CredentialDepositSchema(environment=environment))
    return schema


@mcp_credentials.post("/mcp-oauth-credentials")
@documented(
    "Deposit the caller's OAuth credential for an MCP server",
    request=CredentialDepositSchema(environment="production"),
    request_required=True,
    response=CredentialStoredSchema,
    description="The owner is always the token's `id`. The refresh token and client secret are "
    "stored encrypted; a cached access token for (user, server) is dropped.",
    errors={
        400: "Invalid request body — `<field>: <message>; …`",
        413: "Body over 64 KiB",
    },
    extra_responses={
        503: {
            "description": "`FOREST_EXECUTOR_ENCRYPTION_KEY` is not set",
            "content": {"application/json": {"schema": EncryptionKeyMissingSchema}},
        }
    },
    tags=("mcp",),
)
def deposit_credential() -> Response:
    executor = _executor()
    schema = _deposit_schema(executor.services.mcp_credentials.environment)
    try:
        credential: OAuthCredential = schema.load(_deposit_body())
    except ValidationError as error:
        raise ApiError(400, validation_message(error.messages)) from None
    user_id: int = g.executor_user_id
    if user_id > MAX_CREDENTIAL_USER_ID:
        raise ApiError(400, "MCP credentials cannot be stored for this user id.")
    executor.services.mcp_credentials.deposit(user_id, credential)
    executor.services.mcp_tokens.evict(user_id, credential.mcp_server_id)
    return jsonify({"stored": True})


@mcp_credentials.delete("/mcp-oauth-credentials/<path:mcp_server_id>")
@documented(
    "Delete the caller's OAuth credential for an MCP server",
    response=None,
    status=204,
    status_description="Deleted (also when there was none)",
    errors={404: "The id holds a line break, which no route matches: `Not found`"},
    tags=("mcp",),
)
def delete_credential(mcp_server_id: str) -> Response:
    executor = _executor()
    user_id: int = g.executor_user_id
    executor.services.mcp_credentials.delete(user_id, mcp_server_id)
    executor.services.mcp_tokens.evict(user_id, mcp_server_id)
    response = Response(status=204)
    del response.headers["Content-Type"]  # no body, so no type
    return response


def _deposit_body() -> Any:
    # One byte of slack: a chunked body is cut at the limit, so limit + 1 bytes means too large.
    request.max_content_length = MAX_DEPOSIT_BYTES + 1
    raw = request.get_data(cache=True)
    if len(raw) > MAX_DEPOSIT_BYTES:
        raise ApiError(413, "Request body too large")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(400, "Invalid request body — body: Not valid JSON.") from None
