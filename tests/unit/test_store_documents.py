"""Run-store documents: validation (protocol §2.10) and their wire form (`GET /runs/{runId}`)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from marshmallow import ValidationError

from executor.errors import RecordIdSerialization
from executor.schemas.store import validate_step_execution
from executor.schemas.wire import step_execution_to_wire


def ref(record_id: list[Any], step_index: int = 0, collection: str = "customers") -> dict[str, Any]:
    return {"collectionName": collection, "recordId": record_id, "stepIndex": step_index}


TIER = {"name": "tier", "displayName": "Tier"}
ORDERS = {"name": "orders", "displayName": "Orders"}
REFUND = {"name": "refund", "displayName": "Refund"}
TOOL_CALL = {"name": "create_ticket", "sourceId": "acme-crm", "input": {"title": "Call Ada"}}

# Valid documents: the richest form of every type plus the minimal / alternative forms.
VALID: dict[str, dict[str, Any]] = {
    "condition": {
        "type": "condition",
        "stepIndex": 0,
        "executionParams": {"answer": "Yes", "reasoning": "The customer has 40 orders."},
        "executionResult": {"answer": "Yes"},
    },
    "condition-undecided": {
        "type": "condition",
        "stepIndex": 0,
        "executionParams": {"answer": None},
    },
    "read-record": {
        "type": "read-record",
        "stepIndex": 1,
        "executionParams": {"fields": [TIER, {"name": "email", "displayName": "Email"}]},
        "executionResult": {
            "fields": [
                {**TIER, "value": "gold"},
                {"name": "email", "displayName": "Email", "error": "Field not found"},
                {"name": "notes", "displayName": "Notes", "value": None},
            ]
        },
        "selectedRecordRef": ref(["123"]),
    },
    "update-record": {
        "type": "update-record",
        "stepIndex": 2,
        "pendingData": {**TIER, "value": "gold"},
        "executionParams": {**TIER, "value": "platinum"},
        "executionResult": {"updatedValues": {"tier": "platinum", "id": 123}},
        "selectedRecordRef": ref(["A1", "2024"], 0),
        "idempotencyPhase": "done",
        "userConfirmation": {"userConfirmed": True, "value": "platinum"},
    },
    "update-record-pending": {
        "type": "update-record",
        "stepIndex": 2,
        "pendingData": {**TIER, "value": None},
        "selectedRecordRef": ref([42]),
    },
    "update-record-skipped": {
        "type": "update-record",
        "stepIndex": 2,
        "executionResult": {"skipped": True},
        "selectedRecordRef": ref(["123"]),
        "idempotencyPhase": "executing",
        "userConfirmation": {"userConfirmed": False},
    },
    "trigger-action": {
        "type": "trigger-action",
        "stepIndex": 3,
        "pendingData": {
            **REFUND,
            "form": {
                "fields": [{"name": "amount", "type": "Number", "value": 10, "isRequired": True}],
                "aiFilledValues": [{"field": "amount", "value": 10}],
            },
        },
        "executionParams": REFUND,
        "executionResult": {
            "success": True,
            "actionResult": {"success": "Refunded"},
            "submissionOutcome": "pending-approval",
            "submittedValues": {"amount": 10},
            "aiFilledValues": [{"field": "amount", "value": 10}],
            "submittedBy": "ai",
            "approvalRequest": {"id": "881"},
        },
        "selectedRecordRef": ref(["123"]),
        "idempotencyPhase": "done",
        "userConfirmation": {"userConfirmed": True, "submissionOutcome": "executed"},
    },
    "trigger-action-skipped": {
        "type": "trigger-action",
        "stepIndex": 3,
        "pendingData": REFUND,
        "executionResult": {"skipped": True},
        "selectedRecordRef": ref(["123"]),
    },
    "load-related-record": {
        "type": "load-related-record",
        "stepIndex": 4,
        "pendingData": {
            "availableFields": [ORDERS, {"name": "store", "displayName": "Store"}],
            "suggestedField": ORDERS,
            "availableRecordIds": [
                {"recordId": [987], "referenceFieldValue": "ORD-987"},
                {"recordId": ["K", 2], "referenceFieldValue": None},
            ],
            "suggestedRecord": {"recordId": [987], "referenceFieldValue": "ORD-987"},
        },
        "selectedRecordRef": ref(["123"]),
        "executionParams": ORDERS,
        "executionResult": {"relation": ORDERS, "record": ref([987.0], 4, "orders")},
        "userConfirmation": {"userConfirmed": True, "selectedRecordId": ["987"]},
    },
    "load-related-record-no-record": {
        "type": "load-related-record",
        "stepIndex": 4,
        "pendingData": {
            "availableFields": [ORDERS],
            "suggestedField": ORDERS,
            "availableRecordIds": [],
            "suggestNoRecord": True,
        },
    },
    "load-related-record-skipped": {
        "type": "load-related-record",
        "stepIndex": 4,
        "executionResult": {"skipped": True},
    },
    "mcp": {
        "type": "mcp",
        "stepIndex": 5,
        "pendingData": TOOL_CALL,
        "executionParams": TOOL_CALL,
        "executionResult": {
            "success": True,
            "toolResult": [{"type": "text", "text": "Ticket 12 created"}],
            "formattedResponse": "Ticket 12 created",
        },
        "idempotencyPhase": "done",
        "userConfirmation": {"userConfirmed": True},
    },
    "mcp-skipped": {
        "type": "mcp",
        "stepIndex": 5,
        "pendingData": TOOL_CALL,
        "executionResult": {"skipped": True},
    },
    "guidance": {
        "type": "guidance",
        "stepIndex": 6,
        "pendingData": {"userInput": "Draft", "aiGenerated": True},
        "executionResult": {"userInput": "Call back", "generatedByAi": True},
    },
    "guidance-ai-degrade": {"type": "guidance", "stepIndex": 6, "pendingData": {}},
    "guidance-empty": {"type": "guidance", "stepIndex": 0, "executionResult": {"userInput": ""}},
}


def valid(name: str, **changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(VALID[name])
    document.update(changes)
    return document


def rejected(document: Any) -> dict[str, Any]:
    with pytest.raises(ValidationError) as caught:
        validate_step_execution(document)
    messages = caught.value.messages
    assert isinstance(messages, dict)
    return messages


# --- validation: valid documents ----------------------------------------------------------------


@pytest.mark.parametrize("name", list(VALID))
def test_valid_documents_pass_unchanged(name: str) -> None:
    document = valid(name)

    result = validate_step_execution(document)

    assert result is document
    assert result == VALID[name]


def test_every_step_type_has_a_valid_example() -> None:
    assert {document["type"] for document in VALID.values()} == {
        "condition",
        "read-record",
        "update-record",
        "trigger-action",
        "load-related-record",
        "mcp",
        "guidance",
    }


# --- validation: rejected documents -------------------------------------------------------------


@pytest.mark.parametrize("document", [None, [], "condition", 3])
def test_a_document_must_be_an_object(document: Any) -> None:
    assert rejected(document) == {"_schema": ["A step execution must be a JSON object."]}


@pytest.mark.parametrize("step_type", ["record", "task", "Condition", None, 3])
def test_unknown_step_type_is_rejected(step_type: Any) -> None:
    document = valid("guidance-ai-degrade", type=step_type)

    assert rejected(document) == {"type": ["Unknown step type."]}


def test_missing_step_type_is_rejected() -> None:
    document = valid("guidance-ai-degrade")
    del document["type"]

    assert rejected(document) == {"type": ["Unknown step type."]}


@pytest.mark.parametrize("name", list(VALID))
def test_unknown_top_level_key_is_rejected(name: str) -> None:
    assert "values" in rejected(valid(name, values={"email": "ada@example.com"}))


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("condition", ("executionParams",)),
        ("condition", ("executionResult",)),
        ("read-record", ("selectedRecordRef",)),
        ("read-record", ("executionParams",)),
        ("update-record", ("pendingData",)),
        ("update-record", ("executionResult",)),
        ("trigger-action", ("pendingData", "form")),
        ("trigger-action", ("executionResult",)),
        ("trigger-action", ("executionResult", "approvalRequest")),
        ("load-related-record", ("pendingData",)),
        ("load-related-record", ("pendingData", "suggestedRecord")),
        ("load-related-record", ("executionResult", "record")),
        ("mcp", ("pendingData",)),
        ("mcp", ("executionResult",)),
        ("guidance", ("pendingData",)),
        ("guidance", ("executionResult",)),
    ],
)
def test_unknown_nested_key_is_rejected(name: str, path: tuple[str, ...]) -> None:
    document = valid(name)
    holder = document
    for key in path:
        holder = holder[key]
    holder["extra"] = 1

    messages: Any = rejected(document)
    for key in path:
        messages = messages[key]
    assert messages == {"extra": ["Unknown field."]}


@pytest.mark.parametrize("step_index", [-1, "0", 1.5, True, None])
def test_step_index_must_be_an_integer_at_least_zero(step_index: Any) -> None:
    assert "stepIndex" in rejected(valid("condition", stepIndex=step_index))


def test_step_index_is_required() -> None:
    document = valid("condition")
    del document["stepIndex"]

    assert rejected(document) == {"stepIndex": ["Missing data for required field."]}


def test_negative_step_index_of_a_record_ref_is_rejected() -> None:
    document = valid("read-record")
    document["selectedRecordRef"]["stepIndex"] = -1

    assert "stepIndex" in rejected(document)["selectedRecordRef"]


@pytest.mark.parametrize("name", ["update-record", "trigger-action", "mcp"])
@pytest.mark.parametrize("phase", ["started", "Done", "", None, True])
def test_bad_idempotency_phase_is_rejected(name: str, phase: Any) -> None:
    assert "idempotencyPhase" in rejected(valid(name, idempotencyPhase=phase))


@pytest.mark.parametrize("name", ["condition", "read-record", "load-related-record", "guidance"])
def test_idempotency_phase_only_belongs_to_mutating_types(name: str) -> None:
    assert rejected(valid(name, idempotencyPhase="done")) == {
        "idempotencyPhase": ["Unknown field."]
    }


@pytest.mark.parametrize("name", ["condition", "read-record", "guidance"])
def test_user_confirmation_only_belongs_to_confirmable_types(name: str) -> None:
    assert rejected(valid(name, userConfirmation={"userConfirmed": True})) == {
        "userConfirmation": ["Unknown field."]
    }


@pytest.mark.parametrize("name", ["condition", "mcp", "guidance"])
def test_selected_record_ref_only_belongs_to_record_steps(name: str) -> None:
    assert "selectedRecordRef" in rejected(valid(name, selectedRecordRef=ref(["1"])))


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("condition", "executionParams"),
        ("read-record", "executionParams"),
        ("read-record", "executionResult"),
        ("read-record", "selectedRecordRef"),
        ("update-record", "selectedRecordRef"),
        ("trigger-action", "selectedRecordRef"),
    ],
)
def test_required_fields(name: str, field: str) -> None:
    document = valid(name)
    del document[field]

    assert rejected(document) == {field: ["Missing data for required field."]}


@pytest.mark.parametrize("record_id", [[], "123", 123, [True], [None], [["1"]], [{"id": 1}], None])
def test_record_ids_must_be_non_empty_arrays_of_strings_and_numbers(record_id: Any) -> None:
    document = valid("update-record")
    document["selectedRecordRef"]["recordId"] = record_id

    assert "recordId" in rejected(document)["selectedRecordRef"]


def test_candidate_record_id_is_validated() -> None:
    document = valid("load-related-record")
    document["pendingData"]["availableRecordIds"][1]["recordId"] = []

    messages = rejected(document)["pendingData"]["availableRecordIds"]
    assert "recordId" in messages[1]


@pytest.mark.parametrize(
    ("name", "path", "value"),
    [
        ("condition", ("executionParams", "answer"), 1),
        ("condition", ("executionParams", "reasoning"), None),
        ("condition", ("executionResult", "answer"), None),
        ("read-record", ("executionParams", "fields"), {"name": "tier"}),
        ("read-record", ("selectedRecordRef", "collectionName"), ""),
        ("read-record", ("selectedRecordRef", "collectionName"), 5),
        ("update-record", ("pendingData", "name"), None),
        ("update-record", ("executionResult", "updatedValues"), ["tier"]),
        ("update-record", ("executionResult", "skipped"), False),
        ("update-record", ("userConfirmation",), "yes"),
        ("trigger-action", ("executionResult", "success"), False),
        ("trigger-action", ("executionResult", "submissionOutcome"), "queued"),
        ("trigger-action", ("executionResult", "submittedBy"), "robot"),
        ("trigger-action", ("executionResult", "approvalRequest", "id"), ""),
        ("trigger-action", ("executionResult", "submittedValues"), [1]),
        ("trigger-action", ("pendingData", "form", "aiFilledValues"), {"amount": 10}),
        ("trigger-action", ("pendingData", "form", "fields"), [["amount"]]),
        ("load-related-record", ("pendingData", "suggestNoRecord"), False),
        ("load-related-record", ("pendingData", "availableFields"), None),
        ("load-related-record", ("pendingData", "suggestedRecord", "referenceFieldValue"), 3),
        ("load-related-record", ("executionParams", "displayName"), 3),
        ("mcp", ("pendingData", "input"), "title"),
        ("mcp", ("pendingData", "sourceId"), None),
        ("mcp", ("executionResult", "formattedResponse"), 12),
        ("guidance", ("pendingData", "aiGenerated"), False),
        ("guidance", ("executionResult", "userInput"), 5),
        ("guidance", ("executionResult", "generatedByAi"), "yes"),
    ],
)
def test_wrong_types_are_rejected(name: str, path: tuple[str, ...], value: Any) -> None:
    document = valid(name)
    holder = document
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value

    messages: Any = rejected(document)
    for key in path[:-1]:
        messages = messages[key]
    assert path[-1] in messages


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("update-record-skipped", ("executionResult", "skipped")),
        ("trigger-action", ("executionResult", "success")),
        ("trigger-action-skipped", ("executionResult", "skipped")),
        ("load-related-record-no-record", ("pendingData", "suggestNoRecord")),
        ("load-related-record-skipped", ("executionResult", "skipped")),
        ("mcp", ("executionResult", "success")),
        ("mcp-skipped", ("executionResult", "skipped")),
        ("guidance", ("pendingData", "aiGenerated")),
        ("guidance", ("executionResult", "generatedByAi")),
    ],
)
@pytest.mark.parametrize("value", [1, "true", "yes", "on", None])
def test_true_flags_must_be_the_literal_true(name: str, path: tuple[str, str], value: Any) -> None:
    # A document is stored as given, so a truthy look-alike would be served with the wrong type.
    document = valid(name)
    document[path[0]][path[1]] = value

    assert path[1] in rejected(document)[path[0]]


def test_required_value_of_a_field_with_value() -> None:
    document = valid("update-record")
    del document["pendingData"]["value"]

    assert rejected(document) == {"pendingData": {"value": ["Missing data for required field."]}}


def test_validation_does_not_modify_a_rejected_document() -> None:
    document = valid("update-record", idempotencyPhase="later")
    before = copy.deepcopy(document)

    rejected(document)

    assert document == before


# --- wire form ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["condition", "condition-undecided", "mcp", "mcp-skipped", "guidance"]
)
def test_documents_without_record_ids_are_unchanged_on_the_wire(name: str) -> None:
    assert step_execution_to_wire(valid(name)) == VALID[name]


def test_read_record_wire_form_joins_the_selected_record_id() -> None:
    wire = step_execution_to_wire(valid("read-record"))

    expected = valid("read-record")
    expected["selectedRecordRef"]["recordId"] = "123"
    assert wire == expected


def test_update_record_wire_form_joins_a_composite_id() -> None:
    wire = step_execution_to_wire(valid("update-record"))

    expected = valid("update-record")
    expected["selectedRecordRef"] = {
        "collectionName": "customers",
        "recordId": "A1|2024",
        "stepIndex": 0,
    }
    assert wire == expected


def test_numeric_record_ids_are_joined_as_text() -> None:
    assert step_execution_to_wire(valid("update-record-pending"))["selectedRecordRef"][
        "recordId"
    ] == ("42")


def test_trigger_action_wire_form_joins_only_the_selected_record_id() -> None:
    wire = step_execution_to_wire(valid("trigger-action"))

    expected = valid("trigger-action")
    expected["selectedRecordRef"]["recordId"] = "123"
    assert wire == expected


def test_load_related_record_wire_form_joins_every_listed_id() -> None:
    wire = step_execution_to_wire(valid("load-related-record"))

    assert wire == {
        "type": "load-related-record",
        "stepIndex": 4,
        "pendingData": {
            "availableFields": [ORDERS, {"name": "store", "displayName": "Store"}],
            "suggestedField": ORDERS,
            "availableRecordIds": [
                {"recordId": "987", "referenceFieldValue": "ORD-987"},
                {"recordId": "K|2", "referenceFieldValue": None},
            ],
            "suggestedRecord": {"recordId": "987", "referenceFieldValue": "ORD-987"},
        },
        "selectedRecordRef": {"collectionName": "customers", "recordId": "123", "stepIndex": 0},
        "executionParams": ORDERS,
        "executionResult": {
            "relation": ORDERS,
            "record": {"collectionName": "orders", "recordId": "987", "stepIndex": 4},
        },
        # userConfirmation is returned as stored: its selectedRecordId stays an array.
        "userConfirmation": {"userConfirmed": True, "selectedRecordId": ["987"]},
    }


@pytest.mark.parametrize("name", ["load-related-record-no-record", "load-related-record-skipped"])
def test_load_related_record_without_those_ids_is_unchanged(name: str) -> None:
    assert step_execution_to_wire(valid(name)) == VALID[name]


def test_user_confirmation_record_id_is_never_joined() -> None:
    for name in ("update-record", "trigger-action", "mcp", "load-related-record"):
        document = valid(name, userConfirmation={"selectedRecordId": ["A", "B"]})

        assert step_execution_to_wire(document)["userConfirmation"] == {
            "selectedRecordId": ["A", "B"]
        }


def test_record_ids_outside_the_listed_places_stay_arrays() -> None:
    document = valid("trigger-action")
    document["executionResult"]["actionResult"] = {"record": {"recordId": ["9"]}}
    document["pendingData"]["form"]["fields"][0]["value"] = {"recordId": ["9"]}

    wire = step_execution_to_wire(document)

    assert wire["executionResult"]["actionResult"] == {"record": {"recordId": ["9"]}}
    assert wire["pendingData"]["form"]["fields"][0]["value"] == {"recordId": ["9"]}


def test_only_load_related_record_joins_pending_and_result_ids() -> None:
    # Shapes that are not valid for other types are left alone by the wire form all the same.
    document = {
        "type": "update-record",
        "stepIndex": 1,
        "pendingData": {"availableRecordIds": [{"recordId": ["1"]}]},
        "executionResult": {"record": {"recordId": ["2"]}},
    }

    assert step_execution_to_wire(document) == document


@pytest.mark.parametrize("name", list(VALID))
def test_wire_form_does_not_mutate_its_input(name: str) -> None:
    document = valid(name)

    wire = step_execution_to_wire(document)

    assert document == VALID[name]
    assert wire is not document


def test_wire_form_fails_when_an_id_part_contains_a_pipe() -> None:
    document = valid("load-related-record")
    document["pendingData"]["availableRecordIds"][0]["recordId"] = ["a|b"]

    with pytest.raises(RecordIdSerialization):
        step_execution_to_wire(document)


# --- validation: one variant at a time ----------------------------------------------------------


def test_a_condition_result_repeats_the_answer_and_exists_only_with_one() -> None:
    assert "executionResult" in rejected(valid("condition", executionResult={"answer": "No"}))
    undecided = valid("condition-undecided", executionResult={"answer": "Yes"})
    assert "executionResult" in rejected(undecided)


@pytest.mark.parametrize(
    "field_result",
    [
        {"name": "tier", "displayName": "Tier"},
        {"name": "tier", "displayName": "Tier", "value": "gold", "error": "Not readable"},
    ],
    ids=["neither", "both"],
)
def test_a_read_field_has_either_a_value_or_an_error(field_result: dict[str, Any]) -> None:
    document = valid("read-record", executionResult={"fields": [field_result]})
    assert "executionResult" in rejected(document)


@pytest.mark.parametrize(
    ("name", "result"),
    [
        ("update-record", {}),
        ("update-record", {"skipped": True, "updatedValues": {"tier": "gold"}}),
        ("trigger-action", {"actionResult": {"ok": True}}),
        ("trigger-action", {"skipped": True, "success": True}),
        ("load-related-record", {"relation": ORDERS}),
        ("load-related-record", {"skipped": True, "relation": ORDERS}),
        ("mcp", {"success": True}),
        ("mcp", {"skipped": True, "success": True, "toolResult": None}),
    ],
)
def test_a_result_is_either_skipped_or_done_never_both_nor_half(
    name: str, result: dict[str, Any]
) -> None:
    assert "executionResult" in rejected(valid(name, executionResult=result))


def test_a_done_mcp_result_may_carry_a_null_tool_result() -> None:
    document = valid("mcp", executionResult={"success": True, "toolResult": None})
    assert validate_step_execution(document) is document


@pytest.mark.parametrize("name", ["load-related-record", "read-record", "update-record"])
def test_the_wire_form_leaves_the_stored_document_unchanged(name: str) -> None:
    document = valid(name)
    step_execution_to_wire(document)
    assert document == valid(name)
