"""The real Python agent fixture answers the calls the executor makes (PROTOCOL.md section 4).

Plain httpx calls signed like the executor's agent JWTs; no executor code involved. Skipped when
``forestadmin-agent-flask`` is not installed (it comes with the project's test extra).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.fakes.python_agent import (
    AGENT_AUTH_SECRET,
    AGENT_ENV_SECRET,
    AGENT_WARNING_FILTERS,
    CLOSE_ACCOUNT,
    MARK_AS_VIP,
    REFUND,
    RENDERING_ID,
    USER_ID,
    PythonAgent,
    python_agent,
)

pytest.importorskip(
    "forestadmin.flask_agent.agent",
    reason="forestadmin-agent-flask is not installed (pip install -e '.[test]')",
)
pytest.importorskip(
    "forestadmin.datasource_sqlalchemy.datasource",
    reason="forestadmin-datasource-sqlalchemy is not installed (pip install -e '.[test]')",
)

pytestmark = [pytest.mark.filterwarnings(f) for f in AGENT_WARNING_FILTERS]

TZ = {"timezone": "Europe/Paris"}


def agent_token(**overrides: Any) -> str:
    """A JWT shaped like the executor's (PROTOCOL.md section 4.1)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "id": USER_ID,
        "email": "ada@example.com",
        "firstName": "Ada",
        "lastName": "",
        "team": "Operations",
        "renderingId": RENDERING_ID,
        "role": "Admin",
        "permissionLevel": "admin",
        "tags": {"region": "EU"},
        "first_name": "Ada",
        "last_name": "",
        "rendering_id": RENDERING_ID,
        "permission_level": "admin",
        "scope": "step-execution",
        "iat": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    return jwt.encode(claims, AGENT_AUTH_SECRET, algorithm="HS256")


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PythonAgent]:
    db_path: Path = tmp_path_factory.mktemp("python-agent") / "agent.db"
    with python_agent(db_path) as started:
        yield started


@pytest.fixture
def client(agent: PythonAgent) -> Iterator[httpx.Client]:
    headers = {
        "Authorization": f"Bearer {agent_token()}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    with httpx.Client(base_url=agent.url, headers=headers, timeout=10) as http:
        yield http


def action_body(ids: list[str], values: dict[str, Any], name: str) -> dict[str, Any]:
    return {
        "data": {
            "attributes": {
                "collection_name": "customers",
                "ids": ids,
                "values": values,
                "smart_action_id": name,
            },
            "type": "custom-action-requests",
        }
    }


def test_probe_answers_on_forest_without_trailing_slash(agent: PythonAgent) -> None:
    assert httpx.get(f"{agent.url}/forest", timeout=5).status_code == 200
    # PROTOCOL.md section 4.2 probes "/forest/": the Python agent has no such route.
    assert httpx.get(f"{agent.url}/forest/", timeout=5).status_code == 404


def test_agent_uploaded_its_schema_to_the_fake_forest_server(agent: PythonAgent) -> None:
    forest = agent.forest
    assert forest.count("/forest/apimaps/hashcheck", "POST") >= 1
    assert forest.count("/forest/apimaps", "POST") >= 1
    assert forest.apimap is not None
    assert {c["id"] for c in forest.apimap["data"]} == {"customers", "orders", "order_lines"}
    assert all(c.headers.get("Forest-Secret-Key") == AGENT_ENV_SECRET for c in forest.calls)


def test_requests_need_a_valid_jwt(agent: PythonAgent) -> None:
    url = f"{agent.url}/forest/customers/1"
    assert httpx.get(url, params=TZ, timeout=5).status_code == 401
    forged = jwt.encode({"id": USER_ID}, "another-secret-that-is-long-enough-000", "HS256")
    bad = {"Authorization": f"Bearer {forged}"}
    assert httpx.get(url, params=TZ, headers=bad, timeout=5).status_code == 401
    expired = {"Authorization": f"Bearer {agent_token(exp=int(time.time()) - 60)}"}
    assert httpx.get(url, params=TZ, headers=expired, timeout=5).status_code == 401


def test_read_one_record_with_a_projection(client: httpx.Client) -> None:
    response = client.get(
        "/forest/customers/1",
        params={**TZ, "searchExtended": "false", "fields[customers]": "name,email"},
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["type"] == "customers"
    assert data["id"] == 1  # a JSON number for a simple numeric key
    assert data["attributes"] == {"id": 1, "name": "Ada", "email": "ada@example.com"}

    missing = client.get("/forest/customers/999", params=TZ)
    assert missing.status_code == 404
    assert missing.content == b""


def test_update_a_record(agent: PythonAgent, client: httpx.Client) -> None:
    body = {"data": {"attributes": {"tier": "gold"}, "type": "customers", "id": "2"}}
    response = client.put("/forest/customers/2", params=TZ, json=body)
    assert response.status_code == 200
    attributes = response.json()["data"]["attributes"]
    assert attributes["tier"] == "gold"
    assert attributes["name"] == "Grace"  # the whole record comes back
    assert agent.query("SELECT tier FROM customers WHERE id = 2") == [("gold",)]


def test_list_a_to_many_relation_with_pagination_and_filters(client: httpx.Client) -> None:
    path = "/forest/customers/1/relationships/orders"
    page = {**TZ, "searchExtended": "false", "page[size]": "2", "page[number]": "1"}
    first = client.get(path, params=page)
    assert first.status_code == 200
    assert [row["id"] for row in first.json()["data"]] == [10, 11]
    second = client.get(path, params={**page, "page[number]": "2"})
    assert [row["id"] for row in second.json()["data"]] == [12]

    tree = {
        "aggregator": "and",
        "conditions": [{"field": "amount", "operator": "greater_than", "value": 50}],
    }
    filtered = client.get(
        path, params={**TZ, "page[size]": "50", "page[number]": "1", "filters": json.dumps(tree)}
    )
    assert filtered.status_code == 200
    rows = filtered.json()["data"]
    assert [row["id"] for row in rows] == [10, 12]
    assert rows[0]["attributes"] == {
        "id": 10,
        "reference": "ORD-10",
        "amount": 120.5,
        "customer_id": 1,
    }


def test_composite_keys_are_pipe_joined(client: httpx.Client) -> None:
    lines = client.get("/forest/orders/10/relationships/lines", params=TZ)
    assert lines.status_code == 200
    assert [row["id"] for row in lines.json()["data"]] == ["10|1", "10|2"]

    one = client.get("/forest/order_lines/10%7C2", params=TZ)
    assert one.status_code == 200
    assert one.json()["data"]["attributes"]["product"] == "Mouse"


def test_read_a_to_one_relation_through_the_parent(client: httpx.Client) -> None:
    params = {
        **TZ,
        "searchExtended": "false",
        "fields[orders]": "customer",
        "fields[customer]": "name",
    }
    document = client.get("/forest/orders/10", params=params).json()
    linkage = document["data"]["relationships"]["customer"]["data"]
    assert linkage == {"id": "1", "type": "customers"}  # a string, unlike the included id
    included = document["included"]
    assert [(r["type"], r["id"], r["attributes"]) for r in included] == [
        ("customers", 1, {"name": "Ada", "id": 1})
    ]

    orphan = client.get("/forest/orders/30", params=params).json()
    assert orphan["data"]["relationships"]["customer"]["data"] is None
    assert "included" not in orphan


def test_action_form_load_and_change_hook(agent: PythonAgent, client: httpx.Client) -> None:
    endpoint = agent.action("customers", REFUND)["endpoint"]
    assert endpoint == "/forest/_actions/customers/0/refund"
    load_body = {
        "data": {
            "attributes": {"collection_name": "customers", "ids": ["1"], "values": {}},
            "type": "action-requests",
        }
    }
    loaded = client.post(f"{endpoint}/hooks/load", params=TZ, json=load_body)
    assert loaded.status_code == 200
    fields = {f["field"]: f for f in loaded.json()["fields"]}
    assert list(fields) == ["amount", "reason", "note"]
    assert fields["amount"]["type"] == "Number"
    assert fields["amount"]["value"] == 10
    assert fields["amount"]["isRequired"] is True
    assert fields["amount"]["hook"] == "changeHook"
    assert fields["reason"]["type"] == "Enum"
    assert fields["reason"]["enums"] == ["late delivery", "damaged", "other"]
    assert fields["note"]["value"] == "Refund of 10 EUR"

    current = loaded.json()["fields"]
    for field in current:
        if field["field"] == "amount":
            field["value"] = 25
    change_body = {
        "data": {
            "attributes": {
                "collection_name": "customers",
                "changed_field": "amount",
                "ids": ["1"],
                "fields": current,
            },
            "type": "custom-action-hook-requests",
        }
    }
    changed = client.post(f"{endpoint}/hooks/change", params=TZ, json=change_body)
    assert changed.status_code == 200
    after = {f["field"]: f["value"] for f in changed.json()["fields"]}
    assert after == {"amount": 25, "reason": None, "note": "Refund of 25 EUR"}


def test_execute_a_form_action(agent: PythonAgent, client: httpx.Client) -> None:
    endpoint = agent.action("customers", REFUND)["endpoint"]
    values = {"amount": 25, "reason": "damaged", "note": "Refund of 25 EUR"}
    done = client.post(endpoint, params=TZ, json=action_body(["1"], values, REFUND))
    assert done.status_code == 200
    assert done.json() == {"success": "Refunded 25 EUR"}
    assert {"action": REFUND, "ids": [1], "values": values} in agent.executions

    refused = client.post(endpoint, params=TZ, json=action_body(["1"], {"amount": 5000}, REFUND))
    assert refused.status_code == 400
    assert refused.json() == {"error": "Refunds above 1000 EUR need a manager"}


def test_execute_a_formless_action(agent: PythonAgent, client: httpx.Client) -> None:
    endpoint = agent.action("customers", MARK_AS_VIP)["endpoint"]
    assert endpoint == "/forest/_actions/customers/1/mark as vip"  # httpx encodes the spaces
    empty_form = client.post(
        f"{endpoint}/hooks/load",
        params=TZ,
        json={"data": {"attributes": {"ids": ["3"], "values": {}}, "type": "action-requests"}},
    )
    assert empty_form.json() == {"fields": [], "layout": []}

    done = client.post(endpoint, params=TZ, json=action_body(["3"], {}, MARK_AS_VIP))
    assert done.status_code == 200
    assert done.json() == {"success": "Customer marked as VIP"}
    assert agent.query("SELECT tier FROM customers WHERE id = 3") == [("vip",)]


def test_an_action_requiring_approval_is_refused_with_403(
    agent: PythonAgent, client: httpx.Client
) -> None:
    endpoint = agent.action("customers", CLOSE_ACCOUNT)["endpoint"]
    refused = client.post(endpoint, params=TZ, json=action_body(["2"], {}, CLOSE_ACCOUNT))
    assert refused.status_code == 403
    assert refused.json() == {
        "errors": [
            {
                "name": "CustomActionRequiresApprovalError",
                "detail": "This action requires to be approved.",
                "status": 403,
                "data": [1],  # the role ids allowed to approve
            }
        ]
    }
    assert agent.query("SELECT is_active FROM customers WHERE id = 2") == [(1,)]

    agent.forest.require_approval("customers", CLOSE_ACCOUNT, required=False)
    try:
        done = client.post(endpoint, params=TZ, json=action_body(["2"], {}, CLOSE_ACCOUNT))
    finally:
        agent.forest.require_approval("customers", CLOSE_ACCOUNT)
    assert done.status_code == 200
    assert done.json() == {"success": "Account closed"}
    assert agent.query("SELECT is_active FROM customers WHERE id = 2") == [(0,)]
