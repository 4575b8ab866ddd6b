"""HTTP adapter to the orchestrator (Forest server), protocol §3."""

from __future__ import annotations

import json as _json
import logging
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_chain,
    wait_fixed,
)

from executor.domain.outcomes import StepOutcome, StepStatus
from executor.domain.runs import Dispatch, MalformedRun, PendingRuns
from executor.domain.steps import OutcomeType
from executor.errors import (
    ExecutorError,
    MalformedRunError,
    StepDefinitionShapeError,
    WorkflowPortError,
)
from executor.ports import WorkflowPort
from executor.schemas.orchestrator import malformed_run, map_run, update_step_body

log = logging.getLogger(__name__)

API = "/api/workflow-orchestrator"
REQUEST_TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
_TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

T = TypeVar("T")


def _is_transient(error: BaseException) -> bool:
    return isinstance(error, WorkflowPortError) and error.status in _TRANSIENT_STATUSES


class OrchestratorClient(WorkflowPort):
    """Talks to ``{FOREST_SERVER_URL}/api/workflow-orchestrator`` with the environment secret."""

    def __init__(
        self,
        base_url: str,
        env_secret: str,
        *,
        timeout_s: float = REQUEST_TIMEOUT_S,
        retry_delays_s: tuple[float, ...] = (0.1, 0.5, 2.0),
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"forest-secret-key": env_secret, "content-type": "application/json"},
            timeout=timeout_s,
            transport=transport,
        )
        self._retry_delays_s = retry_delays_s

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

    def close(self) -> None:
        self._client.close()

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
        def attempt() -> Any:
            return self._send(method, path, json=json, params=params)

        if not retried:
            return attempt()
        return self._with_retries(attempt, operation)

    def _with_retries(self, attempt: Callable[[], T], operation: str) -> T:
        def warn(state: RetryCallState) -> None:
            log.warning('"%s" failed, retrying', operation)

        retrying = Retrying(
            stop=stop_after_attempt(len(self._retry_delays_s) + 1),
            wait=wait_chain(*(wait_fixed(d) for d in self._retry_delays_s)),
            retry=retry_if_exception(_is_transient),
            before_sleep=warn,
            reraise=True,
        )
        return retrying(attempt)

    def _send(self, method: str, path: str, *, json: Any, params: dict[str, str] | None) -> Any:
        try:
            with self._client.stream(method, path, json=json, params=params) as response:
                body = _read_bounded(response)
        except httpx.TimeoutException as error:
            raise WorkflowPortError(f"{method} {path} timed out", status=408) from error
        except httpx.HTTPError as error:
            raise WorkflowPortError(f"{method} {path} failed: {error}") from error
        if not response.is_success:
            raise WorkflowPortError(
                f"{method} {path} answered {response.status_code}: {_server_detail(body)}",
                status=response.status_code,
            )
        if not body.strip():
            return None
        try:
            return _json.loads(body)
        except ValueError as error:
            raise WorkflowPortError(f"{method} {path} answered invalid JSON") from error


def _read_bounded(response: httpx.Response) -> bytes:
    """Read the body, refusing one larger than any sane orchestrator answer."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise WorkflowPortError(
                f"{response.request.method} {response.request.url.path} answered more than "
                f"{MAX_RESPONSE_BYTES} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _server_detail(body: bytes) -> str:
    """The orchestrator's own message (``errors[0].detail``) when it sent one."""
    try:
        payload = _json.loads(body)
        detail = payload["errors"][0]["detail"]
        return str(detail)[:200]
    except Exception:
        return "(no detail)"
