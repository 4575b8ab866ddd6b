"""One JSON error shape for the whole API: ``{"error": "<message a user can read>"}``.

Validation errors add ``"errors"`` with the field messages. Exception texts and tracebacks never
reach a client; unexpected ones are logged.
"""

from __future__ import annotations

import logging
import typing as t

from flask import Blueprint, Flask, Response, jsonify
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException, InternalServerError

from executor.errors import Category, EncryptionKeyMissing, ExecutorError
from executor.schemas.api import ErrorResponseSchema

log = logging.getLogger(__name__)

_STATUS = {
    Category.INVALID: 400,
    Category.NOT_FOUND: 404,
    Category.FORBIDDEN: 403,
    Category.UNAVAILABLE: 503,
}
_HTTP_MESSAGES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
    415: "Unsupported media type",
    500: "Internal server error",
}
_ERROR_SCHEMA = ErrorResponseSchema()


class ApiError(Exception):
    """An HTTP error with a fixed, user-readable message (raised by views)."""

    def __init__(self, status: int, message: str, *, errors: t.Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def error_response(status: int, message: str, errors: t.Any = None) -> Response:
    payload: dict[str, t.Any] = {"error": message}
    if errors is not None:
        payload["errors"] = errors
    response = jsonify(_ERROR_SCHEMA.dump(payload))
    response.status_code = status
    return response


def handle_api_error(error: ApiError) -> Response:
    return error_response(error.status, error.message, error.errors)


def handle_http_exception(error: HTTPException) -> Response:
    if error.code is None:  # abort(Response(...)) carries its own response
        return t.cast(Response, error.get_response())
    response = error_response(error.code, _HTTP_MESSAGES.get(error.code, error.name))
    for header in ("Allow", "WWW-Authenticate", "Retry-After"):
        original = error.get_response().headers.get(header)
        if original:
            response.headers[header] = original
    return response


def handle_validation_error(error: ValidationError) -> Response:
    return error_response(400, "The request body is invalid.", errors=error.messages)


def handle_executor_error(error: ExecutorError) -> Response:
    status = _STATUS.get(error.category)
    if status is None:  # Category.INTERNAL
        return handle_unexpected(error)
    if error.category is Category.FORBIDDEN:
        log.warning("Forbidden: %s", error)
        return error_response(403, "Forbidden")  # opaque: never the reason
    if status >= 500 or status == 400:
        log.warning("Request failed: %s", error)
    return error_response(status, error.user_message)


def handle_encryption_key_missing(error: EncryptionKeyMissing) -> Response:
    # The protocol's typed body (§5.7), so the front can tell an operator to set the key.
    log.warning("Request failed: %s", error)
    response = jsonify({"code": error.code})
    response.status_code = 503
    return response


def handle_unexpected(error: Exception) -> Response:
    original = getattr(error, "original_exception", None) or error
    log.error("Unhandled HTTP error", exc_info=original)
    return error_response(500, _HTTP_MESSAGES[500])


def register_error_handlers(target: Flask | Blueprint) -> None:
    """On the app this covers routing 404/405 too; on a blueprint only its own views."""
    target.register_error_handler(ApiError, handle_api_error)
    target.register_error_handler(ExecutorError, handle_executor_error)
    target.register_error_handler(EncryptionKeyMissing, handle_encryption_key_missing)
    target.register_error_handler(ValidationError, handle_validation_error)
    target.register_error_handler(InternalServerError, handle_unexpected)
    target.register_error_handler(HTTPException, handle_http_exception)
    target.register_error_handler(Exception, handle_unexpected)
