"""A Forest agent speaking the agent HTTP protocol (protocol §4) over a loopback socket.

It serves a small datasource (customers, orders, companies, addresses, subscriptions with a
composite primary key, comments with a polymorphic relation), kept in memory (tests) or in a SQLite
file (the sandbox), and a few actions on customers. Every
non-probe request must carry a valid agent JWT (§4.1) and a ``timezone`` query parameter; the agent
records every request with its decoded claims, every record update and every executed action, and
can be told to fail or slow down, so an agent adapter can be tested against it end to end.

(The fault tools are for the tests, which know this class as ``FakeAgent``.)

``collection_schemas(agent)`` gives the collection schemas the orchestrator would send for this
datasource (§2.8, §3.3.4), so the sandbox orchestrator can serve them.
"""

from __future__ import annotations

import copy
import json
import threading
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jwt
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from executor.sandbox.datasets import Dataset, MemoryDataset, SqliteDataset

STEP_EXECUTION_SCOPE = "step-execution"
TOKEN_LIFETIME_S = 300

# Every claim an agent JWT must carry (§4.1); each snake_case alias must equal its camelCase twin.
REQUIRED_CLAIMS = (
    "id",
    "email",
    "firstName",
    "lastName",
    "team",
    "renderingId",
    "role",
    "permissionLevel",
    "tags",
    "first_name",
    "last_name",
    "rendering_id",
    "permission_level",
    "scope",
    "iat",
    "exp",
)
CLAIM_ALIASES = {
    "first_name": "firstName",
    "last_name": "lastName",
    "rendering_id": "renderingId",
    "permission_level": "permissionLevel",
}
FORBIDDEN_CLAIMS = ("serverToken", "server_token", "forestServerToken")

APPROVAL_ERROR = "CustomActionRequiresApprovalError"
CHANGE_HOOK = "changeHook"  # the only change-hook name Forest agents publish


# --- the datasource model -----------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    enum_values: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Relation:
    """A relation; ``key`` is the hidden column linking the rows.

    BelongsTo: the column of this row holding the target's id (with ``polymorphic_type_field``
    naming the column that holds the target collection). HasOne/HasMany: the column of the target
    rows holding this row's id.
    """

    name: str
    relation_type: str  # BelongsTo | HasOne | HasMany
    target: str | None  # None for a polymorphic relation
    key: str
    polymorphic_type_field: str | None = None
    polymorphic_models: tuple[str, ...] = ()
    schema_target: str | None = None  # relatedCollectionName as the schema spells it

    @property
    def is_to_one(self) -> bool:
        return self.relation_type in ("BelongsTo", "HasOne")


@dataclass(frozen=True)
class FormField:
    """One field of an action form; ``plain()`` is the PlainField the agent sends (§4.8)."""

    name: str
    type: Any
    value: Any = None
    is_required: bool = False
    enums: tuple[str, ...] | None = None
    options: tuple[tuple[str, str], ...] | None = None  # dropdown (value, label) pairs
    watch_changes: bool = False
    description: str = ""
    default_value: Any = None

    def plain(self) -> dict[str, Any]:
        widget: dict[str, Any] | None = None
        if self.options:
            widget = {
                "name": "dropdown",
                "parameters": {
                    "static": {
                        "options": [{"value": v, "label": label} for v, label in self.options],
                        "isSearchable": False,
                        "placeholder": None,
                    }
                },
            }
        return {
            "field": self.name,
            "type": self.type,
            "description": self.description,
            "isRequired": self.is_required,
            "isReadOnly": False,
            "value": self.value,
            "defaultValue": self.default_value,
            "enums": list(self.enums) if self.enums else None,
            "hook": CHANGE_HOOK if self.watch_changes else None,
            "reference": None,
            "widget": None,
            "widgetEdit": widget,
        }

    def accepts(self, value: Any) -> bool:
        """Whether a non-null value fits the field's type, enum or dropdown options."""
        if self.enums is not None:
            return value in self.enums
        if self.options is not None:
            return value in {v for v, _ in self.options}
        return _fits(self.type, value)


FormBuilder = Callable[[Mapping[str, Any]], list[FormField]]


def _no_form(values: Mapping[str, Any]) -> list[FormField]:
    return []


def refund_form(values: Mapping[str, Any]) -> list[FormField]:
    """The refund form: choosing ``other`` as reason adds a required ``details`` field, choosing
    ``damaged`` switches ``notify_customer`` on (the change hook recomputes the whole form)."""
    reason = values.get("reason")
    fields = [
        FormField(
            "amount",
            "Number",
            values.get("amount"),
            is_required=True,
            description="Refund amount in EUR",
        ),
        FormField(
            "reason",
            "Enum",
            reason,
            is_required=True,
            enums=("late", "damaged", "other"),
            watch_changes=True,
        ),
        FormField(
            "currency",
            "String",
            values.get("currency", "EUR"),
            options=(("EUR", "Euro"), ("USD", "US dollar")),
            default_value="EUR",
        ),
        FormField(
            "notify_customer",
            "Boolean",
            True if reason == "damaged" else values.get("notify_customer", False),
            default_value=False,
        ),
    ]
    if reason == "other":
        fields.append(
            FormField(
                "details", "String", values.get("details"), is_required=True, description="Why?"
            )
        )
    return fields


def note_form(values: Mapping[str, Any]) -> list[FormField]:
    """The static form of ``add-note`` (declared in the schema, hooks.load false)."""
    return [
        FormField(
            "note", "String", values.get("note"), is_required=True, description="The note to add"
        ),
        FormField("pinned", "Boolean", values.get("pinned", False), default_value=False),
    ]


# The field a dynamic-form action declares in its schema (what Forest agents publish while the real
# form is only known through the load hook).
LOADING_FIELD: dict[str, Any] = {
    "field": "Loading...",
    "type": "String",
    "isReadOnly": True,
    "defaultValue": "Form is loading",
    "value": None,
    "description": "",
    "enums": None,
    "hook": None,
    "isRequired": False,
    "reference": None,
    "widget": None,
}


@dataclass(frozen=True)
class Action:
    name: str
    display_name: str
    collection: str
    index: int  # position in the collection's action list, part of the endpoint
    scope: str = "single"  # single | bulk | global
    form: FormBuilder = _no_form
    load_hook: bool = False  # hooks.load in the schema
    static_form: bool = False  # fields declared in the schema (only with load_hook False)

    @property
    def endpoint(self) -> str:
        return f"/forest/_actions/{self.collection}/{self.index}/{self.name}"

    def schema(self) -> dict[str, Any]:
        if self.load_hook:
            fields: list[dict[str, Any]] = [dict(LOADING_FIELD)]
        elif self.static_form:
            fields = [f.plain() for f in self.form({})]
        else:
            fields = []
        watches = self.load_hook or any(f.watch_changes for f in self.form({}))
        return {
            "name": self.name,
            "displayName": self.display_name,
            "endpoint": self.endpoint,
            "type": self.scope,
            "hooks": {"load": self.load_hook, "change": [CHANGE_HOOK] if watches else []},
            "fields": fields,
            "layout": [],
        }


@dataclass(frozen=True)
class Model:
    name: str
    collection_id: str
    display_name: str
    primary_keys: tuple[str, ...]
    reference_field: str | None
    columns: tuple[Column, ...]
    relations: tuple[Relation, ...] = ()
    actions: tuple[Action, ...] = ()

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def relation(self, name: str) -> Relation | None:
        return next((r for r in self.relations if r.name == name), None)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _customer_actions() -> tuple[Action, ...]:
    names = ("send-invoice", "refund", "archive", "export-all", "add-note")
    i = names.index
    return (
        Action("send-invoice", "Send invoice", "customers", i("send-invoice")),
        Action("refund", "Refund", "customers", i("refund"), form=refund_form, load_hook=True),
        Action("archive", "Archive", "customers", i("archive")),
        Action("export-all", "Export all customers", "customers", i("export-all"), "global"),
        Action(
            "add-note", "Add note", "customers", i("add-note"), form=note_form, static_form=True
        ),
    )


MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model(
            "customers",
            "11",
            "Customers",
            ("id",),
            "name",
            (
                Column("id", "Number"),
                Column("name", "String"),
                Column("email", "String"),
                Column("tier", "Enum", ("bronze", "silver", "gold")),
                Column("vip", "Boolean"),
                Column("signup", "Dateonly"),
            ),
            (
                Relation("orders", "HasMany", "orders", "customer_id", schema_target="orders.id"),
                Relation("address", "HasOne", "addresses", "customer_id"),
                Relation("company", "BelongsTo", "companies", "company_id"),
            ),
            _customer_actions(),
        ),
        Model(
            "orders",
            "12",
            "Orders",
            ("id",),
            "reference",
            (
                Column("id", "Number"),
                Column("reference", "String"),
                Column("amount", "Number"),
                Column("status", "Enum", ("pending", "paid", "refunded", "cancelled")),
            ),
            (Relation("customer", "BelongsTo", "customers", "customer_id"),),
        ),
        Model(
            "companies",
            "13",
            "Companies",
            ("id",),
            "name",
            (Column("id", "Number"), Column("name", "String")),
        ),
        Model(
            "addresses",
            "14",
            "Addresses",
            ("id",),
            "city",
            (Column("id", "Number"), Column("city", "String")),
        ),
        Model(
            "subscriptions",
            "15",
            "Subscriptions",
            ("plan", "year"),
            None,
            (Column("plan", "String"), Column("year", "Number"), Column("seats", "Number")),
            (Relation("customer", "BelongsTo", "customers", "customer_id"),),
            (Action("renew", "Renew", "subscriptions", 0),),
        ),
        Model(
            "comments",
            "16",
            "Comments",
            ("id",),
            "body",
            (
                Column("id", "Number"),
                Column("body", "String"),
                Column("commentable_type", "String"),
            ),
            (
                Relation(
                    "commentable",
                    "BelongsTo",
                    None,
                    "commentable_id",
                    polymorphic_type_field="commentable_type",
                    polymorphic_models=("customers", "orders"),
                ),
            ),
        ),
    )
}


def default_dataset() -> dict[str, list[dict[str, Any]]]:
    """Rows per collection. Keys ending in ``_id`` (but ``id``) are hidden foreign keys."""
    return {
        "customers": [
            {
                "id": 1,
                "name": "Ada Lovelace",
                "email": "ada@example.com",
                "tier": "gold",
                "vip": True,
                "signup": "2020-01-15",
                "company_id": 1,
            },
            {
                "id": 2,
                "name": "Grace Hopper",
                "email": "grace@example.com",
                "tier": "silver",
                "vip": False,
                "signup": "2021-06-01",
                "company_id": 2,
            },
            {
                "id": 3,
                "name": "Alan Turing",
                "email": "alan@example.com",
                "tier": "bronze",
                "vip": False,
                "signup": "2022-03-10",
                "company_id": None,
            },
        ],
        "orders": [
            {"id": 101, "reference": "A-101", "amount": 120, "status": "paid", "customer_id": 1},
            {
                "id": 102,
                "reference": "A-102",
                "amount": 35.5,
                "status": "pending",
                "customer_id": 1,
            },
            {"id": 103, "reference": "A-103", "amount": 560, "status": "paid", "customer_id": 1},
            {"id": 104, "reference": "B-104", "amount": 15, "status": "refunded", "customer_id": 1},
            {
                "id": 105,
                "reference": "B-105",
                "amount": 999.99,
                "status": "pending",
                "customer_id": 1,
            },
            {"id": 201, "reference": "G-201", "amount": 42, "status": "paid", "customer_id": 2},
        ],
        "companies": [{"id": 1, "name": "Acme"}, {"id": 2, "name": "Globex"}],
        "addresses": [
            {"id": 1, "city": "Paris", "customer_id": 1},
            {"id": 2, "city": "London", "customer_id": 2},
        ],
        "subscriptions": [
            {"plan": "pro", "year": 2024, "seats": 10, "customer_id": 1},
            {"plan": "pro", "year": 2025, "seats": 12, "customer_id": 1},
            {"plan": "basic", "year": 2024, "seats": 2, "customer_id": 2},
        ],
        "comments": [
            {
                "id": 1,
                "body": "Great customer",
                "commentable_type": "customers",
                "commentable_id": 1,
            },
            {"id": 2, "body": "Late delivery", "commentable_type": "orders", "commentable_id": 102},
            {"id": 3, "body": "Orphan note", "commentable_type": None, "commentable_id": None},
        ],
    }


def collection_schemas(agent: SandboxAgent) -> dict[str, dict[str, Any]]:
    """Per collection, the CollectionSchema the orchestrator's collection-schema endpoint sends."""
    return {name: _collection_schema(model) for name, model in agent.models.items()}


def _collection_schema(model: Model) -> dict[str, Any]:
    fields: list[dict[str, Any]] = []
    for column in model.columns:
        entry: dict[str, Any] = {
            "fieldName": column.name,
            "displayName": _display(column.name),
            "isRelationship": False,
            "type": column.type,
        }
        if column.enum_values:
            entry["enumValues"] = list(column.enum_values)
        fields.append(entry)
    for relation in model.relations:
        entry = {
            "fieldName": relation.name,
            "displayName": _display(relation.name),
            "isRelationship": True,
            "relationType": relation.relation_type,
            "type": None,
        }
        if relation.target is not None:
            entry["relatedCollectionName"] = relation.schema_target or relation.target
        if relation.polymorphic_type_field is not None:
            entry["polymorphicTypeField"] = relation.polymorphic_type_field
            entry["polymorphicReferencedModels"] = list(relation.polymorphic_models)
        fields.append(entry)
    return {
        "collectionName": model.name,
        "collectionId": model.collection_id,
        "collectionDisplayName": model.display_name,
        "primaryKeyFields": list(model.primary_keys),
        "referenceField": model.reference_field,
        "fields": fields,
        "actions": [action.schema() for action in model.actions],
    }


def _display(name: str) -> str:
    return name.replace("_", " ").capitalize()


# --- observation records ------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str  # decoded: /forest/subscriptions/pro|2024
    raw_path: str  # as sent: /forest/subscriptions/pro%7C2024
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    claims: dict[str, Any] | None  # the decoded JWT when its signature and expiry were valid


@dataclass(frozen=True)
class RecordUpdate:
    collection: str
    record_id: str  # pipe-joined
    attributes: dict[str, Any]
    claims: dict[str, Any]


@dataclass(frozen=True)
class ActionExecution:
    action: str
    collection: str
    ids: list[str]
    values: dict[str, Any]
    claims: dict[str, Any]


class _HttpError(Exception):
    def __init__(self, status: int, name: str, detail: str, data: Any = None) -> None:
        super().__init__(detail)
        self.status = status
        self.name = name
        self.detail = detail
        self.data = data


def _bad_request(detail: str) -> _HttpError:
    return _HttpError(400, "ValidationError", detail)


def _not_found(detail: str = "Record does not exist") -> _HttpError:
    return _HttpError(404, "NotFoundError", detail)


_ROUTES = Map(
    [
        Rule(
            "/forest/_actions/<collection>/<int:index>/<slug>/hooks/load",
            endpoint="load_hook",
            methods=["POST"],
        ),
        Rule(
            "/forest/_actions/<collection>/<int:index>/<slug>/hooks/change",
            endpoint="change_hook",
            methods=["POST"],
        ),
        Rule(
            "/forest/_actions/<collection>/<int:index>/<slug>", endpoint="execute", methods=["POST"]
        ),
        Rule(
            "/forest/<collection>/<record_id>/relationships/<relation>",
            endpoint="list_related",
            methods=["GET"],
        ),
        Rule("/forest/<collection>/<record_id>", endpoint="record", methods=["GET", "PUT"]),
    ],
    strict_slashes=False,
    merge_slashes=False,
)


@dataclass
class _Projection:
    columns: list[str]
    to_one: dict[str, list[str] | None]  # relation -> projected target fields (None: all)
    to_many_links: bool


@dataclass
class _Fault:
    prefix: str
    status: int
    remaining: int
    body: Any = field(default=None)


# --- the agent ----------------------------------------------------------------------------------


class SandboxAgent:
    """Start with :meth:`start` (or as a context manager); ``url`` is its base URL (AGENT_URL).

    ``store`` keeps the rows (in memory by default; :meth:`with_sqlite` for a file); a store with
    no row is seeded with ``dataset`` (default :func:`default_dataset`). Change rows while the
    agent serves with :meth:`add_record`, :meth:`update_record` and :meth:`remove_record`.
    """

    def __init__(
        self,
        auth_secret: str,
        *,
        dataset: Mapping[str, Iterable[Mapping[str, Any]]] | None = None,
        store: Dataset | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.auth_secret = auth_secret
        self.models: dict[str, Model] = dict(MODELS)
        self.store: Dataset = MemoryDataset(self.models) if store is None else store
        self.requests: list[RecordedRequest] = []
        self.updates: list[RecordUpdate] = []
        self.executions: list[ActionExecution] = []
        self.requires_approval: set[str] = {"archive"}  # action names answering the approval 403
        self.action_results: dict[str, Any] = {
            "send-invoice": {"success": "Invoice sent"},
            "refund": {"success": "Refund issued"},
            "export-all": {"success": "Export started"},
            "add-note": {"success": "Note added"},
            "renew": {"success": "Subscription renewed"},
        }
        self.frozen = threading.Event()
        self.frozen.set()  # set = answering; clear() holds every request until set() again
        self._faults: list[_Fault] = []
        self._delays: dict[str, float] = {}
        self._stopping = threading.Event()
        self._changed = threading.Condition()
        if self.store.is_empty():
            for collection, rows in (default_dataset() if dataset is None else dataset).items():
                for row in rows:
                    self.add_record(collection, row)
        self._host = host
        self._server = make_server(host, port, self._wsgi, threaded=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="sandbox-agent",
            daemon=True,
        )

    # --- lifecycle ------------------------------------------------------------------------------

    @classmethod
    def with_sqlite(cls, auth_secret: str, path: Path, **options: Any) -> SandboxAgent:
        """An agent over the SQLite file ``path`` (created and seeded when new)."""
        return cls(auth_secret, store=SqliteDataset(path, MODELS), **options)

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._server.port}"

    @property
    def serving(self) -> bool:
        """Whether :meth:`start` was called (and :meth:`stop` not yet)."""
        return self._thread.is_alive()

    def close(self) -> None:
        """Release the socket and the store of an agent that was never started."""
        self._server.server_close()
        self.store.close()

    def start(self) -> SandboxAgent:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases requests held in a delay
        self.frozen.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self.store.close()

    def __enter__(self) -> SandboxAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- data -----------------------------------------------------------------------------------

    def add_record(self, collection: str, row: Mapping[str, Any]) -> str:
        """Add (or replace) a row; returns its pipe-joined id."""
        model = self.models[collection]
        record_id = _pipe_id(model, row)
        with self._changed:
            self.store.put(collection, record_id, row)
        return record_id

    def update_record(self, collection: str, record_id: str, /, **values: Any) -> None:
        with self._changed:
            self.store.update(collection, record_id, values)

    def remove_record(self, collection: str, record_id: str) -> None:
        with self._changed:
            self.store.delete(collection, record_id)

    def record(self, collection: str, record_id: str) -> dict[str, Any] | None:
        """A copy of the stored row (hidden foreign keys included), or None."""
        with self._changed:
            return self.store.get(collection, record_id)

    # --- scripting ------------------------------------------------------------------------------

    def fail(self, path_prefix: str, status: int, times: int = 1, body: Any = None) -> None:
        """Answer ``status`` (with ``body``, default a JSON:API error) to the next ``times``
        requests whose path starts with the prefix. The probe is not exempt."""
        with self._changed:
            self._faults.append(_Fault(path_prefix, status, times, body))

    def delay(self, path_prefix: str, seconds: float) -> None:
        """Hold every request whose path starts with the prefix for ``seconds`` before answering."""
        with self._changed:
            self._delays[path_prefix] = seconds

    # --- observation ----------------------------------------------------------------------------

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Wait until ``predicate()`` holds, re-checked after each request the agent handles."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout=timeout)

    def count(self, path_prefix: str, method: str | None = None) -> int:
        return len(self.requests_to(path_prefix, method))

    def requests_to(self, path_prefix: str, method: str | None = None) -> list[RecordedRequest]:
        """Recorded requests whose decoded path starts with the prefix (and of that method)."""
        with self._changed:
            return [
                r
                for r in self.requests
                if r.path.startswith(path_prefix) and (method is None or r.method == method)
            ]

    # --- protocol -------------------------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            response = self._handle(request, environ)
        except _HttpError as error:
            response = _error_response(error)
        with self._changed:
            self._changed.notify_all()
        return response(environ, start_response)

    def _handle(self, request: Request, environ: dict[str, Any]) -> Response:
        body = request.get_json(silent=True)
        claims, auth_problem = self._authenticate(request.headers.get("Authorization"))
        raw_uri = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.path)
        with self._changed:
            self.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    raw_path=raw_uri.split("?", 1)[0],
                    query=dict(request.args),
                    headers=dict(request.headers),
                    body=body,
                    claims=claims,
                )
            )
            delays = [s for prefix, s in self._delays.items() if request.path.startswith(prefix)]
        self.frozen.wait()
        for seconds in delays:
            self._stopping.wait(seconds)  # simulates a slow agent, not a test synchronisation
        fault = self._take_fault(request.path)
        if fault is not None:
            if fault.body is not None:
                return _json(fault.body, fault.status)
            raise _HttpError(fault.status, "InjectedError", "injected failure")
        if request.method == "GET" and request.path in ("/forest", "/forest/"):
            return _json({"error": None, "message": "Agent is running"})
        if auth_problem is not None:
            raise _HttpError(401, "AuthenticationError", auth_problem)
        _check_timezone(request.args.get("timezone"))
        try:
            endpoint, args = _ROUTES.bind_to_environ(environ).match()
        except NotFound as error:
            raise _not_found("Not found") from error
        except MethodNotAllowed as error:
            raise _HttpError(405, "MethodNotAllowedError", "Method not allowed") from error
        assert claims is not None
        if endpoint == "record" and request.method == "GET":
            return self._read(args["collection"], args["record_id"], request.args)
        if endpoint == "record":
            return self._update(args["collection"], args["record_id"], body, claims)
        if endpoint == "list_related":
            return self._list_related(
                args["collection"], args["record_id"], args["relation"], request.args
            )
        action = self._action(args["collection"], args["index"], args["slug"])
        if endpoint == "load_hook":
            return self._load_hook(action, body)
        if endpoint == "change_hook":
            return self._change_hook(action, body)
        return self._execute(action, body, claims)

    def _authenticate(self, header: str | None) -> tuple[dict[str, Any] | None, str | None]:
        """(decoded claims when the signature and expiry hold, the reason to answer 401 or None)."""
        if not header or not header.startswith("Bearer "):
            return None, "Missing bearer token"
        try:
            claims: dict[str, Any] = jwt.decode(
                header[len("Bearer ") :],
                self.auth_secret,
                algorithms=["HS256"],
                options={"require": ["iat", "exp"]},
            )
        except jwt.PyJWTError as error:
            return None, f"Invalid token: {error}"
        return claims, _claims_problem(claims)

    def _take_fault(self, path: str) -> _Fault | None:
        with self._changed:
            for i, fault in enumerate(self._faults):
                if path.startswith(fault.prefix):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        del self._faults[i]
                    return fault
        return None

    # --- records --------------------------------------------------------------------------------

    def _model(self, collection: str) -> Model:
        model = self.models.get(collection)
        if model is None:
            raise _not_found(f"Collection '{collection}' not found")
        return model

    def _row(self, model: Model, record_id: str) -> dict[str, Any]:
        _check_id_arity(model, record_id)
        row = self.store.get(model.name, record_id)
        if row is None:
            raise _not_found()
        return row

    def _read(self, collection: str, record_id: str, query: Mapping[str, str]) -> Response:
        model = self._model(collection)
        projection = self._projection(model, query)
        with self._changed:
            row = self._row(model, record_id)
            resource, included = self._resource(model, row, projection)
        return _json(_document(resource, included))

    def _update(
        self, collection: str, record_id: str, body: Any, claims: dict[str, Any]
    ) -> Response:
        model = self._model(collection)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("attributes"), dict):
            raise _bad_request("Expected a body {data: {attributes, type, id}}")
        if data.get("type") != collection:
            raise _bad_request(f"data.type must be '{collection}'")
        if data.get("id") != record_id:
            raise _bad_request(f"data.id must be the record id '{record_id}'")
        attributes: dict[str, Any] = data["attributes"]
        for name, value in attributes.items():
            column = model.column(name)
            if column is None:
                raise _bad_request(f"Unknown field '{name}' on '{collection}'")
            if name in model.primary_keys:
                raise _bad_request(f"The primary key '{name}' cannot be updated")
            if value is not None and not _column_accepts(column, value):
                raise _bad_request(f"Wrong value for '{name}': {value!r}")
        with self._changed:
            self._row(model, record_id)
            self.store.update(collection, record_id, attributes)
            row = self._row(model, record_id)
            self.updates.append(RecordUpdate(collection, record_id, dict(attributes), claims))
            resource, included = self._resource(model, row, self._projection(model, {}))
        return _json(_document(resource, included))

    def _list_related(
        self, collection: str, record_id: str, relation_name: str, query: Mapping[str, str]
    ) -> Response:
        model = self._model(collection)
        relation = model.relation(relation_name)
        if relation is None or relation.is_to_one or relation.target is None:
            raise _not_found(f"No to-many relation '{relation_name}' on '{collection}'")
        target = self._model(relation.target)
        _check_id_arity(model, record_id)
        matches = _condition(target, _filters(query.get("filters")))
        size = _positive_int(query.get("page[size]"), 15, "page[size]")
        number = _positive_int(query.get("page[number]"), 1, "page[number]")
        projection = self._projection(target, query)
        with self._changed:
            parent = self.store.get(model.name, record_id)
            # An unknown parent lists nothing, as real agents do (they filter on the parent id).
            children = [] if parent is None else self._children(model, parent, relation)
            page = [row for row in children if matches(row)][(number - 1) * size : number * size]
            resources: list[dict[str, Any]] = []
            included: list[dict[str, Any]] = []
            for row in page:
                resource, row_included = self._resource(target, row, projection)
                resources.append(resource)
                included.extend(row_included)
        return _json(_document(resources, included))

    def _projection(self, model: Model, query: Mapping[str, str]) -> _Projection:
        raw = query.get(f"fields[{model.name}]")
        to_one: dict[str, list[str] | None] = {}
        if not raw:
            to_one.update((r.name, None) for r in model.relations if r.is_to_one)
            return _Projection(model.column_names, to_one, to_many_links=True)
        columns = list(model.primary_keys)
        for name in (n.strip() for n in raw.split(",")):
            relation = model.relation(name)
            if model.column(name) is not None:
                if name not in columns:
                    columns.append(name)
            elif relation is not None and relation.is_to_one:
                to_one[name] = self._related_projection(relation, query.get(f"fields[{name}]"))
            else:
                raise _bad_request(f"Invalid projection: '{name}' on '{model.name}'")
        return _Projection(columns, to_one, to_many_links=False)

    def _related_projection(self, relation: Relation, raw: str | None) -> list[str] | None:
        if not raw:
            return None
        names = [n.strip() for n in raw.split(",")]
        candidates = [relation.target] if relation.target else list(relation.polymorphic_models)
        known = {c for model in candidates for c in self.models[model].column_names}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise _bad_request(f"Invalid projection: {unknown} on relation '{relation.name}'")
        return names

    def _resource(
        self, model: Model, row: Mapping[str, Any], projection: _Projection
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        record_id = _pipe_id(model, row)
        resource: dict[str, Any] = {
            "type": model.name,
            "id": record_id,
            "attributes": {name: copy.deepcopy(row.get(name)) for name in projection.columns},
        }
        relationships: dict[str, Any] = {}
        included: list[dict[str, Any]] = []
        for relation in model.relations:
            links = {
                "related": {
                    "href": f"/forest/{model.name}/{quote(record_id, safe='')}"
                    f"/relationships/{relation.name}"
                }
            }
            if relation.is_to_one and relation.name in projection.to_one:
                linked = self._linked(model, row, relation)
                if linked is None:
                    relationships[relation.name] = {"data": None, "links": links}
                    continue
                target, target_row = linked
                target_id = _pipe_id(target, target_row)
                relationships[relation.name] = {
                    "data": {"type": target.name, "id": target_id},
                    "links": links,
                }
                wanted = projection.to_one[relation.name]
                names = target.column_names if wanted is None else list(target.primary_keys)
                names += [n for n in wanted or () if n not in names and target.column(n)]
                included.append(
                    {
                        "type": target.name,
                        "id": target_id,
                        "attributes": {n: copy.deepcopy(target_row.get(n)) for n in names},
                    }
                )
            elif not relation.is_to_one and projection.to_many_links:
                relationships[relation.name] = {"links": links}
        if relationships:
            resource["relationships"] = relationships
        return resource, included

    def _linked(
        self, model: Model, row: Mapping[str, Any], relation: Relation
    ) -> tuple[Model, dict[str, Any]] | None:
        if relation.relation_type == "HasOne":
            children = self._children(model, row, relation)
            return (self.models[relation.target or ""], children[0]) if children else None
        target_name = relation.target
        if relation.polymorphic_type_field is not None:
            target_name = row.get(relation.polymorphic_type_field)
        key = row.get(relation.key)
        if target_name not in self.models or key is None:
            return None
        target_row = self.store.get(str(target_name), str(key))
        return (self.models[str(target_name)], target_row) if target_row is not None else None

    def _children(
        self, model: Model, parent: Mapping[str, Any], relation: Relation
    ) -> list[dict[str, Any]]:
        parent_key = parent.get(model.primary_keys[0])
        return [
            row
            for row in self.store.rows(relation.target or "")
            if row.get(relation.key) == parent_key
        ]

    # --- actions --------------------------------------------------------------------------------

    def _action(self, collection: str, index: int, slug: str) -> Action:
        model = self._model(collection)
        if index >= len(model.actions) or model.actions[index].name != slug:
            raise _not_found(f"No action '{slug}' at index {index} on '{collection}'")
        return model.actions[index]

    def _action_attributes(self, action: Action, body: Any, request_type: str) -> dict[str, Any]:
        """The validated ``data.attributes`` of an action request (§4.8, §4.9)."""
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("attributes"), dict):
            raise _bad_request("Expected a body {data: {attributes, type}}")
        if data.get("type") != request_type:
            raise _bad_request(f"data.type must be '{request_type}'")
        attributes: dict[str, Any] = data["attributes"]
        if attributes.get("collection_name") != action.collection:
            raise _bad_request(f"collection_name must be '{action.collection}'")
        ids = attributes.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise _bad_request("ids must be a list of pipe-joined record ids (strings)")
        if action.scope == "global" and ids:
            raise _bad_request("A global action is called with ids []")
        if action.scope == "single" and len(ids) != 1:
            raise _bad_request("A single action is called with exactly one id")
        model = self.models[action.collection]
        with self._changed:
            for record_id in ids:
                self._row(model, record_id)
        return attributes

    def _load_hook(self, action: Action, body: Any) -> Response:
        attributes = self._action_attributes(action, body, "action-requests")
        values = attributes.get("values")
        if not isinstance(values, dict):
            raise _bad_request("values must be an object")
        return _json({"fields": [f.plain() for f in action.form(values)]})

    def _change_hook(self, action: Action, body: Any) -> Response:
        attributes = self._action_attributes(action, body, "custom-action-hook-requests")
        fields = attributes.get("fields")
        if not isinstance(fields, list) or not all(
            isinstance(f, dict) and isinstance(f.get("field"), str) and "type" in f for f in fields
        ):
            raise _bad_request("fields must be the current form's fields ({field, type, value})")
        changed = attributes.get("changed_field")
        if changed not in {f["field"] for f in fields}:
            raise _bad_request("changed_field must name a field of the form")
        values = {f["field"]: f.get("value") for f in fields}
        return _json({"fields": [f.plain() for f in action.form(values)]})

    def _execute(self, action: Action, body: Any, claims: dict[str, Any]) -> Response:
        attributes = self._action_attributes(action, body, "custom-action-requests")
        values = attributes.get("values")
        if not isinstance(values, dict):
            raise _bad_request("values must be an object")
        if attributes.get("smart_action_id") != action.name:
            raise _bad_request(f"smart_action_id must be '{action.name}'")
        if action.name in self.requires_approval:
            raise _HttpError(
                403,
                APPROVAL_ERROR,
                "This action requires to be approved.",
                {"rolesIdsAllowedToApprove": [1, 2]},
            )
        form = {f.name: f for f in action.form(values)}
        for name, value in values.items():
            if name not in form:
                raise _bad_request(f"Unknown field '{name}' in the form of '{action.name}'")
            if value is not None and not form[name].accepts(value):
                raise _HttpError(422, "UnprocessableError", f"Wrong value for '{name}': {value!r}")
        missing = [f.name for f in form.values() if f.is_required and f.value is None]
        if missing:
            raise _bad_request(f"Missing required fields: {', '.join(missing)}")
        with self._changed:
            self.executions.append(
                ActionExecution(
                    action.name, action.collection, list(attributes["ids"]), dict(values), claims
                )
            )
            result = copy.deepcopy(self.action_results.get(action.name, {"success": "Done"}))
        return _json(result)


# --- helpers ------------------------------------------------------------------------------------


def _claims_problem(claims: Mapping[str, Any]) -> str | None:
    missing = [name for name in REQUIRED_CLAIMS if name not in claims]
    if missing:
        return f"Missing claims: {', '.join(missing)}"
    if claims["scope"] != STEP_EXECUTION_SCOPE:
        return f"scope must be '{STEP_EXECUTION_SCOPE}'"
    if claims["exp"] - claims["iat"] != TOKEN_LIFETIME_S:
        return f"The token must live {TOKEN_LIFETIME_S} s (exp - iat)"
    leaked = [name for name in FORBIDDEN_CLAIMS if name in claims]
    if leaked:
        return f"The token must not carry {', '.join(leaked)}"
    for alias, name in CLAIM_ALIASES.items():
        if claims[alias] != claims[name]:
            return f"Claim '{alias}' differs from '{name}'"
    if not isinstance(claims["tags"], dict):
        return "Claim 'tags' must be an object"
    return None


def _check_timezone(timezone: str | None) -> None:
    if not timezone:
        raise _HttpError(400, "FilterException", "Missing timezone")
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise _HttpError(400, "FilterException", f"Invalid timezone {timezone}") from error


def _pipe_id(model: Model, row: Mapping[str, Any]) -> str:
    return "|".join(str(row[pk]) for pk in model.primary_keys)


def _check_id_arity(model: Model, record_id: str) -> None:
    parts = record_id.split("|")
    if len(parts) != len(model.primary_keys) or not all(parts):
        raise _bad_request(
            f"Expected {len(model.primary_keys)} primary key value(s) for '{model.name}', "
            f"got '{record_id}'"
        )


def _fits(type_: Any, value: Any) -> bool:
    if isinstance(type_, list):
        return isinstance(value, list) and all(_fits(type_[0], v) for v in value)
    if type_ == "Number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if type_ == "Boolean":
        return isinstance(value, bool)
    if type_ in ("String", "Enum", "Uuid", "Time", "Timeonly", "Date"):
        return isinstance(value, str)
    if type_ == "Dateonly":
        try:
            date.fromisoformat(value)
        except (TypeError, ValueError):
            return False
        return True
    return True


def _column_accepts(column: Column, value: Any) -> bool:
    if column.enum_values is not None:
        return value in column.enum_values
    return _fits(column.type, value)


def _positive_int(raw: str | None, default: int, name: str) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as error:
        raise _bad_request(f"Invalid {name}: {raw!r}") from error
    if value <= 0:
        raise _bad_request(f"Invalid {name}: {raw!r}")
    return value


def _filters(raw: str | None) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as error:
        raise _bad_request("filters is not valid JSON") from error


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "equal": lambda field, value: field == value,
    "not_equal": lambda field, value: field != value,
    "greater_than": lambda field, value: _compare(field, value, 1),
    "less_than": lambda field, value: _compare(field, value, -1),
    "in": lambda field, value: isinstance(value, list) and field in value,
    "not_in": lambda field, value: isinstance(value, list) and field not in value,
    "contains": lambda field, value: isinstance(field, str) and str(value) in field,
    "i_contains": lambda field, value: (
        isinstance(field, str) and str(value).lower() in field.lower()
    ),
    "starts_with": lambda field, value: isinstance(field, str) and field.startswith(str(value)),
    "ends_with": lambda field, value: isinstance(field, str) and field.endswith(str(value)),
    "present": lambda field, value: field is not None and field != "",
    "blank": lambda field, value: field is None or field == "",
}


def _compare(field: Any, value: Any, sign: int) -> bool:
    try:
        return bool(field > value) if sign > 0 else bool(field < value)
    except TypeError:
        return False


def _condition(model: Model, tree: Any) -> Callable[[Mapping[str, Any]], bool]:
    """A row predicate for a condition tree whose operators arrive in snake_case (§4.5)."""
    if tree is None:
        return lambda row: True
    if not isinstance(tree, dict):
        raise _bad_request("A condition must be an object")
    if "aggregator" in tree:
        aggregator = tree["aggregator"]
        conditions = tree.get("conditions")
        if aggregator not in ("and", "or") or not isinstance(conditions, list):
            raise _bad_request(f"Invalid branch: aggregator {aggregator!r} (expected and | or)")
        parts = [_condition(model, c) for c in conditions]
        combine = all if aggregator == "and" else any
        return lambda row: combine(part(row) for part in parts)
    name, operator = tree.get("field"), tree.get("operator")
    if not isinstance(name, str) or model.column(name) is None:
        raise _bad_request(f"Unknown filter field {name!r} on '{model.name}'")
    test = _OPERATORS.get(operator) if isinstance(operator, str) else None
    if test is None:
        raise _bad_request(f"Unsupported operator {operator!r}")
    value = tree.get("value")
    return lambda row: test(row.get(name), value)


def _document(data: Any, included: list[dict[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {"data": data}
    unique: dict[tuple[str, str], dict[str, Any]] = {}
    for resource in included:
        key = (resource["type"], resource["id"])
        if key in unique:  # the same related record reached twice: merge what was projected
            unique[key]["attributes"].update(resource["attributes"])
        else:
            unique[key] = resource
    if unique:
        document["included"] = list(unique.values())
    return document


def _error_response(error: _HttpError) -> Response:
    entry: dict[str, Any] = {"name": error.name, "detail": error.detail, "status": error.status}
    if error.data is not None:
        entry["data"] = error.data
    return _json({"errors": [entry]}, error.status)


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json")
