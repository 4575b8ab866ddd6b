"""``@documented``: a route's OpenAPI documentation, attached to its view (see
:mod:`executor.http.openapi`, which turns it into the document)."""

from __future__ import annotations

import typing as t
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from marshmallow import Schema

_DOC_ATTRIBUTE = "__executor_openapi__"

ViewT = t.TypeVar("ViewT", bound=Callable[..., t.Any])
# A marshmallow schema (class or instance), or a plain OpenAPI schema object.
SchemaRef = type[Schema] | Schema | Mapping[str, t.Any]


@dataclass(frozen=True)
class RouteDoc:
    """What ``@documented`` records on a view; see the module docstring."""

    summary: str
    response: SchemaRef | None = None
    request: SchemaRef | None = None
    request_required: bool = False  # an absent body is read as {} unless the route needs one
    description: str = ""
    authenticated: bool = True
    status: int = 200
    status_description: str = "Success"
    errors: Mapping[int, str] = field(default_factory=dict)
    # Whole OpenAPI response objects by status, for bodies outside the one error shape.
    extra_responses: Mapping[int, Mapping[str, t.Any]] = field(default_factory=dict)
    parameters: tuple[Mapping[str, t.Any], ...] = ()  # query and header parameters
    tags: tuple[str, ...] = ()


def documented(
    summary: str,
    *,
    response: SchemaRef | None = None,
    request: SchemaRef | None = None,
    request_required: bool = False,
    description: str = "",
    authenticated: bool = True,
    status: int = 200,
    status_description: str = "Success",
    errors: Mapping[int, str] | None = None,
    extra_responses: Mapping[int, Mapping[str, t.Any]] | None = None,
    parameters: tuple[Mapping[str, t.Any], ...] = (),
    tags: tuple[str, ...] = (),
) -> Callable[[ViewT], ViewT]:
    """Attach the route's documentation to its view (order with the route decorator is free).

    ``errors`` maps each error status the route may answer (beyond 401 and 500, added for every
    authenticated route) to what it means there; the body is the one error shape.
    """
    doc = RouteDoc(
        summary=summary,
        response=response,
        request=request,
        request_required=request_required,
        description=description,
        authenticated=authenticated,
        status=status,
        status_description=status_description,
        errors=dict(errors or {}),
        extra_responses=dict(extra_responses or {}),
        parameters=parameters,
        tags=tags,
    )

    def attach(view: ViewT) -> ViewT:
        setattr(view, _DOC_ATTRIBUTE, doc)
        return view

    return attach


def route_doc(view: Callable[..., t.Any]) -> RouteDoc | None:
    return getattr(view, _DOC_ATTRIBUTE, None)
