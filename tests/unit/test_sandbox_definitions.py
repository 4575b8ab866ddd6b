"""Workflow definition files: the sample loads, bad files are refused with a clear message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from executor.cli import main
from executor.sandbox.definitions import (
    END,
    DefinitionError,
    load_definition,
    parse_definition,
    server_steps,
)


def workflow(*steps: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {"name": "Test", "collection": "customers", "recordId": "1", "steps": list(steps)} | (
        overrides
    )


def guidance(step_id: str = "note", **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "guidance", **fields}


def refusal(document: Any) -> str:
    with pytest.raises(DefinitionError) as raised:
        parse_definition(json.dumps(document), "wf.json")
    return str(raised.value)


def test_the_sample_workflow_ships_with_the_package_and_is_valid() -> None:
    sample = load_definition()
    assert sample.collection == "customers"
    assert [s.type for s in sample.steps] == [
        "guidance",
        "condition",
        "read-record",
        "update-record",
        "load-related-record",
        "read-record",
        "trigger-action",
    ]


def test_steps_become_server_step_definitions_linked_by_id() -> None:
    definition = parse_definition(
        json.dumps(
            workflow(
                guidance("note", next="vip"),
                {
                    "id": "vip",
                    "type": "condition",
                    "prompt": "VIP?",
                    "branches": {"Yes": "read", "No": None},
                },
                {"id": "read", "type": "read-record", "preRecordedArgs": {"fieldNames": ["name"]}},
            )
        ),
        "wf.json",
    )
    note, vip, read = server_steps(definition)
    assert note["type"] == "task" and note["taskType"] == "guideline"
    assert note["executionType"] == "manual"  # guidance's default mode
    assert note["outgoing"] == [{"stepId": "vip", "buttonText": None}]
    assert vip["type"] == "condition" and vip["executionType"] == "fully-automated"
    assert vip["outgoing"] == [
        {"stepId": "read", "buttonText": None, "answer": "Yes"},
        {"stepId": END, "buttonText": None, "answer": "No"},
    ]
    assert read["taskType"] == "get-data"
    assert read["preRecordedArgs"] == {"fieldNames": ["name"]}
    assert read["outgoing"] == [{"stepId": END, "buttonText": None}]
    assert definition.step_ids == ["note", "vip", "read"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"name": "x"}, "collection: Missing data for required field."),
        (workflow(), "steps: Shorter than minimum length 1."),
        (workflow(guidance(), extra=1), "extra: Unknown field."),
        (workflow({"id": "a", "type": "escalation"}), "steps.0.type: Must be one of"),
        (workflow(guidance(next="nowhere")), "Links to an unknown step: 'nowhere'."),
        (workflow(guidance("a"), guidance("a")), "Step ids must be unique: a."),
        (workflow(guidance("__end__")), "steps.0.id: Must be a non-empty id"),
        (
            workflow({"id": "r", "type": "read-record", "executionType": "manual"}),
            "A read-record step runs in one of: fully-automated.",
        ),
        (
            workflow({"id": "c", "type": "condition", "branches": {"Yes": None}}),
            "A condition needs at least 2 options.",
        ),
        (workflow(guidance(branches={"a": None, "b": None})), "Only a condition has branches."),
        (workflow({"id": "m", "type": "mcp"}), "An mcp step needs an mcpServerId."),
        (
            workflow(guidance(demoAnswer={"userInput": 3})),
            "steps.0.demoAnswer.userInput: Not a valid string.",
        ),
        (
            workflow({"id": "r", "type": "read-record", "demoAnswer": {}}),
            "A read-record step never waits for an answer.",
        ),
        (
            workflow(
                {
                    "id": "c",
                    "type": "condition",
                    "branches": {"Yes": None, "No": None},
                    "demoAnswer": {"selectedOption": "Maybe"},
                }
            ),
            "Must be one of the branches' options.",
        ),
    ],
)
def test_an_invalid_definition_is_refused_saying_where(document: Any, message: str) -> None:
    text = refusal(document)
    assert text.startswith("wf.json is not a valid workflow: ")
    assert message in text


def test_a_file_that_is_not_json_or_not_there_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match=r"wf\.json is not valid JSON"):
        parse_definition("{", "wf.json")
    with pytest.raises(DefinitionError, match="Cannot read"):
        load_definition(tmp_path / "missing.json")


def test_the_demo_command_refuses_a_bad_workflow_file_with_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(workflow(guidance(next="nowhere"))))
    assert main(["demo", "--workflow", str(bad), "--no-input", "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"Error: {bad} is not a valid workflow: steps.0: ")
    assert "Links to an unknown step: 'nowhere'." in err
    assert err.count("\n") == 1
