"""trigger-action: run an action of the agent on a record, or file it for approval; with
confirmation, the front executes it and tells the executor what happened (protocol §7.5)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from executor.domain.collections import ActionSchema, CollectionSchema
from executor.domain.executions import StepExecutionData
from executor.domain.ids import join_record_id
from executor.domain.outcomes import StepOutcome
from executor.domain.runs import RecordRef
from executor.domain.steps import ExecutionType
from executor.errors import (
    ActionFormValidation,
    ActionNotFound,
    ActionRequiresApproval,
    NoActions,
    StepStateError,
)
from executor.schemas.pending import TriggerActionConfirmationSchema
from executor.steps import prompts, tools
from executor.steps.action_form import FormSession
from executor.steps.history import compact_json
from executor.steps.record_step import DONE, ConfirmableStep

log = logging.getLogger(__name__)

FILL_PASSES = 3
_NONE = object()
PENDING_APPROVAL = "pending-approval"
EXECUTED = "executed"


@dataclass(frozen=True)
class _Submission:
    """What became of an execution: the agent's answer, or an approval request."""

    outcome: str  # executed | pending-approval
    action_result: Any = None
    approval_id: str | None = None


class TriggerActionStep(ConfirmableStep):
    confirmation_schema = TriggerActionConfirmationSchema()
    mutating = True
    legacy_index_allowed = False

    def first_call(self) -> StepOutcome:
        source = self.source_record()
        schema = self.schemas.get(source.collection_name)
        action, reasoning = self._choose_action(schema)
        # The approval request's comment: why the AI chose the action, else the step's prompt.
        message = reasoning or self.step.definition.prompt or None
        ids = self._ids(action, source)
        form = FormSession.open(self.agent, action, schema.name, ids)
        base = self.base_entry(source)
        proposal: dict[str, Any] = {"displayName": action.display_name, "name": action.name}
        mode = self.step.definition.execution_type
        if form is None:
            if mode is ExecutionType.FULLY_AUTOMATED:
                return self._execute(base, source, schema, action, None, [], message)
            return self._pause(base, proposal)
        if mode is ExecutionType.MANUAL:
            return self._pause(
                base, {**proposal, "form": {"fields": form.flattened(), "aiFilledValues": []}}
            )
        form, filled = self._ai_fill(action, schema.name, ids, form)
        paused = {**proposal, "form": {"fields": form.flattened(), "aiFilledValues": filled}}
        if mode is ExecutionType.AUTOMATED_WITH_CONFIRMATION or not form.can_execute:
            return self._pause(base, paused)
        values = {item["field"]: item["value"] for item in filled}
        try:
            return self._execute(base, source, schema, action, values, filled, message)
        except (ActionFormValidation, ActionRequiresApproval) as error:
            log.warning("The AI-filled form was refused — left to the user: %s", error)
            return self._pause(base, paused)

    def confirmed(self, entry: StepExecutionData, confirmation: dict[str, Any]) -> StepOutcome:
        """The front executed the action itself (or filed it for approval): record what it says;
        the executor does not run the action again."""
        submission = confirmation.get("submissionOutcome", EXECUTED)
        if submission == EXECUTED and "actionResult" not in confirmation:
            raise StepStateError("A confirmed execution must carry the action's result")
        proposal = entry["pendingData"]
        result: dict[str, Any] = {"success": True, "submissionOutcome": submission}
        if submission == EXECUTED:
            result["actionResult"] = confirmation["actionResult"]
        result["submittedBy"] = "user"
        if "submittedValues" in confirmation:
            result["submittedValues"] = confirmation["submittedValues"]
        ai_filled = (proposal.get("form") or {}).get("aiFilledValues")
        if ai_filled:
            result["aiFilledValues"] = ai_filled
        approval = confirmation.get("approvalRequest")
        if approval:
            result["approvalRequest"] = approval
        self.save(
            {
                **entry,
                "executionParams": {
                    "displayName": proposal["displayName"],
                    "name": proposal["name"],
                },
                "executionResult": result,
            }
        )
        return self.success(approval_request_id=approval["id"] if approval else None)

    def replay(self, entry: StepExecutionData) -> StepOutcome:
        result = entry.get("executionResult") or {}
        approval = (
            result.get("approvalRequest")
            if result.get("submissionOutcome") == PENDING_APPROVAL
            else None
        )
        return self.success(approval_request_id=approval["id"] if approval else None)

    # --- choosing -------------------------------------------------------------------------------

    def _choose_action(self, schema: CollectionSchema) -> tuple[ActionSchema, str | None]:
        """The action, and the AI's reasoning when the AI chose it."""
        pre = self.step.definition.pre_recorded_args
        if pre is not None and pre.action_name:
            action = schema.action_named(pre.action_name)
            if action is None:  # perhaps new since the schema was cached
                action = self.schemas.get(schema.name, fresh=True).action_named(pre.action_name)
            if action is None:
                raise ActionNotFound(f"{schema.name} has no action {pre.action_name}")
            return action, None
        if not schema.actions:
            raise NoActions(f"{schema.name} has no action")
        answer = self.ai.decide(
            tools.select_action(schema.actions),
            instructions=[prompts.SELECT_ACTION, prompts.collection_line(schema.display_name)],
            request=f"**Request**: {self.request_text('Trigger the relevant action.')}",
        )
        chosen = answer["actionName"]
        action = next((a for a in schema.actions if a.display_name == chosen), None) or next(
            (a for a in schema.actions if a.name == chosen), None
        )
        if action is None:
            raise ActionNotFound(f"The AI chose an action {schema.name} does not have")
        return action, answer.get("reasoning") or None

    def _ai_fill(
        self, action: ActionSchema, collection_name: str, ids: list[str], form: FormSession
    ) -> tuple[FormSession, list[dict[str, Any]]]:
        """Up to three passes of the AI filling the form, the form re-read between passes so
        that change hooks can add or change fields. Returns the form and the values the AI
        filled, in the order it filled them."""
        kept: dict[str, Any] = {}
        filled: list[dict[str, Any]] = []
        for _ in range(FILL_PASSES):
            answer = self.ai.decide(
                tools.fill_action_form(),
                instructions=[prompts.FILL_FORM, "Form fields:\n" + _form_lines(form)],
                request=f"**Request**: {self.request_text('Fill the action form.')}",
            )
            names = {f.get("field") for f in form.fields}
            new = {
                name: value
                for name, value in (answer.get("values") or {}).items()
                if value not in (None, "") and name in names and kept.get(name, _NONE) != value
            }
            if not new:
                break
            kept.update(new)
            filled.extend({"field": name, "value": value} for name, value in new.items())
            reopened = FormSession.open(self.agent, action, collection_name, ids)
            if reopened is None:
                break
            form = reopened
            form.set_values(kept, strict=False)
            if form.can_execute:
                break
        names = {f.get("field") for f in form.fields}
        return form, [item for item in filled if item["field"] in names]

    @staticmethod
    def _ids(action: ActionSchema, source: RecordRef) -> list[str]:
        return [] if action.is_global else [join_record_id(source.record_id)]

    def _pause(self, base: StepExecutionData, proposal: dict[str, Any]) -> StepOutcome:
        self.save({**base, "pendingData": proposal})  # not audited: nothing touched the data
        return self.awaiting_input()

    # --- executing ------------------------------------------------------------------------------

    def _execute(
        self,
        base: StepExecutionData,
        source: RecordRef,
        schema: CollectionSchema,
        action: ActionSchema,
        values: dict[str, Any] | None,
        filled: list[dict[str, Any]],
        message: str | None,
    ) -> StepOutcome:
        ids = self._ids(action, source)

        def submit() -> _Submission:
            form = FormSession.open(self.agent, action, schema.name, ids) if values else None
            if form is not None and values:
                form.set_values(values, strict=True)
            payload = form.values() if form is not None else {}
            try:
                answer = self.agent.execute_action_now(action, schema.name, ids, payload)
            except ActionRequiresApproval:
                if self.context.request_approval is None:
                    raise
                approval_id = self.context.request_approval(
                    action_name=action.name,
                    collection_name=schema.name,
                    record_ids=ids,
                    inputs=form.inputs() if form is not None else [],
                    message=message,
                )
                return _Submission(PENDING_APPROVAL, approval_id=approval_id)
            return _Submission(EXECUTED, action_result=answer)

        submission = self.agent.execute_action(
            schema,
            action,
            [] if action.is_global else [source.record_id],
            submit,
            before=lambda: self.mark_executing(base),
        )
        result: dict[str, Any] = {"success": True}
        if submission.outcome == PENDING_APPROVAL:
            result.update(submissionOutcome=PENDING_APPROVAL, submittedBy="ai")
            if submission.approval_id is not None:
                result["approvalRequest"] = {"id": submission.approval_id}
            else:
                log.warning(
                    "Approval requested but the Forest server returned no id",
                    extra={"run_id": self.step.run_id, "step_index": self.step.step_index},
                )
        else:
            result["actionResult"] = submission.action_result
        if values:
            result.update(
                submissionOutcome=submission.outcome, submittedBy="ai", submittedValues=values
            )
        if filled:
            result["aiFilledValues"] = filled
        self.save(
            {
                **base,
                "executionParams": {"displayName": action.display_name, "name": action.name},
                "executionResult": result,
                "idempotencyPhase": DONE,
            }
        )
        return self.success(approval_request_id=submission.approval_id)


def _form_lines(form: FormSession) -> str:
    """One line per field: what it is, what it takes, what it holds."""
    lines = []
    for field in form.flattened():
        kind = field["type"] if isinstance(field["type"], str) else compact_json(field["type"])
        line = f"- {field['name']} ({kind}{', required' if field['isRequired'] else ''})"
        if field.get("description"):
            line += f" — hint: {field['description']}"
        if field.get("enumValues"):
            line += f" — allowed: {', '.join(map(str, field['enumValues']))}"
        elif field.get("allowedValues"):
            options = (f"{o['value']} ({o['label']})" for o in field["allowedValues"])
            line += f" — allowed: {', '.join(options)}"
        line += f" — current: {compact_json(field['value'])}"
        lines.append(line)
    return "\n".join(lines)
