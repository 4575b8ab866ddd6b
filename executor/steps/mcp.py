"""mcp: the AI calls one tool of the step's MCP server, after the user confirms unless fully
automated (protocol §7.7)."""

from __future__ import annotations

import json
import logging
from typing import Any

from executor.domain.ai import ToolDefinition
from executor.domain.executions import StepExecutionData
from executor.domain.outcomes import NEEDS_OAUTH_REAUTH, StepOutcome
from executor.domain.runs import RecordRef
from executor.domain.steps import ExecutionType
from executor.errors import McpToolInvocation, McpToolNotFound, NoMcpTools
from executor.mcp.servers import McpServers, McpToolset
from executor.mcp.tokens import ReauthNeeded
from executor.mcp.tools import McpOperationError
from executor.schemas.pending import McpConfirmationSchema
from executor.steps import prompts, tools
from executor.steps.record_step import DONE, ConfirmableStep

log = logging.getLogger(__name__)

SUMMARY_INPUT_CHARS = 20_000
TRUNCATED = "\n... [truncated]"


class _RetryAbandoned(Exception):
    """The retry after a 401 could not happen for a reason other than re-authentication; the
    tool was not called again, so the write-ahead mark must go (protocol §7.7)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class McpStep(ConfirmableStep):
    confirmation_schema = McpConfirmationSchema()
    mutating = True

    def execute(self) -> StepOutcome:
        try:
            return super().execute()
        except ReauthNeeded as needed:
            log.info(
                "MCP server needs re-authentication",
                extra={"run_id": self.step.run_id, "mcp_server_id": needed.mcp_server_id},
            )
            return self.awaiting_input(awaiting_input_reason=NEEDS_OAUTH_REAUTH)

    def base_entry(self, source: RecordRef | None = None) -> StepExecutionData:
        return {"type": self.step.definition.type.value, "stepIndex": self.step.step_index}

    def first_call(self) -> StepOutcome:
        toolset = self._toolset()
        if not toolset.tools:
            raise NoMcpTools(f"No tools loaded for MCP server {toolset.mcp_server_id}")
        offered = [ToolDefinition(t.name, t.description, t.input_schema) for t in toolset.tools]
        call = self.ai.choose(
            offered,
            instructions=[prompts.MCP_TOOL],
            request=f"**Request**: {self.request_text('Execute the relevant tool.')}",
        )
        tool = toolset.find(call.name)
        if tool is None:
            raise McpToolNotFound(f"The AI called {call.name!r}, which the server does not offer")
        target = {"name": tool.name, "sourceId": tool.source_id, "input": call.arguments}
        if self.step.definition.execution_type is ExecutionType.FULLY_AUTOMATED:
            return self._execute(self.base_entry(), target, toolset)
        self.save({**self.base_entry(), "pendingData": target})
        return self.awaiting_input()

    def confirmed(self, entry: StepExecutionData, confirmation: dict[str, Any]) -> StepOutcome:
        toolset = self._toolset()
        if not toolset.tools:  # the server is down or offers nothing now: not the AI's doing
            raise NoMcpTools(f"No tools loaded for MCP server {toolset.mcp_server_id}")
        return self._execute(entry, entry["pendingData"], toolset)

    # --- executing ------------------------------------------------------------------------------

    def _toolset(self) -> McpToolset:
        servers: McpServers | None = self.context.mcp
        server_id = self.step.definition.mcp_server_id
        if servers is None or server_id is None:
            raise NoMcpTools("MCP steps are not available to this executor")
        return servers.load(server_id, self.step.user.id)

    def _execute(
        self, entry: StepExecutionData, target: dict[str, Any], toolset: McpToolset
    ) -> StepOutcome:
        tool = toolset.find(target["name"], target["sourceId"])
        if tool is None:
            raise McpToolNotFound(f"{target['sourceId']} no longer offers {target['name']}")
        arguments = dict(target["input"])

        def invoke() -> Any:
            try:
                return toolset.call(tool, arguments)
            except McpOperationError as error:
                # Only an OAuth2 server's refusal is about our token (§7.7); any other server's
                # 401 is a failed call, and calling a mutating tool again would be a second write.
                if not (error.is_auth and toolset.uses_oauth(tool)):
                    raise McpToolInvocation(f"{error}: {error.cause}") from error
            # Refused token: refresh it, load the tools again, and try once more (§7.7).
            try:
                reloaded = toolset.reloaded()
            except ReauthNeeded:
                raise
            except Exception as error:
                raise _RetryAbandoned(error) from error
            again = reloaded.find(tool.name, tool.source_id)
            if again is None:
                raise _RetryAbandoned(
                    McpToolNotFound(f"{tool.source_id} no longer offers {tool.name}")
                )
            try:
                return reloaded.call(again, arguments)
            except McpOperationError as error:
                if error.is_auth:
                    raise ReauthNeeded(toolset.mcp_server_id) from error
                raise McpToolInvocation(f"{error}: {error.cause}") from error

        try:
            result = self.agent.invoke_mcp_tool(
                self.step.collection_id,
                self.step.base_record_ref.record_id,
                toolset.mcp_server_id,
                invoke,
                before=lambda: self.mark_executing(entry),
            )
        except ReauthNeeded:
            self._clear_mark(entry)
            raise
        except _RetryAbandoned as abandoned:
            self._clear_mark(entry)
            raise abandoned.error from abandoned
        log.info(
            "MCP tool executed",
            extra={
                "run_id": self.step.run_id,
                "step_index": self.step.step_index,
                "mcp_server_id": toolset.mcp_server_id,
                "mcp_server": tool.source_id,
                "tool": tool.name,
            },
        )
        done = {
            **entry,
            "executionParams": target,
            "executionResult": {"success": True, "toolResult": result},
            "idempotencyPhase": DONE,
        }
        self.save(done)
        if result is not None:
            self._summarize(done, target, result)
        return self.success()

    def _clear_mark(self, entry: StepExecutionData) -> None:
        """Undo the write-ahead mark when the tool surely did not run to completion and the step
        will run again: keep a proposal, forget a bare mark."""
        if "pendingData" in entry:
            self.save({k: v for k, v in entry.items() if k != "idempotencyPhase"})
        else:
            self.context.run_store.delete_step_execution(self.step.run_id, self.step.step_index)

    def _summarize(self, done: StepExecutionData, target: dict[str, Any], result: Any) -> None:
        """Best effort: a failure here is logged and the step still succeeds."""
        text = result if isinstance(result, str) else json.dumps(result, default=str)
        if len(text) > SUMMARY_INPUT_CHARS:
            text = text[:SUMMARY_INPUT_CHARS] + TRUNCATED
        request = (
            f'Tool "{target["name"]}" was executed with input: {json.dumps(target["input"])}.\n'
            f"Result: {text}\n\nProvide a concise human-readable summary."
        )
        try:
            answer = self.ai.decide(
                tools.summarize_result(),
                instructions=[prompts.SUMMARIZE_RESULT],
                request=request,
                with_history=False,
            )
            summary = answer["summary"]
            self.save(
                {
                    **done,
                    "executionResult": {**done["executionResult"], "formattedResponse": summary},
                }
            )
        except Exception as error:
            # The error's kind only: its text may quote the AI's answer, made of the result.
            log.warning(
                "MCP tool result could not be summarized: %s",
                error.__class__.__name__,
                extra={"run_id": self.step.run_id, "step_index": self.step.step_index},
            )
