"""The fake agent speaks the agent protocol of §4: proven with plain HTTP calls over its socket,
with its rows in memory (the tests' fake) and in SQLite (the sandbox's agent)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from executor.sandbox.agent import MODELS
from executor.sandbox.datasets import SqliteDataset
from tests.conftest import AUTH_SECRET
from tests.fakes.agent import (
    APPROVAL_ERROR,
    REQUIRED_CLAIMS,
    FakeAgent,
    collection_schemas,
)

TIMEZONE = {"timezone": "Europe/Paris"}
USER: dict[str, Any] = {
    "id": 7,
    "email": "ada@example.com",
    "firstName": "Ada",
    "lastName": "",
    "team": "Operations",
    "renderingId": 3,
    "role": "Admin",
    "permissionLevel": "admin",
    "tags": {"region": "EU"},
}
DROP: Any = object()  # an override removing the claim


def agent_claims(**overrides: Any) -> dict[str, Any]:
    """The claims of §4.1, as the executor mints them for one agent operation."""
    now = int(time.time())
    claims: dict[str, Any] = {
        **USER,
        "first_name": USER["firstName"],
        "last_name": USER["lastName"],
        "rendering_id": USER["renderingId"],
        "permission_level": USER["permissionLevel"],
        "scope": "step-execution",
        "iat": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not DROP}


def agent_token(secret: str = AUTH_SECRET, **overrides: Any) -> str:
    return jwt.encode(agent_claims(**overrides), secret, algorithm="HS256")


@pytest.fixture(params=["memory", "sqlite"])
def agent(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FakeAgent]:
    sqlite = request.param == "sqlite"
    store = SqliteDataset(tmp_path / "agent.sqlite3", MODELS) if sqlite else None
    with FakeAgent(AUTH_SECRET, store=store) as fake:
        yield fake


@pytest.fixture
def http(agent: FakeAgent) -> Iterator[httpx.Client]:
    """A client sending what every executor call sends: the JWT and the timezone."""
    with httpx.Client(
        base_url=agent.url,
        timeout=5,
        headers={"Authorization": f"Bearer {agent_token()}", "Accept": "application/json"},
        params=TIMEZONE,
    ) as client:
        yield client


def action_body(
    request_type: str, ids: list[Any], collection: str = "customers", **attributes: Any
) -> dict[str, Any]:
    return {
        "data": {
            "attributes": {"collection_name": collection, "ids": ids, **attributes},
            "type": request_type,
        }
    }


def load_body(ids: list[str], values: dict[str, Any] | None = None) -> dict[str, Any]:
    return action_body("action-requests", ids, values=values or {})


def change_body(ids: list[str], changed: str, fields: list[dict[str, Any]]) -> dict[str, Any]:
    return action_body("custom-action-hook-requests", ids, changed_field=changed, fields=fields)


def execute_body(action: str, ids: list[str], values: dict[str, Any]) -> dict[str, Any]:
    return action_body("custom-action-requests", ids, values=values, smart_action_id=action)


def endpoint(agent: FakeAgent, action: str, collection: str = "customers") -> str:
    actions = collection_schemas(agent)[collection]["actions"]
    found: str = next(a["endpoint"] for a in actions if a["name"] == action)
    return found


def error_name(response: httpx.Response) -> str:
    name: str = response.json()["errors"][0]["name"]
    return name


# --- probe --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/forest", "/forest/"])
def test_the_probe_answers_200_without_authentication(agent: FakeAgent, path: str) -> None:
    response = httpx.get(f"{agent.url}{path}", timeout=5)
    assert response.status_code == 200
    assert agent.requests[-1].claims is None


# --- read one record (§4.3, §4.6, §4.7) ---------------------------------------------------------


def test_reading_a_record_returns_the_projected_fields_and_the_primary_key(
    http: httpx.Client,
) -> None:
    response = http.get("/forest/customers/1", params={"fields[customers]": "name,email"})
    assert response.status_code == 200
    assert response.json() == {
        "data": {
            "type": "customers",
            "id": "1",
            "attributes": {"id": 1, "name": "Ada Lovelace", "email": "ada@example.com"},
        }
    }


def test_reading_without_projection_returns_every_column_and_relation(http: httpx.Client) -> None:
    data = http.get("/forest/customers/2").json()["data"]
    assert data["attributes"] == {
        "id": 2,
        "name": "Grace Hopper",
        "email": "grace@example.com",
        "tier": "silver",
        "vip": False,
        "signup": "2021-06-01",
    }
    assert data["relationships"]["company"]["data"] == {"type": "companies", "id": "2"}
    assert data["relationships"]["orders"] == {
        "links": {"related": {"href": "/forest/customers/2/relationships/orders"}}
    }


@pytest.mark.parametrize(
    ("relation", "field", "linkage", "attributes"),
    [
        ("company", "name", {"type": "companies", "id": "1"}, {"id": 1, "name": "Acme"}),
        ("address", "city", {"type": "addresses", "id": "1"}, {"id": 1, "city": "Paris"}),
    ],
)
def test_a_to_one_projection_gives_the_linkage_and_the_included_related_record(
    http: httpx.Client,
    relation: str,
    field: str,
    linkage: dict[str, str],
    attributes: dict[str, Any],
) -> None:
    document = http.get(
        "/forest/customers/1",
        params={"fields[customers]": relation, f"fields[{relation}]": field},
    ).json()
    assert document["data"]["attributes"] == {"id": 1}
    assert document["data"]["relationships"][relation]["data"] == linkage
    assert document["included"] == [{**linkage, "attributes": attributes}]


def test_a_to_one_relation_without_related_record_has_a_null_linkage(http: httpx.Client) -> None:
    document = http.get(
        "/forest/customers/3", params={"fields[customers]": "company", "fields[company]": "name"}
    ).json()
    assert document["data"]["relationships"]["company"]["data"] is None
    assert "included" not in document


@pytest.mark.parametrize(
    ("comment", "linkage"),
    [
        ("1", {"type": "customers", "id": "1"}),
        ("2", {"type": "orders", "id": "102"}),
        ("3", None),
    ],
)
def test_a_polymorphic_linkage_names_the_target_collection(
    http: httpx.Client, comment: str, linkage: dict[str, str] | None
) -> None:
    document = http.get(
        f"/forest/comments/{comment}",
        params={"fields[comments]": "commentable", "fields[commentable]": "id"},
    ).json()
    assert document["data"]["relationships"]["commentable"]["data"] == linkage


def test_an_unknown_projected_field_is_a_400(http: httpx.Client) -> None:
    response = http.get("/forest/customers/1", params={"fields[customers]": "name,nope"})
    assert response.status_code == 400


def test_records_added_by_a_test_are_served(agent: FakeAgent, http: httpx.Client) -> None:
    agent.add_record("companies", {"id": 9, "name": "Initech"})
    agent.update_record("customers", "3", company_id=9, tier="gold")
    document = http.get(
        "/forest/customers/3",
        params={"fields[customers]": "tier,company", "fields[company]": "name"},
    ).json()
    assert document["data"]["attributes"]["tier"] == "gold"
    assert document["included"][0]["attributes"]["name"] == "Initech"


# --- update (§4.4) ------------------------------------------------------------------------------


def test_updating_a_record_answers_the_updated_record_and_stores_it(
    agent: FakeAgent, http: httpx.Client
) -> None:
    response = http.put(
        "/forest/customers/2",
        json={"data": {"attributes": {"tier": "gold"}, "type": "customers", "id": "2"}},
    )
    assert response.status_code == 200
    assert response.json()["data"]["attributes"]["tier"] == "gold"
    assert response.json()["data"]["attributes"]["name"] == "Grace Hopper"
    assert (agent.record("customers", "2") or {})["tier"] == "gold"
    [update] = agent.updates
    assert (update.collection, update.record_id, update.attributes) == (
        "customers",
        "2",
        {"tier": "gold"},
    )
    assert update.claims["scope"] == "step-execution"


@pytest.mark.parametrize(
    "body",
    [
        {"attributes": {"tier": "platinum"}, "type": "customers", "id": "2"},
        {"attributes": {"vip": "yes"}, "type": "customers", "id": "2"},
        {"attributes": {"signup": "not a date"}, "type": "customers", "id": "2"},
        {"attributes": {"nickname": "G"}, "type": "customers", "id": "2"},
        {"attributes": {"id": 5}, "type": "customers", "id": "2"},
        {"attributes": {"tier": "gold"}, "type": "orders", "id": "2"},
        {"attributes": {"tier": "gold"}, "type": "customers", "id": "1"},
        {"attributes": {"tier": "gold"}, "type": "customers"},
        {"tier": "gold"},
    ],
)
def test_an_invalid_update_is_a_400_and_changes_nothing(
    agent: FakeAgent, http: httpx.Client, body: dict[str, Any]
) -> None:
    response = http.put("/forest/customers/2", json={"data": body})
    assert response.status_code == 400
    assert (agent.record("customers", "2") or {})["tier"] == "silver"
    assert agent.updates == []


# --- list a to-many relation (§4.5) -------------------------------------------------------------


def related_ids(http: httpx.Client, params: dict[str, Any] | None = None) -> list[str]:
    response = http.get("/forest/customers/1/relationships/orders", params=params)
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()["data"]]


def test_listing_a_relation_returns_the_related_rows_with_their_attributes(
    http: httpx.Client,
) -> None:
    rows = http.get("/forest/customers/2/relationships/orders").json()["data"]
    assert rows == [
        {
            "type": "orders",
            "id": "201",
            "attributes": {"id": 201, "reference": "G-201", "amount": 42, "status": "paid"},
            "relationships": {
                "customer": {
                    "data": {"type": "customers", "id": "2"},
                    "links": {"related": {"href": "/forest/orders/201/relationships/customer"}},
                }
            },
        }
    ]


@pytest.mark.parametrize(
    ("size", "number", "expected"),
    [
        (50, 1, ["101", "102", "103", "104", "105"]),
        (2, 1, ["101", "102"]),
        (2, 2, ["103", "104"]),
        (2, 3, ["105"]),
        (2, 4, []),
    ],
)
def test_listing_a_relation_is_paginated(
    http: httpx.Client, size: int, number: int, expected: list[str]
) -> None:
    assert related_ids(http, {"page[size]": size, "page[number]": number}) == expected


@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        ({"field": "status", "operator": "equal", "value": "paid"}, ["101", "103"]),
        ({"field": "amount", "operator": "greater_than", "value": 100}, ["101", "103", "105"]),
        ({"field": "reference", "operator": "i_contains", "value": "b-"}, ["104", "105"]),
        (
            {
                "aggregator": "and",
                "conditions": [
                    {"field": "status", "operator": "equal", "value": "pending"},
                    {"field": "amount", "operator": "greater_than", "value": 100},
                ],
            },
            ["105"],
        ),
        (
            {
                "aggregator": "or",
                "conditions": [
                    {"field": "status", "operator": "equal", "value": "refunded"},
                    {"field": "reference", "operator": "i_contains", "value": "a-10"},
                ],
            },
            ["101", "102", "103", "104"],
        ),
    ],
)
def test_listing_a_relation_applies_the_snake_case_filters(
    http: httpx.Client, tree: dict[str, Any], expected: list[str]
) -> None:
    params = {"filters": json.dumps(tree), "page[size]": 50, "page[number]": 1}
    assert related_ids(http, params) == expected


@pytest.mark.parametrize(
    "filters",
    [
        '{"field": "amount", "operator": "GreaterThan", "value": 100}',
        '{"aggregator": "And", "conditions": []}',
        '{"field": "nope", "operator": "equal", "value": 1}',
        "{not json",
    ],
)
def test_a_malformed_filter_is_a_400(http: httpx.Client, filters: str) -> None:
    response = http.get("/forest/customers/1/relationships/orders", params={"filters": filters})
    assert response.status_code == 400


@pytest.mark.parametrize("page", [{"page[size]": 0}, {"page[number]": "x"}])
def test_an_invalid_page_is_a_400(http: httpx.Client, page: dict[str, Any]) -> None:
    response = http.get("/forest/customers/1/relationships/orders", params=page)
    assert response.status_code == 400


def test_a_to_one_relation_has_no_relationship_route(http: httpx.Client) -> None:
    assert http.get("/forest/customers/1/relationships/company").status_code == 404


def test_listing_the_relation_of_an_unknown_parent_is_empty(http: httpx.Client) -> None:
    response = http.get("/forest/customers/999/relationships/orders")
    assert response.status_code == 200
    assert response.json()["data"] == []


# --- action forms (§4.8) ------------------------------------------------------------------------


def test_the_load_hook_answers_the_dynamic_form(agent: FakeAgent, http: httpx.Client) -> None:
    response = http.post(f"{endpoint(agent, 'refund')}/hooks/load", json=load_body(["1"]))
    assert response.status_code == 200
    fields = {f["field"]: f for f in response.json()["fields"]}
    assert list(fields) == ["amount", "reason", "currency", "notify_customer"]
    assert fields["amount"]["type"] == "Number"
    assert fields["amount"]["isRequired"] is True
    assert fields["amount"]["value"] is None
    assert fields["reason"]["enums"] == ["late", "damaged", "other"]
    assert fields["reason"]["hook"] == "changeHook"
    options = fields["currency"]["widgetEdit"]["parameters"]["static"]["options"]
    assert options == [{"value": "EUR", "label": "Euro"}, {"value": "USD", "label": "US dollar"}]


def test_the_load_hook_of_a_formless_action_answers_no_field(
    agent: FakeAgent, http: httpx.Client
) -> None:
    response = http.post(f"{endpoint(agent, 'send-invoice')}/hooks/load", json=load_body(["1"]))
    assert response.json() == {"fields": []}


def test_the_change_hook_adds_a_required_field(agent: FakeAgent, http: httpx.Client) -> None:
    url = endpoint(agent, "refund")
    fields = http.post(f"{url}/hooks/load", json=load_body(["1"])).json()["fields"]
    for f in fields:
        if f["field"] == "reason":
            f["value"] = "other"
    response = http.post(f"{url}/hooks/change", json=change_body(["1"], "reason", fields))
    assert response.status_code == 200
    changed = {f["field"]: f for f in response.json()["fields"]}
    assert changed["reason"]["value"] == "other"
    assert changed["details"]["isRequired"] is True
    assert changed["details"]["value"] is None


def test_the_change_hook_sets_the_value_of_another_field(
    agent: FakeAgent, http: httpx.Client
) -> None:
    url = endpoint(agent, "refund")
    fields = http.post(f"{url}/hooks/load", json=load_body(["1"])).json()["fields"]
    for f in fields:
        if f["field"] == "reason":
            f["value"] = "damaged"
    response = http.post(f"{url}/hooks/change", json=change_body(["1"], "reason", fields))
    changed = {f["field"]: f for f in response.json()["fields"]}
    assert changed["notify_customer"]["value"] is True
    assert "details" not in changed


@pytest.mark.parametrize(
    ("hook", "body"),
    [
        ("load", action_body("custom-action-requests", ["1"], values={})),
        ("load", action_body("action-requests", ["1"], collection="orders", values={})),
        ("load", action_body("action-requests", ["1"])),
        ("load", action_body("action-requests", [1], values={})),
        ("load", {"data": {"type": "action-requests"}}),
        ("change", change_body(["1"], "nope", [{"field": "reason", "type": "Enum"}])),
        ("change", change_body(["1"], "reason", [{"name": "reason"}])),
        ("change", action_body("custom-action-hook-requests", ["1"], changed_field="reason")),
    ],
)
def test_a_hook_with_a_wrong_body_is_a_400(
    agent: FakeAgent, http: httpx.Client, hook: str, body: dict[str, Any]
) -> None:
    response = http.post(f"{endpoint(agent, 'refund')}/hooks/{hook}", json=body)
    assert response.status_code == 400


# --- action execution and approvals (§4.9) ------------------------------------------------------


def test_executing_a_formless_action_records_it(agent: FakeAgent, http: httpx.Client) -> None:
    response = http.post(
        endpoint(agent, "send-invoice"), json=execute_body("send-invoice", ["1"], {})
    )
    assert response.status_code == 200
    assert response.json() == {"success": "Invoice sent"}
    [execution] = agent.executions
    assert (execution.action, execution.collection, execution.ids, execution.values) == (
        "send-invoice",
        "customers",
        ["1"],
        {},
    )
    assert execution.claims["id"] == 7


def test_executing_a_dynamic_form_action_with_valid_values(
    agent: FakeAgent, http: httpx.Client
) -> None:
    values = {"amount": 10, "reason": "other", "details": "Broken box", "currency": "USD"}
    response = http.post(endpoint(agent, "refund"), json=execute_body("refund", ["2"], values))
    assert response.status_code == 200
    assert response.json() == {"success": "Refund issued"}
    assert agent.executions[0].values == values


def test_a_static_form_is_declared_in_the_schema_and_executes(
    agent: FakeAgent, http: httpx.Client
) -> None:
    schema = next(
        a for a in collection_schemas(agent)["customers"]["actions"] if a["name"] == "add-note"
    )
    assert schema["hooks"] == {"load": False, "change": []}
    assert [f["field"] for f in schema["fields"]] == ["note", "pinned"]
    assert schema["fields"][0]["isRequired"] is True
    assert schema["fields"][1]["defaultValue"] is False
    response = http.post(
        schema["endpoint"], json=execute_body("add-note", ["1"], {"note": "Called", "pinned": True})
    )
    assert response.status_code == 200
    assert agent.executions[0].values == {"note": "Called", "pinned": True}


@pytest.mark.parametrize(
    ("values", "status"),
    [
        ({"reason": "late"}, 400),  # amount is required
        ({"amount": 10, "reason": "other"}, 400),  # "other" makes details required
        ({"amount": 10, "reason": "late", "coupon": "X"}, 400),  # not a field of the form
        ({"amount": 10, "reason": "lost"}, 422),  # not an enum value
        ({"amount": "ten", "reason": "late"}, 422),  # not a number
        ({"amount": 10, "reason": "late", "currency": "GBP"}, 422),  # not a dropdown option
    ],
)
def test_invalid_form_values_are_refused_and_not_executed(
    agent: FakeAgent, http: httpx.Client, values: dict[str, Any], status: int
) -> None:
    response = http.post(endpoint(agent, "refund"), json=execute_body("refund", ["1"], values))
    assert response.status_code == status
    assert response.json()["errors"][0]["detail"]
    assert agent.executions == []


def test_an_action_requiring_approval_answers_403_with_the_approval_error(
    agent: FakeAgent, http: httpx.Client
) -> None:
    response = http.post(endpoint(agent, "archive"), json=execute_body("archive", ["1"], {}))
    assert response.status_code == 403
    [error] = response.json()["errors"]
    assert error["name"] == APPROVAL_ERROR == "CustomActionRequiresApprovalError"
    assert error["status"] == 403
    assert agent.executions == []


def test_approval_can_be_switched_off_per_action(agent: FakeAgent, http: httpx.Client) -> None:
    agent.requires_approval.discard("archive")
    agent.action_results["archive"] = {"success": "Archived"}
    response = http.post(endpoint(agent, "archive"), json=execute_body("archive", ["1"], {}))
    assert response.json() == {"success": "Archived"}


def test_a_global_action_executes_with_no_record(agent: FakeAgent, http: httpx.Client) -> None:
    url = endpoint(agent, "export-all")
    response = http.post(url, json=execute_body("export-all", [], {}))
    assert response.status_code == 200
    assert response.json() == {"success": "Export started"}
    assert agent.executions[0].ids == []
    assert http.post(url, json=execute_body("export-all", ["1"], {})).status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        execute_body("refund", ["1"], {}),  # smart_action_id of another action
        execute_body("send-invoice", ["1", "2"], {}),  # a single action gets one id
        execute_body("send-invoice", [], {}),
        action_body("action-requests", ["1"], values={}, smart_action_id="send-invoice"),
        action_body("custom-action-requests", ["1"], smart_action_id="send-invoice"),
        {"data": []},
        [],
    ],
)
def test_an_execution_with_a_wrong_body_is_a_400(
    agent: FakeAgent, http: httpx.Client, body: Any
) -> None:
    response = http.post(endpoint(agent, "send-invoice"), json=body)
    assert response.status_code == 400
    assert agent.executions == []


# --- composite ids, unknown records -------------------------------------------------------------


def test_a_composite_id_travels_pipe_joined_and_url_encoded(
    agent: FakeAgent, http: httpx.Client
) -> None:
    response = http.get("/forest/subscriptions/pro%7C2024")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["id"] == "pro|2024"
    assert data["attributes"] == {"plan": "pro", "year": 2024, "seats": 10}
    assert agent.requests[-1].raw_path == "/forest/subscriptions/pro%7C2024"
    assert agent.requests[-1].path == "/forest/subscriptions/pro|2024"

    updated = http.put(
        "/forest/subscriptions/pro%7C2024",
        json={"data": {"attributes": {"seats": 11}, "type": "subscriptions", "id": "pro|2024"}},
    )
    assert updated.json()["data"]["attributes"]["seats"] == 11

    renew = endpoint(agent, "renew", "subscriptions")
    body = execute_body("renew", ["basic|2024"], {})
    body["data"]["attributes"]["collection_name"] = "subscriptions"
    assert http.post(renew, json=body).status_code == 200
    assert agent.executions[0].ids == ["basic|2024"]


def test_a_composite_id_with_the_wrong_number_of_parts_is_a_400(http: httpx.Client) -> None:
    assert http.get("/forest/subscriptions/pro").status_code == 400


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/forest/customers/999", None),
        ("GET", "/forest/subscriptions/pro%7C1999", None),
        (
            "PUT",
            "/forest/customers/999",
            {"data": {"attributes": {}, "type": "customers", "id": "999"}},
        ),
        ("GET", "/forest/planets/1", None),
    ],
)
def test_an_unknown_record_is_a_404(http: httpx.Client, method: str, path: str, body: Any) -> None:
    response = http.request(method, path, json=body)
    assert response.status_code == 404
    assert error_name(response) == "NotFoundError"


def test_an_action_on_an_unknown_record_is_a_404(agent: FakeAgent, http: httpx.Client) -> None:
    response = http.post(
        endpoint(agent, "send-invoice"), json=execute_body("send-invoice", ["999"], {})
    )
    assert response.status_code == 404
    assert agent.executions == []


def test_an_unknown_action_is_a_404(http: httpx.Client) -> None:
    body = execute_body("send-invoice", ["1"], {})
    assert http.post("/forest/_actions/customers/0/nope", json=body).status_code == 404
    assert http.post("/forest/_actions/customers/9/send-invoice", json=body).status_code == 404


# --- authentication (§4.1) ----------------------------------------------------------------------


def get_with(agent: FakeAgent, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(f"{agent.url}/forest/customers/1", params=TIMEZONE, headers=headers, timeout=5)


def test_a_valid_token_is_decoded_and_recorded(agent: FakeAgent, http: httpx.Client) -> None:
    assert http.get("/forest/customers/1").status_code == 200
    claims = agent.requests[-1].claims
    assert claims is not None
    assert {k: claims[k] for k in USER} == USER
    assert claims["exp"] - claims["iat"] == 300


def bad_authorization(kind: str) -> dict[str, str]:
    """Minted when the test runs, so that no token ages while the suite is collected."""
    now = int(time.time())
    other_secret = "another-secret-that-is-long-enough-for-hs256"
    return {
        "missing": {},
        "not-bearer": {"Authorization": "Basic abc"},
        "malformed": {"Authorization": "Bearer not-a-jwt"},
        "bad-signature": {"Authorization": f"Bearer {agent_token(other_secret)}"},
        "expired": {"Authorization": f"Bearer {agent_token(iat=now - 400, exp=now - 100)}"},
    }[kind]


@pytest.mark.parametrize("kind", ["missing", "not-bearer", "malformed", "bad-signature", "expired"])
def test_a_missing_or_bad_token_is_a_401(agent: FakeAgent, kind: str) -> None:
    response = get_with(agent, bad_authorization(kind))
    assert response.status_code == 401
    assert error_name(response) == "AuthenticationError"
    assert agent.requests[-1].claims is None


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
def test_a_token_missing_a_claim_is_a_401(agent: FakeAgent, claim: str) -> None:
    response = get_with(agent, {"Authorization": f"Bearer {agent_token(**{claim: DROP})}"})
    assert response.status_code == 401
    assert claim in response.json()["errors"][0]["detail"]


def wrong_claims(kind: str) -> dict[str, Any]:
    now = int(time.time())
    cases: dict[str, dict[str, Any]] = {
        "wrong-scope": {"scope": "admin"},
        "lifetime-not-300s": {"iat": now, "exp": now + 3600},
        "server-token": {"serverToken": "server-token-1"},
        "alias-differs": {"first_name": "Bob"},
        "rendering-differs": {"rendering_id": 4},
    }
    return cases[kind]


@pytest.mark.parametrize(
    "kind",
    ["wrong-scope", "lifetime-not-300s", "server-token", "alias-differs", "rendering-differs"],
)
def test_a_token_with_wrong_claims_is_a_401_but_its_claims_are_recorded(
    agent: FakeAgent, kind: str
) -> None:
    overrides = wrong_claims(kind)
    response = get_with(agent, {"Authorization": f"Bearer {agent_token(**overrides)}"})
    assert response.status_code == 401
    claims = agent.requests[-1].claims
    assert claims is not None
    assert all(claims[name] == value for name, value in overrides.items())


# --- timezone -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/forest/customers/1", None),
        (
            "PUT",
            "/forest/customers/1",
            {"data": {"attributes": {}, "type": "customers", "id": "1"}},
        ),
        ("GET", "/forest/customers/1/relationships/orders", None),
        ("POST", "/forest/_actions/customers/1/refund/hooks/load", load_body(["1"])),
        (
            "POST",
            "/forest/_actions/customers/1/refund/hooks/change",
            change_body(["1"], "reason", [{"field": "reason", "type": "Enum", "value": "late"}]),
        ),
        (
            "POST",
            "/forest/_actions/customers/0/send-invoice",
            execute_body("send-invoice", ["1"], {}),
        ),
    ],
)
@pytest.mark.parametrize("timezone", [None, "Mars/Olympus"])
def test_every_data_and_action_route_needs_a_valid_timezone(
    agent: FakeAgent, method: str, path: str, body: Any, timezone: str | None
) -> None:
    headers = {"Authorization": f"Bearer {agent_token()}"}
    params = {"timezone": timezone} if timezone else {}
    with httpx.Client(base_url=agent.url, timeout=5, headers=headers) as client:
        response = client.request(method, path, params=params, json=body)
        assert response.status_code == 400
        assert "timezone" in response.json()["errors"][0]["detail"]
        assert client.request(method, path, params=TIMEZONE, json=body).status_code == 200


# --- fault injection and observation ------------------------------------------------------------


def test_injected_failures_answer_the_given_status_a_number_of_times(
    agent: FakeAgent, http: httpx.Client
) -> None:
    agent.fail("/forest/customers", 503, times=2)
    agent.fail("/forest/orders", 500, body={"message": "boom"})
    assert [http.get("/forest/customers/1").status_code for _ in range(3)] == [503, 503, 200]
    failed = http.get("/forest/orders/101")
    assert (failed.status_code, failed.json()) == (500, {"message": "boom"})
    assert agent.count("/forest/customers") == 3
    assert agent.count("/forest/orders", method="PUT") == 0


def test_the_probe_can_be_made_to_fail(agent: FakeAgent) -> None:
    agent.fail("/forest", 502)
    assert httpx.get(f"{agent.url}/forest/", timeout=5).status_code == 502
    assert httpx.get(f"{agent.url}/forest/", timeout=5).status_code == 200


def test_a_delayed_route_outlasts_a_short_client_timeout(
    agent: FakeAgent, http: httpx.Client
) -> None:
    agent.delay("/forest/customers/1", 5)  # released when the fake stops
    with pytest.raises(httpx.ReadTimeout):
        http.get("/forest/customers/1", timeout=0.2)
    assert http.get("/forest/customers/2").status_code == 200


def test_wait_until_returns_once_the_awaited_request_arrived(
    agent: FakeAgent, http: httpx.Client
) -> None:
    worker = threading.Thread(target=lambda: http.get("/forest/customers/2"))
    worker.start()
    assert agent.wait_until(lambda: agent.count("/forest/customers/2") == 1, timeout=5)
    worker.join(timeout=5)
    assert not agent.wait_until(lambda: agent.count("/forest/nothing") == 1, timeout=0.05)


# --- collection schemas -------------------------------------------------------------------------


def test_collection_schemas_describe_the_datasource_as_the_orchestrator_sends_it(
    agent: FakeAgent,
) -> None:
    schemas = collection_schemas(agent)
    assert set(schemas) == {
        "customers",
        "orders",
        "companies",
        "addresses",
        "subscriptions",
        "comments",
    }
    customers = schemas["customers"]
    assert customers["collectionId"] == "11"
    assert customers["primaryKeyFields"] == ["id"]
    assert customers["referenceField"] == "name"
    fields = {f["fieldName"]: f for f in customers["fields"]}
    assert fields["tier"]["enumValues"] == ["bronze", "silver", "gold"]
    assert fields["orders"]["relatedCollectionName"] == "orders.id"
    assert (fields["address"]["relationType"], fields["address"]["relatedCollectionName"]) == (
        "HasOne",
        "addresses",
    )
    assert fields["company"]["relationType"] == "BelongsTo"
    assert {
        a["name"]: (a["type"], a["endpoint"], a["hooks"]["load"]) for a in customers["actions"]
    } == {
        "send-invoice": ("single", "/forest/_actions/customers/0/send-invoice", False),
        "refund": ("single", "/forest/_actions/customers/1/refund", True),
        "archive": ("single", "/forest/_actions/customers/2/archive", False),
        "export-all": ("global", "/forest/_actions/customers/3/export-all", False),
        "add-note": ("single", "/forest/_actions/customers/4/add-note", False),
    }
    assert schemas["subscriptions"]["primaryKeyFields"] == ["plan", "year"]
    commentable = next(f for f in schemas["comments"]["fields"] if f["fieldName"] == "commentable")
    assert commentable["polymorphicTypeField"] == "commentable_type"
    assert commentable["polymorphicReferencedModels"] == ["customers", "orders"]
    assert "relatedCollectionName" not in commentable
