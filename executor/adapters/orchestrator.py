"""HTTP adapter to the orchestrator (Forest server), protocol §3."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from marshmallow import ValidationError

from executor.adapters.http import (
    PROTOCOL_RETRY_DELAYS_S,
    TRANSIENT_STATUSES,
    HttpError,
    JsonHttpClient,
)
from executor.domain.collections import CollectionSchema
from executor.domain.outcomes import StepOutcome, StepStatus
from executor.domain.runs import Dispatch, MalformedRun, PendingRuns
from executor.domain.steps import OutcomeType
from executor.errors import (
    ExecutorError,
    MalformedRunError,
    StepDefinitionShapeError,
    WorkflowPortError,
)
from executor.mcp.configs import McpServerConfig
from executor.ports import WorkflowPort
from executor.schemas.collection import map_collection_schema
from executor.schemas.mcp import parse_server_configs
from executor.schemas.orchestrator import malformed_run, map_run, update_step_body

log = logging.getLogger(__name__)

API = "/api/workflow-orchestrator"
MCP_CONFIGS_PATH = "/liana/mcp-server-configs-with-details"
REQUEST_TIMEOUT_S = 10.0


class OrchestratorClient(WorkflowPort):
    """Talks to ``{FOREST_SERVER_URL}/api/workflow-orchestrator`` with the environment secret."""

    def __init__(
        self,
        base_url: str,
        env_secret: str,
        *,
        timeout_s: float = REQUEST_TIMEOUT_S,
        retry_delays_s: tuple[float, ...] = PROTOCOL_RETRY_DELAYS_S,
    ) -> None:
        self._http = JsonHttpClient(
            base_url,
            headers={"forest-secret-key": env_secret},
            timeout_s=timeout_s,
            retry_delays_s=retry_delays_s,
        )

    # --- WorkflowPort ---------------------------------------------------------------------------

    def fetch_pending_runs(self) -> PendingRuns:
        payload = self._request("GET", f"{API}/pending-run", operation="fetch pending runs")
        if not isinstance(payload, list):
            raise WorkflowPortError("pending-run did not answer a JSON array")
        dispatches: list[Dispatch] = []
        malformed: list[MalformedRun] = []
        for envelope in payload:
            try:
                dispatch = map_run(envelope)
            except StepDefinitionShapeError as error:
                log.warning("Pending run skipped — invalid step definition: %s", error)
                continue
            except ExecutorError as error:
                if isinstance(envelope, dict):
                    malformed.append(malformed_run(envelope, error))
                else:
                    log.error("Failed to hydrate pending run — unexpected error: %s", error)
                continue
            except Exception:
                log.exception("Failed to hydrate pending run — unexpected error")
                continue
            if dispatch is not None:
                dispatches.append(dispatch)
        return PendingRuns(tuple(dispatches), tuple(malformed), fetched=len(payload))

    def claim_run(self, run_id: str) -> Dispatch | None:
        payload = self._request(
            "GET", f"{API}/available-run/{quote(run_id, safe='')}", operation="claim run"
        )
        return self._map_claimed(payload)

    def report_outcome(self, run_id: str, outcome: StepOutcome) -> Dispatch | None:
        payload = self._request(
            "POST",
            f"{API}/update-step",
            json=update_step_body(run_id, outcome),
            operation="update-step",
            retried=True,
        )
        if payload is None:
            return None
        try:
            return map_run(payload)
        except Exception as error:  # the outcome itself was recorded
            log.error(
                "Failed to parse chained next step from /update-step response: %s",
                error,
                extra={"run_id": run_id},
            )
            return None

    def report_malformed_run(self, run: MalformedRun) -> None:
        if run.step_id is None or run.step_index is None or not run.run_id:
            log.error(
                "Malformed run cannot be reported — no available step identified: %s",
                run.technical_message,
                extra={"run_id": run.run_id},
            )
            return
        outcome = StepOutcome(
            type=OutcomeType.RECORD,
            step_id=run.step_id,
            step_index=run.step_index,
            status=StepStatus.ERROR,
            error=run.user_message,
        )
        self._request(
            "POST",
            f"{API}/update-step",
            json=update_step_body(run.run_id, outcome),
            operation="update-step",
            retried=True,
        )

    def has_access(self, run_id: str, user_id: int) -> bool:
        payload = self._request(
            "GET",
            f"{API}/run/{quote(run_id, safe='')}/access-check",
            params={"userId": str(user_id)},
            operation="access check",
        )
        return isinstance(payload, dict) and payload.get("hasAccess") is True

    def report_executor_metadata(self, version: str) -> None:
        self._request(
            "POST",
            f"{API}/executor-metadata",
            json={"version": version},
            operation="executor-metadata",
            retried=True,
        )

    def get_collection_schema(self, run_id: str, collection_name: str) -> CollectionSchema:
        payload = self._request(
            "GET",
            f"{API}/collection-schema/{quote(collection_name, safe='')}",
            params={"runId": run_id},
            operation="collection-schema",
            retried=True,
        )
        return map_collection_schema(payload)  # DomainValidation when it breaks the rules

    def close(self) -> None:
        self._http.close()

    # --- MCP server configurations (protocol §3.3.7; what MCP tool loading asks for) ------------

    def mcp_server_configs(self) -> list[McpServerConfig]:
        """The usable remote MCP servers; raises :class:`WorkflowPortError`.

        Not cached: a server added, removed or re-pointed in Forest Admin applies to the next step.
        """
        payload = self._request(
            "GET", MCP_CONFIGS_PATH, operation="mcp-server-configs-with-details", retried=True
        )
        try:
            return parse_server_configs({} if payload is None else payload)
        except ValidationError as error:
            raise WorkflowPortError(f"Invalid MCP server configurations: {error}") from error

    # --- transport ------------------------------------------------------------------------------

    def _map_claimed(self, payload: Any) -> Dispatch | None:
        if payload is None:
            return None
        try:
            return map_run(payload)
        except StepDefinitionShapeError:
            raise
        except ExecutorError as error:
            if not isinstance(payload, dict):
                raise
            run = malformed_run(payload, error)
            raise MalformedRunError(run, error.user_message, str(error)) from error

    def _request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        retried: bool = False,
        json: Any = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        try:
            return self._http.request(
                method,
                path,
                operation=operation,
                json_body=json,
                params=params,
                retry_on=TRANSIENT_STATUSES if retried else (),
            )
        except HttpError as error:
            raise WorkflowPortError(str(error), status=error.status) from error
