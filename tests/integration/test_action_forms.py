"""Action forms through the agent: opening, change hooks on set, strict and soft setting."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from executor.adapters.agent import AgentClient
from executor.adapters.forest_server import ActivityLogClient
from executor.domain.collections import ActionSchema
from executor.domain.runs import StepUser
from executor.errors import ActionFormValidation
from executor.schemas.collection import map_collection_schema
from executor.steps.action_form import FormSession
from executor.steps.audit import AuditedAgent
from tests.conftest import AUTH_SECRET
from tests.fakes.agent import FakeAgent, collection_schemas
from tests.fakes.orchestrator import FakeOrchestrator

USER = StepUser(id=7, email="ada@example.com", first_name="Ada", rendering_id=3)


@pytest.fixture
def audited(agent: FakeAgent, orchestrator: FakeOrchestrator) -> Iterator[AuditedAgent]:
    client = AgentClient(agent.url, AUTH_SECRET)
    log = ActivityLogClient(orchestrator.url)
    yield AuditedAgent(client, log, user=USER, server_token="server-token-1")
    client.close()


def refund(agent: FakeAgent) -> ActionSchema:
    schema = map_collection_schema(collection_schemas(agent)["customers"])
    action = schema.action_named("refund")
    assert action is not None
    return action


def test_setting_a_field_with_a_hook_replaces_the_form(
    audited: AuditedAgent, agent: FakeAgent
) -> None:
    form = FormSession.open(audited, refund(agent), "customers", ["1"])
    assert form is not None
    assert "details" not in [f["field"] for f in form.fields]
    assert form.required_fields == ["amount", "reason"]
    form.set_values({"amount": 20, "reason": "other"}, strict=True)
    assert agent.count("/forest/_actions/customers/1/refund/hooks/change") == 1
    names = [f["field"] for f in form.fields]
    assert "details" in names  # added by the change hook
    assert form.values()["amount"] == 20
    assert not form.can_execute and form.required_fields == ["details"]
    form.set_values({"details": "box crushed"}, strict=True)
    assert form.can_execute


def test_strict_setting_refuses_unknown_fields_and_soft_setting_skips_them(
    audited: AuditedAgent, agent: FakeAgent
) -> None:
    form = FormSession.open(audited, refund(agent), "customers", ["1"])
    assert form is not None
    assert form.set_values({"amount": 5, "colour": "red"}, strict=False) == ["colour"]
    with pytest.raises(ActionFormValidation):
        form.set_values({"colour": "red"}, strict=True)


def test_a_missing_load_hook_falls_back_to_the_declared_fields(
    audited: AuditedAgent, agent: FakeAgent
) -> None:
    schema = map_collection_schema(collection_schemas(agent)["customers"])
    action = schema.action_named("send-invoice")
    assert action is not None
    assert FormSession.open(audited, action, "customers", ["1"]) is None  # formless
    agent.fail("/forest/_actions/customers/0/send-invoice/hooks/load", 404)
    with_hook_unknown = dataclasses.replace(action, load_hook=None)
    assert FormSession.open(audited, with_hook_unknown, "customers", ["1"]) is None
