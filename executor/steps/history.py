"""Summaries of a run's previous steps, as the AI reads them (protocol §7.1.1)."""

from __future__ import annotations

import json
from typing import Any

from executor.domain.executions import StepExecutionData
from executor.domain.outcomes import StepStatus
from executor.domain.runs import Step
from executor.domain.steps import StepType
from executor.steps.sources import entry_of


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def summarize(previous: Step, entries: dict[int, StepExecutionData]) -> str:
    prompt = previous.definition.prompt or "(no prompt)"
    lines = [
        f'Step "{previous.outcome.step_id}" (index {previous.outcome.step_index}):',
        f"  Prompt: {prompt}",
    ]
    lines.extend(_details(previous, entry_of(previous, entries)))
    return "\n".join(lines)


def _details(previous: Step, entry: StepExecutionData | None) -> list[str]:
    outcome = previous.outcome
    if entry is None:
        history: dict[str, Any] = {"status": outcome.status.value}
        if outcome.error:
            history["error"] = outcome.error
        if outcome.selected_option is not None:
            history["selectedOption"] = outcome.selected_option
        return [f"  History: {compact_json(history)}"]
    result = entry.get("executionResult")
    if outcome.status is StepStatus.SUCCESS and "pendingData" in entry and result is None:
        return [
            f"  Proposed: {compact_json(entry['pendingData'])}",
            "  Note: the user handled this step manually — the actual outcome may differ from "
            "the proposal above.",
        ]
    if result is not None:
        specific = _specific(previous.definition.type, entry, result)
        if specific is not None:
            return specific
    lines = []
    if "executionParams" in entry:
        lines.append(f"  Input: {compact_json(entry['executionParams'])}")
    elif "pendingData" in entry:
        lines.append(f"  Pending: {compact_json(entry['pendingData'])}")
    if result is not None:
        lines.append(f"  Output: {compact_json(result)}")
    return lines


def _specific(step_type: StepType, entry: StepExecutionData, result: Any) -> list[str] | None:
    if step_type is StepType.LOAD_RELATED_RECORD and result.get("record"):
        source = entry.get("selectedRecordRef") or {}
        record = result["record"]
        return [
            f"  Loaded: {source.get('collectionName')} #{_parts(source.get('recordId'))} → "
            f"[{result['relation']['displayName']}] → {record['collectionName']} "
            f"#{_parts(record['recordId'])} (step {record['stepIndex']})"
        ]
    if step_type is StepType.MCP and not result.get("skipped"):
        if result.get("formattedResponse"):
            return [f"  Result: {result['formattedResponse']}"]
        tool = (entry.get("executionParams") or {}).get("name")
        return [f"  Executed: {tool} (result not summarized)"]
    if step_type is StepType.GUIDANCE and result.get("userInput"):
        if result.get("generatedByAi"):
            return [f'  The AI generated the following response: "{result["userInput"]}"']
        return [f'  The user provided the following input: "{result["userInput"]}"']
    if step_type is StepType.TRIGGER_ACTION and not result.get("skipped"):
        return _action_lines(entry, result)
    return None


def _action_lines(entry: StepExecutionData, result: dict[str, Any]) -> list[str]:
    name = (entry.get("executionParams") or {}).get("displayName") or "an action"
    submitter = "AI" if result.get("submittedBy") == "ai" else "the user"
    if result.get("submissionOutcome") == "pending-approval":
        return [
            f'  Submitted action "{name}" for approval (by {submitter}). It is AWAITING APPROVAL '
            "and has NOT been executed — no result is available yet."
        ]
    lines = [f'  Triggered action "{name}" (submitted by {submitter}).']
    ai_filled = result.get("aiFilledValues") or []
    if ai_filled:
        lines.append(f"  AI pre-filled: {', '.join(str(v['field']) for v in ai_filled)}.")
        prefill = {v["field"]: v["value"] for v in ai_filled}
        submitted = result.get("submittedValues") or {}
        edited = [k for k, v in submitted.items() if k in prefill and prefill[k] != v]
        if edited:
            lines.append(f"  Edited by the user before submitting: {', '.join(edited)}.")
    return lines


def _parts(record_id: Any) -> str:
    return ", ".join(str(p) for p in record_id) if isinstance(record_id, list) else str(record_id)
