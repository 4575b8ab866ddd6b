"""Workflow definition files: what the sandbox orchestrator runs (JSON, validated here).

A definition names the collection and record the run starts on and lists its steps; the first
step starts the run, each step names the step that follows it (``next``, or for a condition one
per option in ``branches``; none or null ends the run). ``demoAnswer`` is what the demo answers for
a step that waits for the user when nobody is at the terminal (the trigger's ``pendingData``,
protocol §5.6). :func:`server_steps` turns the steps into the server step definitions the
orchestrator hands out (the reverse of the mapping in protocol §3.4.2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from executor.schemas.fields import JsonValue
from executor.schemas.pending import (
    ConditionPendingDataSchema,
    GuidancePendingDataSchema,
    LoadRelatedConfirmationSchema,
    McpConfirmationSchema,
    TriggerActionConfirmationSchema,
    UpdateConfirmationSchema,
)

SAMPLE_WORKFLOW = "upgrade-customer.json"
MAX_DEFINITION_BYTES = 1_000_000
END = "__end__"  # the outgoing stepId of a link that ends the run (never a step's id)

# Allowed execution modes per step type (protocol §2.2); the first is the default.
MODES: dict[str, tuple[str, ...]] = {
    "guidance": ("manual", "automated-with-confirmation", "fully-automated"),
    "condition": ("fully-automated", "manual"),
    "read-record": ("fully-automated",),
    "update-record": ("automated-with-confirmation", "fully-automated"),
    "trigger-action": ("automated-with-confirmation", "manual", "fully-automated"),
    "load-related-record": ("automated-with-confirmation", "manual", "fully-automated"),
    "mcp": ("automated-with-confirmation", "fully-automated"),
}
TASK_TYPES = {
    "guidance": "guideline",
    "read-record": "get-data",
    "update-record": "update-data",
    "trigger-action": "trigger-action",
    "load-related-record": "load-related-record",
    "mcp": "mcp-server",
}
ANSWER_SCHEMAS: dict[str, type[Schema]] = {
    "guidance": GuidancePendingDataSchema,
    "condition": ConditionPendingDataSchema,
    "update-record": UpdateConfirmationSchema,
    "trigger-action": TriggerActionConfirmationSchema,
    "load-related-record": LoadRelatedConfirmationSchema,
    "mcp": McpConfirmationSchema,
}


class DefinitionError(Exception):
    """A workflow definition file that cannot be read or is invalid; the message says why."""


@dataclass(frozen=True)
class StepDefinition:
    id: str
    type: str
    execution_type: str
    title: str | None
    prompt: str | None
    pre_recorded_args: dict[str, Any] | None
    mcp_server_id: str | None
    next: str | None
    branches: dict[str, str | None] | None
    demo_answer: dict[str, Any] | None

    @property
    def label(self) -> str:
        return self.title or self.id


@dataclass(frozen=True)
class WorkflowDefinition:
    name: str
    collection: str
    record_id: str
    steps: tuple[StepDefinition, ...]

    @property
    def step_ids(self) -> list[str]:
        return [step.id for step in self.steps]

    def step(self, step_id: str) -> StepDefinition:
        return next(step for step in self.steps if step.id == step_id)


class _Closed(Schema):
    class Meta:
        unknown = RAISE


class _StepSchema(_Closed):
    id = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^(?!__)\S+$", error="Must be a non-empty id without spaces, not starting with '__'."
        ),
    )
    type = fields.String(required=True, validate=validate.OneOf(list(MODES)))
    executionType = fields.String(
        validate=validate.OneOf(["manual", "automated-with-confirmation", "fully-automated"])
    )
    title = fields.String()
    prompt = fields.String()
    preRecordedArgs = fields.Dict(keys=fields.String())
    mcpServerId = fields.String(validate=validate.Length(min=1))
    next = fields.String(allow_none=True)
    branches = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1)), values=fields.String(allow_none=True)
    )
    demoAnswer = JsonValue()

    @validates_schema
    def _coherent(self, data: dict[str, Any], **_: Any) -> None:
        step_type = data["type"]
        mode = data.get("executionType")
        if mode is not None and mode not in MODES[step_type]:
            raise ValidationError(
                f"A {step_type} step runs in one of: {', '.join(MODES[step_type])}.",
                "executionType",
            )
        if step_type == "condition":
            if len(data.get("branches") or {}) < 2:
                raise ValidationError("A condition needs at least 2 options.", "branches")
            if "next" in data:
                raise ValidationError("A condition continues through its branches.", "next")
        elif "branches" in data:
            raise ValidationError("Only a condition has branches.", "branches")
        if step_type == "mcp" and "mcpServerId" not in data:
            raise ValidationError("An mcp step needs an mcpServerId.", "mcpServerId")
        answer = data.get("demoAnswer")
        if answer is not None:
            schema = ANSWER_SCHEMAS.get(step_type)
            if schema is None:
                raise ValidationError(
                    f"A {step_type} step never waits for an answer.", "demoAnswer"
                )
            if not isinstance(answer, dict):
                raise ValidationError("Must be an object.", "demoAnswer")
            try:
                schema().load(answer)
            except ValidationError as error:
                raise ValidationError(error.messages, "demoAnswer") from error
            if step_type == "condition" and answer["selectedOption"] not in data["branches"]:
                raise ValidationError("Must be one of the branches' options.", "demoAnswer")

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> StepDefinition:
        return StepDefinition(
            id=data["id"],
            type=data["type"],
            execution_type=data.get("executionType", MODES[data["type"]][0]),
            title=data.get("title"),
            prompt=data.get("prompt"),
            pre_recorded_args=data.get("preRecordedArgs"),
            mcp_server_id=data.get("mcpServerId"),
            next=data.get("next"),
            branches=data.get("branches"),
            demo_answer=data.get("demoAnswer"),
        )


class _WorkflowSchema(_Closed):
    name = fields.String(required=True, validate=validate.Length(min=1))
    description = fields.String()
    collection = fields.String(required=True, validate=validate.Length(min=1))
    recordId = fields.String(required=True, validate=validate.Length(min=1))
    steps = fields.List(fields.Nested(_StepSchema), required=True, validate=validate.Length(min=1))

    @validates_schema
    def _links(self, data: dict[str, Any], **_: Any) -> None:
        steps: list[StepDefinition] = data["steps"]
        ids = [step.id for step in steps]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValidationError(f"Step ids must be unique: {', '.join(duplicates)}.", "steps")
        for number, step in enumerate(steps):
            targets = [step.next] if step.branches is None else list(step.branches.values())
            for target in targets:
                if target is not None and target not in ids:
                    raise ValidationError(
                        {str(number): [f"Links to an unknown step: {target!r}."]}, "steps"
                    )

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> WorkflowDefinition:
        return WorkflowDefinition(
            name=data["name"],
            collection=data["collection"],
            record_id=data["recordId"],
            steps=tuple(data["steps"]),
        )


def parse_definition(text: str, source: str) -> WorkflowDefinition:
    """Validate a definition's JSON text; raises :class:`DefinitionError` naming ``source``."""
    try:
        document = json.loads(text)
    except ValueError as error:
        raise DefinitionError(f"{source} is not valid JSON: {error}") from error
    try:
        definition: WorkflowDefinition = _WorkflowSchema().load(document)
    except ValidationError as error:
        raise DefinitionError(
            f"{source} is not a valid workflow: {_describe(error.messages)}"
        ) from error
    return definition


def load_definition(path: Path | None = None) -> WorkflowDefinition:
    """The workflow in ``path``, or the sample shipped with the package."""
    if path is None:
        sample = resources.files("executor.sandbox").joinpath("workflows", SAMPLE_WORKFLOW)
        return parse_definition(sample.read_text(encoding="utf-8"), SAMPLE_WORKFLOW)
    try:
        if path.stat().st_size > MAX_DEFINITION_BYTES:
            raise DefinitionError(f"{path} is larger than {MAX_DEFINITION_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DefinitionError(f"Cannot read {path}: {error}") from error
    return parse_definition(text, str(path))


def server_steps(definition: WorkflowDefinition) -> list[dict[str, Any]]:
    """The steps as the orchestrator sends them (protocol §3.4.2), in the definition's order."""
    return [_server_step(step) for step in definition.steps]


def _server_step(step: StepDefinition) -> dict[str, Any]:
    server: dict[str, Any] = {
        "title": step.title,
        "prompt": step.prompt,
        "executionType": step.execution_type,
        "automaticCompletion": False,
    }
    if step.type == "condition":
        server["type"] = "condition"
        server["outgoing"] = [
            {"stepId": target or END, "buttonText": None, "answer": option}
            for option, target in (step.branches or {}).items()
        ]
        return server
    server |= {"type": "task", "taskType": TASK_TYPES[step.type]}
    server["outgoing"] = [{"stepId": step.next or END, "buttonText": None}]
    if step.pre_recorded_args is not None:
        server["preRecordedArgs"] = step.pre_recorded_args
    if step.mcp_server_id is not None:
        server["mcpServerId"] = step.mcp_server_id
    return server


def _describe(messages: Any, path: str = "") -> str:
    """marshmallow's nested messages as ``steps.2.next: …; name: …``."""
    if isinstance(messages, dict):
        return "; ".join(
            _describe(value, f"{path}.{key}" if path else str(key))
            for key, value in messages.items()
        )
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return f"{path or 'file'}: {' '.join(messages)}"
    if isinstance(messages, list):
        return "; ".join(_describe(m, path) for m in messages)
    return f"{path or 'file'}: {messages}"
