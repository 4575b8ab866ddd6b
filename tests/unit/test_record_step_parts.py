"""Pieces of the record steps: collection schemas, agent tokens and filters, action forms, the
schema cache."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from executor.adapters.agent import agent_token, snake_case_filters
from executor.domain.collections import CollectionSchema, RelationType
from executor.domain.runs import StepUser
from executor.errors import DomainValidation
from executor.runner.schema_cache import SchemaCache
from executor.schemas.collection import map_collection_schema
from executor.steps.action_form import flatten_field

SPEC_EXAMPLE = {
    "collectionName": "customers",
    "collectionId": "11",
    "collectionDisplayName": "Customers",
    "primaryKeyFields": ["id"],
    "referenceField": "name",
    "fields": [
        {"fieldName": "id", "displayName": "Id", "isRelationship": False, "type": "Number"},
        {
            "fieldName": "tier",
            "displayName": "Tier",
            "isRelationship": False,
            "type": "Enum",
            "enumValues": ["bronze", "silver", "gold"],
        },
        {
            "fieldName": "orders",
            "displayName": "Orders",
            "isRelationship": True,
            "relationType": "HasMany",
            "relatedCollectionName": "orders.id",
            "type": None,
        },
    ],
    "actions": [
        {
            "name": "send-invoice",
            "displayName": "Send invoice",
            "endpoint": "/forest/_actions/customers/0/send-invoice",
            "type": "single",
            "hooks": {"load": False, "change": []},
            "fields": [],
        }
    ],
    "aNewKeyTheOrchestratorAdded": True,
}


def test_the_protocol_s_example_schema_maps_to_the_domain() -> None:
    schema = map_collection_schema(SPEC_EXAMPLE)
    assert schema.name == "customers"
    assert schema.collection_id == "11"
    assert schema.primary_key_fields == ("id",)
    orders = schema.field_named("orders")
    assert orders is not None
    assert orders.related_collection_name == "orders"  # "orders.id" keeps the collection only
    assert orders.relation_type is RelationType.HAS_MANY
    assert orders.is_followable and not orders.is_writable
    assert [f.name for f in schema.readable_fields] == ["id", "tier"]
    action = schema.action_named("send-invoice")
    assert action is not None and action.load_hook is False and action.fields == ()


def test_a_missing_display_name_falls_back_to_the_collection_name() -> None:
    for display in (None, ""):
        schema = map_collection_schema({**SPEC_EXAMPLE, "collectionDisplayName": display})
        assert schema.display_name == "customers"


def test_composite_types_are_normalized() -> None:
    raw = {
        **SPEC_EXAMPLE,
        "fields": [
            {
                "fieldName": "address",
                "displayName": "Address",
                "isRelationship": False,
                "type": {
                    "fields": [
                        {"field": "city", "type": "String"},
                        {"field": "geo", "type": "Point"},
                    ]
                },
            },
            {
                "fieldName": "tags",
                "displayName": "Tags",
                "isRelationship": False,
                "type": ["String"],
            },
        ],
    }
    schema = map_collection_schema(raw)
    assert schema.fields[0].type == {"city": "String", "geo": "Point"}
    assert schema.fields[1].type == ["String"]


@pytest.mark.parametrize(
    "change",
    [
        {"primaryKeyFields": []},
        {"collectionName": ""},
        {"collectionId": ""},
        {"fields": [{"fieldName": "x", "displayName": "X", "isRelationship": "no"}]},
        {
            "fields": [
                {"fieldName": "x", "displayName": "X", "isRelationship": False, "enumValues": []}
            ]
        },
        {
            "fields": [
                {"fieldName": "x", "displayName": "X", "isRelationship": False, "type": "Blob"}
            ]
        },
        {"actions": [{"name": "a", "displayName": "A"}]},
        {"actions": [{"name": "a", "displayName": "A", "endpoint": "https://evil.example/x"}]},
        {"actions": [{"name": "a", "displayName": "A", "endpoint": "//evil.example/x"}]},
        {"actions": [{"name": "a", "displayName": "A", "endpoint": "forest/_actions/x"}]},
    ],
)
def test_a_schema_breaking_the_rules_is_a_domain_validation_error(change: dict[str, Any]) -> None:
    with pytest.raises(DomainValidation):
        map_collection_schema({**SPEC_EXAMPLE, **change})


def test_agent_tokens_carry_both_claim_spellings_and_last_five_minutes() -> None:
    user = StepUser(
        id=7,
        email="ada@example.com",
        first_name="Ada",
        last_name="Lovelace",
        team="Ops",
        rendering_id=3,
        role="Admin",
        permission_level="admin",
        tags={"region": "EU"},
    )
    secret = "a-secret-that-is-long-enough-for-hs256!!"
    claims = jwt.decode(
        agent_token(user, secret, now=1767261600),
        secret,
        algorithms=["HS256"],
        options={"verify_exp": False},
    )
    assert claims == {
        "id": 7,
        "email": "ada@example.com",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "team": "Ops",
        "renderingId": 3,
        "role": "Admin",
        "permissionLevel": "admin",
        "tags": {"region": "EU"},
        "first_name": "Ada",
        "last_name": "Lovelace",
        "rendering_id": 3,
        "permission_level": "admin",
        "scope": "step-execution",
        "iat": 1767261600,
        "exp": 1767261900,
    }


def test_filters_reach_the_agent_in_snake_case() -> None:
    tree = {
        "aggregator": "And",
        "conditions": [
            {"field": "amount", "operator": "GreaterThan", "value": 10},
            {
                "aggregator": "Or",
                "conditions": [{"field": "ref", "operator": "IContains", "value": "A"}],
            },
        ],
    }
    assert snake_case_filters(tree) == {
        "aggregator": "and",
        "conditions": [
            {"field": "amount", "operator": "greater_than", "value": 10},
            {
                "aggregator": "or",
                "conditions": [{"field": "ref", "operator": "i_contains", "value": "A"}],
            },
        ],
    }


def test_form_fields_flatten_as_the_protocol_shows() -> None:
    assert flatten_field(
        {"field": "amount", "type": "Number", "value": 10, "isRequired": True, "description": "EUR"}
    ) == {"name": "amount", "type": "Number", "value": 10, "isRequired": True, "description": "EUR"}
    assert flatten_field({"field": "tier", "type": "Enum", "enums": ["a", "b"]}) == {
        "name": "tier",
        "type": "Enum",
        "value": None,
        "isRequired": False,
        "enumValues": ["a", "b"],
    }
    widget = {"parameters": {"static": {"options": [{"label": "Europe", "value": "eu"}, 3, True]}}}
    flat = flatten_field(
        {"field": "region", "type": ["String"], "widgetEdit": widget, "description": ""}
    )
    assert flat["allowedValues"] == [
        {"value": "eu", "label": "Europe"},
        {"value": 3, "label": "3"},
        {"value": True, "label": "true"},
    ]
    assert "description" not in flat


class CountingWorkflow:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def get_collection_schema(self, run_id: str, collection_name: str) -> CollectionSchema:
        self.calls.append((run_id, collection_name))
        return map_collection_schema({**SPEC_EXAMPLE, "collectionName": collection_name})


def test_the_schema_cache_is_per_rendering_and_expires() -> None:
    now = [0.0]
    workflow = CountingWorkflow()
    cache = SchemaCache(workflow, ttl_s=600, clock=lambda: now[0])  # type: ignore[arg-type]
    cache.get("1", 3, "customers")
    cache.get("2", 3, "customers")  # same rendering: cached
    cache.get("2", 4, "customers")  # another rendering never shares
    assert workflow.calls == [("1", "customers"), ("2", "customers")]
    now[0] = 601
    cache.get("5", 3, "customers")
    assert len(workflow.calls) == 3
    cache.get("5", 3, "customers", fresh=True)
    assert len(workflow.calls) == 4
