"""A REAL Python Forest agent (forestadmin-agent-flask + SQLAlchemy datasource) on a loopback port.

:func:`start_python_agent` builds a SQLite database, wraps it in ``SqlAlchemyDatasource``, adds
smart actions on ``customers`` and serves the agent's Flask app on ``127.0.0.1`` (OS-chosen port)
in a thread. The agent's own calls to the Forest server (schema upload, IP whitelist, permissions)
go to :class:`FakeForestServerForAgent`, which runs its own loopback server or is delegated to by
another fake through :meth:`FakeForestServerForAgent.handle`. Nothing reaches the internet.

The ``forestadmin`` packages are imported lazily, so this module imports without them; tests
using it ``pytest.importorskip("forestadmin.flask_agent.agent")`` and apply
:data:`AGENT_WARNING_FILTERS` (the agent serves requests under the test's process-wide warning
filters, so a warning raised in its request thread turns into an HTTP 500).

Where the agent (1.23.11) differs from what PROTOCOL.md section 4 assumes:

- ``GET /forest`` answers 200 (empty body, no auth needed); ``GET /forest/`` answers 404 (HTML).
- ``auth_secret`` must match ``^[-~/\\w]*$`` (no ``!`` or ``.``) or the agent refuses to start;
  ``env_secret`` must be 64 lowercase hex characters.
- The JWT (HS256) must carry ``id``, ``email``, ``first_name``, ``last_name``, ``team`` and
  ``rendering_id``; ``tags`` is optional. A missing claim is a 500, a bad token a bare 401.
- ``timezone`` is mandatory on data and action routes (500 ``Missing timezone`` otherwise).
- A JSON:API ``id`` is the raw key for a simple numeric key (``"id": 1``, a JSON number) and a
  pipe-joined string for a composite key (``"10|2"``); relationship linkage ids are strings.
- Action endpoints are ``/forest/_actions/<collection>/<index>/<slug>``: ``<index>`` is the
  action's position in its collection, the slug its lower-cased name with spaces kept
  (``/forest/_actions/customers/1/mark as vip``), so the endpoint must be percent-encoded.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.waiting import eventually

AGENT_ENV_SECRET = "ab" * 32  # the same value as tests.fakes.orchestrator.ENV_SECRET
# The agent rejects any auth secret outside [-~/\w] (tests/conftest.py's AUTH_SECRET has a "!").
AGENT_AUTH_SECRET = "python-agent-auth-secret-long-enough-for-hs256"
USER_ID = 7
RENDERING_ID = 3
ROLE_ID = 1

# Warnings the agent raises while serving requests, as pytest ``filterwarnings`` entries.
AGENT_WARNING_FILTERS = (
    # forestadmin-datasource-sqlalchemy 1.23.11 joins a related model without aliased(), which
    # SQLAlchemy 2.1 deprecates; raised when a projection crosses a relation (to-one reads, lists).
    "ignore:An alias is being generated automatically:sqlalchemy.exc.SADeprecationWarning",
)

# Smart actions added on ``customers``, in declaration order (the order gives the endpoint index).
# Refund's form: amount (Number), reason (Enum), note (String recomputed when amount changes).
REFUND = "Refund"
MARK_AS_VIP = "Mark as VIP"  # no form; sets tier to "vip"
CLOSE_ACCOUNT = "Close account"  # no form; the fake Forest server makes it require an approval
CUSTOMER_ACTIONS = (REFUND, MARK_AS_VIP, CLOSE_ACCOUNT)
REFUND_REASONS = ("late delivery", "damaged", "other")
REFUND_LIMIT = 1000  # a larger amount makes Refund fail with a business error (HTTP 400)
TIERS = ("bronze", "silver", "gold", "vip")


# --- the Forest server, as the agent sees it ------------------------------------------------------


@dataclass
class AgentCall:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeForestServerForAgent:
    """Answers the agent's own calls to the Forest server.

    Endpoints (all GET unless said; the agent sends ``forest-secret-key: <env secret>``):

    - ``POST /forest/apimaps/hashcheck`` ``{"schemaFileHash"}`` -> ``{"sendSchema": true}``
    - ``POST /forest/apimaps`` (the JSON:API schema) -> 204; kept in :attr:`apimap`
    - ``/liana/v1/ip-whitelist-rules`` -> ``{"data": {"attributes": {"use_ip_whitelist": false,
      "rules": []}}}``
    - ``/liana/v4/permissions/environment`` -> ``{"collections": {...}}`` (roles per CRUD right and
      per action; see :meth:`environment_permissions`), or ``true`` when :attr:`permissions` is
      off (then the agent skips every permission check, approvals included)
    - ``/liana/v4/permissions/users`` -> ``[{"id", "roleId", ...}]``
    - ``/liana/v4/permissions/renderings/{id}`` -> ``{"collections": {name: {"scope": null}},
      "stats": [], "team": {...}}``

    :meth:`handle` returns None for any other call (OIDC, SSE events: the agent does not make
    them here); the standalone server answers those 404.

    The agent caches, per agent instance and for 15 minutes, the IP whitelist, the users, the
    rendering and whether permissions are on at all (``permissions`` must be set before its first
    request); it re-reads the environment permissions on every action execution, so
    :meth:`require_approval` takes effect at once. The users list must hold the JWT's ``id``
    (default: user 7 with role 1), else the agent answers 500.
    """

    env_secret: str = AGENT_ENV_SECRET
    collections: dict[str, list[str]] = field(default_factory=dict)  # name -> action names
    approval_required: set[tuple[str, str]] = field(default_factory=set)
    users: list[dict[str, Any]] = field(default_factory=list)
    permissions: bool = True
    calls: list[AgentCall] = field(default_factory=list)
    apimap: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.users:
            self.users = [_forest_user(USER_ID)]
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # --- scripting ----------------------------------------------------------------------------

    def register(self, collection: str, actions: list[str] | tuple[str, ...] = ()) -> None:
        with self._lock:
            self.collections[collection] = list(actions)

    def require_approval(self, collection: str, action: str, required: bool = True) -> None:
        """The agent re-reads action permissions on every execution: this takes effect at once."""
        with self._lock:
            if required:
                self.approval_required.add((collection, action))
            else:
                self.approval_required.discard((collection, action))

    # --- answers ------------------------------------------------------------------------------

    def environment_permissions(self) -> dict[str, Any]:
        roles = {"roles": [ROLE_ID]}
        with self._lock:
            collections = copy.deepcopy(self.collections)
            approvals = set(self.approval_required)
        return {
            "collections": {
                name: {
                    "collection": {
                        right: dict(roles)
                        for right in (
                            "browseEnabled",
                            "readEnabled",
                            "editEnabled",
                            "addEnabled",
                            "deleteEnabled",
                            "exportEnabled",
                        )
                    },
                    "actions": {
                        action: {
                            "triggerEnabled": dict(roles),
                            "triggerConditions": [],
                            "approvalRequired": {
                                "roles": [ROLE_ID] if (name, action) in approvals else []
                            },
                            "approvalRequiredConditions": [],
                            "userApprovalEnabled": dict(roles),
                            "userApprovalConditions": [],
                            "selfApprovalEnabled": {"roles": []},
                        }
                        for action in actions
                    },
                }
                for name, actions in collections.items()
            }
        }

    def handle(self, request: Request) -> Response | None:
        """The answer to one agent call, or None when it is not a call the agent makes."""
        route = (request.method, request.path)
        if not (
            route in _AGENT_ROUTES
            or (request.method == "GET" and request.path.startswith(_RENDERINGS))
        ):
            return None
        body = request.get_json(silent=True)
        with self._lock:
            self.calls.append(AgentCall(request.method, request.path, dict(request.headers), body))
        if request.headers.get("forest-secret-key") != self.env_secret:
            return _json({"errors": [{"detail": "bad env secret", "status": 401}]}, 401)
        if route == ("POST", "/forest/apimaps/hashcheck"):
            return _json({"sendSchema": True})
        if route == ("POST", "/forest/apimaps"):
            with self._lock:
                self.apimap = body
            return Response(status=204)
        if route == ("GET", "/liana/v1/ip-whitelist-rules"):
            return _json(
                {
                    "data": {
                        "type": "ip-whitelist-rules",
                        "id": "1",
                        "attributes": {"use_ip_whitelist": False, "rules": []},
                    }
                }
            )
        if route == ("GET", "/liana/v4/permissions/environment"):
            return _json(self.environment_permissions() if self.permissions else True)
        if route == ("GET", "/liana/v4/permissions/users"):
            with self._lock:
                return _json(copy.deepcopy(self.users))
        with self._lock:  # GET /liana/v4/permissions/renderings/{id}
            names = list(self.collections)
        return _json(
            {
                "collections": {n: {"scope": None, "liveQuerySegments": []} for n in names},
                "stats": [],
                "team": {"id": 1, "name": "Operations"},
            }
        )

    def count(self, path: str, method: str | None = None) -> int:
        with self._lock:
            return sum(
                1 for c in self.calls if c.path == path and (method is None or c.method == method)
            )

    # --- standalone loopback server -------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        response = self.handle(Request(environ))
        if response is None:
            response = _json({"errors": [{"detail": "not found", "status": 404}]}, 404)
        return response(environ, start_response)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("start() the fake Forest server first")
        return f"http://127.0.0.1:{self._server.port}"

    def start(self) -> FakeForestServerForAgent:
        self._server = make_server("127.0.0.1", 0, self, threaded=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)

    def __enter__(self) -> FakeForestServerForAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_AGENT_ROUTES = {
    ("POST", "/forest/apimaps/hashcheck"),
    ("POST", "/forest/apimaps"),
    ("GET", "/liana/v1/ip-whitelist-rules"),
    ("GET", "/liana/v4/permissions/environment"),
    ("GET", "/liana/v4/permissions/users"),
}
_RENDERINGS = "/liana/v4/permissions/renderings/"


def _forest_user(user_id: int, role_id: int = ROLE_ID) -> dict[str, Any]:
    return {
        "id": user_id,
        "roleId": role_id,
        "email": "ada@example.com",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "fullName": "Ada Lovelace",
        "permissionLevel": "admin",
        "tags": {"region": "EU"},
    }


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json")


# --- the database -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Models:
    base: Any
    customer: Any
    order: Any
    order_line: Any


def build_models() -> Models:
    """A fresh declarative Base with customers, orders and order_lines (composite key)."""
    from sqlalchemy import Boolean, Column, Enum, Float, ForeignKey, Integer, String
    from sqlalchemy.orm import DeclarativeBase, relationship

    # Plain Column attributes: string annotations (``from __future__``) would not resolve here.
    class Base(DeclarativeBase):
        pass

    class Customer(Base):
        __tablename__ = "customers"
        id = Column(Integer, primary_key=True)
        name = Column(String(100), nullable=False)
        email = Column(String(200))
        tier = Column(Enum(*TIERS, name="customer_tier", native_enum=False), default="bronze")
        is_active = Column(Boolean, default=True)
        orders = relationship("Order", back_populates="customer")

    class Order(Base):
        __tablename__ = "orders"
        id = Column(Integer, primary_key=True)
        reference = Column(String(50), nullable=False)
        amount = Column(Float)
        customer_id = Column(Integer, ForeignKey("customers.id"))
        customer = relationship("Customer", back_populates="orders")
        lines = relationship("OrderLine", back_populates="order")

    class OrderLine(Base):
        __tablename__ = "order_lines"
        order_id = Column(Integer, ForeignKey("orders.id"), primary_key=True)
        line_number = Column(Integer, primary_key=True)
        product = Column(String(100))
        quantity = Column(Integer)
        order = relationship("Order", back_populates="lines")

    return Models(base=Base, customer=Customer, order=Order, order_line=OrderLine)


SEED: dict[str, list[dict[str, Any]]] = {
    "customers": [
        {"id": 1, "name": "Ada", "email": "ada@example.com", "tier": "gold", "is_active": True},
        {"id": 2, "name": "Grace", "email": "grace@example.com", "tier": "silver"},
        {"id": 3, "name": "Alan", "email": "alan@example.com", "tier": "bronze"},
    ],
    "orders": [
        {"id": 10, "reference": "ORD-10", "amount": 120.5, "customer_id": 1},
        {"id": 11, "reference": "ORD-11", "amount": 35.0, "customer_id": 1},
        {"id": 12, "reference": "ORD-12", "amount": 99.9, "customer_id": 1},
        {"id": 20, "reference": "ORD-20", "amount": 10.0, "customer_id": 2},
        {"id": 30, "reference": "ORD-30", "amount": 5.0, "customer_id": None},
    ],
    "order_lines": [
        {"order_id": 10, "line_number": 1, "product": "Keyboard", "quantity": 1},
        {"order_id": 10, "line_number": 2, "product": "Mouse", "quantity": 2},
        {"order_id": 11, "line_number": 1, "product": "Cable", "quantity": 3},
    ],
}


def build_database(db_path: Path) -> tuple[Models, str]:
    """Create and seed the SQLite file; returns (models, SQLAlchemy URL).

    Keep ``models`` referenced while the datasource lives: SQLAlchemy's registry holds mapped
    classes weakly, and a garbage-collected model would come back without its relationships.
    """
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    models = build_models()
    url = f"sqlite:///{db_path}"
    engine = create_engine(url)
    try:
        models.base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add_all(models.customer(**row) for row in SEED["customers"])
            session.add_all(models.order(**row) for row in SEED["orders"])
            session.add_all(models.order_line(**row) for row in SEED["order_lines"])
            session.commit()
    finally:
        engine.dispose()
    return models, url


# --- the agent ------------------------------------------------------------------------------------


@dataclass
class PythonAgent:
    """A started agent: ``url`` is AGENT_URL (routes under ``/forest``)."""

    app: Any  # the agent's Flask app
    url: str
    db_url: str
    models: Models  # held so the mapped classes outlive garbage collection
    forest: FakeForestServerForAgent
    schema: list[dict[str, Any]]  # the Forest schema the agent generates (its .forestadmin-schema)
    executions: list[dict[str, Any]]  # every action execute() call: action, ids, values
    _stop: Any

    def collection_schema(self, name: str) -> dict[str, Any]:
        return next(c for c in self.schema if c["name"] == name)

    def action(self, collection: str, name: str) -> dict[str, Any]:
        actions = self.collection_schema(collection)["actions"]
        return next(a for a in actions if a["name"] == name)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Run a read query on the agent's database (to check writes)."""
        from sqlalchemy import create_engine, text

        engine = create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(text(sql))]
        finally:
            engine.dispose()

    def stop(self) -> None:
        self._stop()


def check_agent_secrets(auth_secret: str, env_secret: str) -> None:
    """The agent's own validation (forestadmin.agent_toolkit.options), with a clearer message."""
    if not re.fullmatch(r"[-~/\w]*", auth_secret):
        raise ValueError(
            "the Python agent rejects this auth secret: it must match ^[-~/\\w]*$ "
            "(use AGENT_AUTH_SECRET)"
        )
    if not re.fullmatch(r"[0-9a-f]{64}", env_secret):
        raise ValueError("the Python agent needs a 64 lowercase-hex env secret")


def start_python_agent(
    forest_server_url: str,
    *,
    db_path: Path,
    forest: FakeForestServerForAgent,
    auth_secret: str = AGENT_AUTH_SECRET,
    env_secret: str = AGENT_ENV_SECRET,
    mount: Callable[[Any, str], None] | None = None,
) -> PythonAgent:
    """Build the database next to ``db_path``, start the agent, return it (call ``stop()``).

    ``forest`` is the fake the agent's Forest-server calls reach at ``forest_server_url`` (it may
    be served by another fake that delegates to ``forest.handle``); the collections and actions
    are registered on it here so that its permissions cover them. ``mount(app, url)``, when
    given, runs once the agent's Flask app has its address and before it serves: the place to
    add routes of one's own, such as an embedded executor.
    """
    import asyncio

    from flask import Flask
    from forestadmin.agent_toolkit.agent import Agent
    from forestadmin.agent_toolkit.utils.forest_schema.emitter import SchemaEmitter
    from forestadmin.datasource_sqlalchemy.datasource import SqlAlchemyDatasource
    from forestadmin.flask_agent.agent import create_agent

    check_agent_secrets(auth_secret, env_secret)
    workdir = Path(db_path).parent
    models, db_url = build_database(Path(db_path))

    forest.register("customers", CUSTOMER_ACTIONS)
    forest.register("orders")
    forest.register("order_lines")
    forest.require_approval("customers", CLOSE_ACCOUNT)

    app = Flask("forest_python_agent", root_path=str(workdir))
    app.config.update(
        FOREST_ENV_SECRET=env_secret,
        FOREST_AUTH_SECRET=auth_secret,
        FOREST_SERVER_URL=forest_server_url,
        FOREST_IS_PRODUCTION=False,  # writes the schema file; no SSE thread
        FOREST_SCHEMA_PATH=str(workdir / ".forestadmin-schema.json"),
        FOREST_INSTANT_CACHE_REFRESH=False,
        FOREST_VERIFY_SSL=False,
    )
    agent = create_agent(app)
    datasource = SqlAlchemyDatasource(models.base, db_uri=db_url)
    agent.add_datasource(datasource)
    executions: list[dict[str, Any]] = []
    _add_customer_actions(agent, executions)

    # Agent._start() uploads the schema only once per process (a class flag): reset it so each
    # agent started here talks to its own fake Forest server.
    Agent._Agent__IS_INITIALIZED = False  # type: ignore[attr-defined]
    loop: asyncio.AbstractEventLoop = agent.loop
    try:
        agent.start()  # POST /forest/apimaps/hashcheck then /forest/apimaps
        schema = loop.run_until_complete(
            SchemaEmitter.generate("", loop.run_until_complete(agent.customizer.get_datasource()))
        )
    except BaseException:
        loop.close()
        datasource.Session.kw["bind"].dispose()
        raise
    server = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://127.0.0.1:{server.port}"
    if mount is not None:
        mount(app, url)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        loop.close()
        datasource.Session.kw["bind"].dispose()

    if not eventually(lambda: _answers(f"{url}/forest"), timeout=10):
        stop()
        raise RuntimeError(f"the Python agent at {url} did not answer GET /forest")
    return PythonAgent(
        app=app,
        url=url,
        db_url=db_url,
        models=models,
        forest=forest,
        schema=json.loads(json.dumps(schema, default=str)),
        executions=executions,
        _stop=stop,
    )


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def python_agent(db_path: Path, **kwargs: Any) -> Iterator[PythonAgent]:
    """A fake Forest server on its own port plus an agent using it (the usual test setup)."""
    with FakeForestServerForAgent(env_secret=kwargs.get("env_secret", AGENT_ENV_SECRET)) as forest:
        agent = start_python_agent(forest.url, db_path=db_path, forest=forest, **kwargs)
        try:
            yield agent
        finally:
            agent.stop()


def _add_customer_actions(agent: Any, executions: list[dict[str, Any]]) -> None:
    customers = agent.customize_collection("customers")

    async def record(context: Any, action: str) -> list[Any]:
        records = await context.get_records(["id"])
        ids = [r["id"] for r in records]
        executions.append({"action": action, "ids": ids, "values": dict(context.form_values)})
        return ids

    async def refund(context: Any, result_builder: Any) -> Any:
        await record(context, REFUND)
        amount = context.form_values.get("amount")
        if amount is not None and amount > REFUND_LIMIT:  # the agent answers 400 {"error": ...}
            return result_builder.error(f"Refunds above {REFUND_LIMIT} EUR need a manager")
        return result_builder.success(f"Refunded {amount} EUR")

    async def mark_as_vip(context: Any, result_builder: Any) -> Any:
        await record(context, MARK_AS_VIP)
        await context.collection.update(context.caller, context.filter, {"tier": "vip"})
        return result_builder.success("Customer marked as VIP")

    async def close_account(context: Any, result_builder: Any) -> Any:
        await record(context, CLOSE_ACCOUNT)
        await context.collection.update(context.caller, context.filter, {"is_active": False})
        return result_builder.success("Account closed")

    def refund_note(context: Any) -> str:
        # Reading "amount" makes the agent put a change hook on it ("hook": "changeHook").
        return f"Refund of {context.form_values.get('amount')} EUR"

    customers.add_action(
        REFUND,
        {
            "scope": "Single",
            "execute": refund,
            "form": [
                {
                    "label": "Amount",
                    "id": "amount",
                    "type": "Number",
                    "is_required": True,
                    "default_value": 10,
                    "description": "Refund amount in EUR",
                },
                {
                    "label": "Reason",
                    "id": "reason",
                    "type": "Enum",
                    "enum_values": list(REFUND_REASONS),
                    "is_required": False,
                },
                {
                    "label": "Note",
                    "id": "note",
                    "type": "String",
                    "is_required": False,
                    "value": refund_note,
                },
            ],
        },
    )
    customers.add_action(MARK_AS_VIP, {"scope": "Single", "execute": mark_as_vip})
    customers.add_action(CLOSE_ACCOUNT, {"scope": "Single", "execute": close_account})


# --- what the orchestrator would say about this agent's collections -------------------------------

REFERENCE_FIELDS = {"customers": "name", "orders": "reference"}


def orchestrator_schemas(agent: PythonAgent) -> dict[str, dict[str, Any]]:
    """The agent's collections as the orchestrator's collection-schema endpoint describes them
    (protocol §2.8), built from the schema the agent uploaded, as the Forest server does."""
    tables = {
        model.__tablename__: model.__table__
        for model in (agent.models.customer, agent.models.order, agent.models.order_line)
    }
    schemas = {}
    for index, collection in enumerate(agent.schema):
        name = collection["name"]
        fields = []
        for agent_field in collection["fields"]:
            relation = agent_field.get("relationship")
            entry: dict[str, Any] = {
                "fieldName": agent_field["field"],
                "displayName": agent_field["field"].replace("_", " ").capitalize(),
                "isRelationship": relation is not None,
            }
            if relation is not None:
                entry.update(
                    relationType=relation, relatedCollectionName=agent_field["reference"], type=None
                )
            else:
                entry["type"] = agent_field["type"]
                if agent_field.get("enums"):
                    entry["enumValues"] = agent_field["enums"]
            fields.append(entry)
        schemas[name] = {
            "collectionName": name,
            "collectionId": str(20 + index),
            "collectionDisplayName": name.replace("_", " ").capitalize(),
            # In the order of the agent's composite ids ("10|1"), not the schema's alphabetical one.
            "primaryKeyFields": [column.name for column in tables[name].primary_key.columns],
            "referenceField": REFERENCE_FIELDS.get(name),
            "fields": fields,
            "actions": [
                {
                    "name": action["name"],
                    "displayName": action["name"],
                    "endpoint": action["endpoint"],
                    "type": action["type"],
                    "hooks": action["hooks"],
                    "fields": action["fields"],
                }
                for action in collection["actions"]
            ],
        }
    return schemas
