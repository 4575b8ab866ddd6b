"""Authentication of the front's requests: the user JWT the agent issued (protocol §5.2)."""

from __future__ import annotations

import logging
from typing import Any

import jwt
from flask import Request

from executor.domain.ids import MAX_NUMERIC_ID
from executor.http.errors import ApiError

log = logging.getLogger(__name__)

SESSION_COOKIE = "forest_session_token"
MAX_TOKEN_CHARS = 8192  # a real session token is well under 2 KiB; refuse to parse monsters
ALGORITHMS = ["HS256"]


def authenticate(request: Request, secret: str) -> int:
    """The user id of a valid token, else a 401 ``ApiError``.

    The identity comes only from the token's ``id`` claim, never from a request body.
    """
    token = _token_of(request)
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise _unauthorized()
    try:
        claims = jwt.decode(token, secret, algorithms=ALGORITHMS, options={"require": ["exp"]})
    except jwt.InvalidTokenError:
        raise _unauthorized() from None
    user_id = _user_id(claims.get("id"))
    if user_id is None:
        # The path only: the payload may hold personal data.
        log.warning("Token refused — claim 'id' is missing or not a positive integer")
        raise _unauthorized()
    return user_id


def _token_of(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.cookies.get(SESSION_COOKIE) or None


def _user_id(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    numeric_text = isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 18
    whole_number = isinstance(raw, int) or (isinstance(raw, float) and raw.is_integer())
    if not (numeric_text or whole_number):
        return None
    value = int(raw)
    return value if 0 < value <= MAX_NUMERIC_ID else None


def _unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized")
