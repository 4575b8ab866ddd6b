"""Forest server calls made on the run user's behalf with the run's server token: the audit
trail (protocol §9) and approval requests (protocol §4.9)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from executor.adapters.http import (
    PROTOCOL_RETRY_DELAYS_S,
    TRANSIENT_STATUSES,
    HttpError,
    JsonHttpClient,
)
from executor.domain.records import ActivityLogEntry, ActivityLogHandle
from executor.errors import ActivityLogCreation, ApprovalRequestCreation
from executor.ports import ActivityLogPort, ApprovalPort

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 10.0
APPLICATION_SOURCE = {"Forest-Application-Source": "WorkflowExecutor"}
# Marks not yet sent; past this many, a mark is sent in the caller's thread rather than queued,
# so a Forest server that stalls slows steps down instead of piling up work without bound.
MAX_PENDING_MARKS = 1000


def _bearer(server_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {server_token}"}


class ActivityLogClient(ActivityLogPort):
    def __init__(
        self,
        forest_server_url: str,
        *,
        timeout_s: float = REQUEST_TIMEOUT_S,
        retry_delays_s: tuple[float, ...] = PROTOCOL_RETRY_DELAYS_S,
    ) -> None:
        self._http = JsonHttpClient(
            forest_server_url,
            headers=APPLICATION_SOURCE,
            timeout_s=timeout_s,
            retry_delays_s=retry_delays_s,
        )
        self._marks = ThreadPoolExecutor(max_workers=2, thread_name_prefix="executor-audit")
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()

    def create(self, server_token: str, entry: ActivityLogEntry) -> ActivityLogHandle:
        attributes: dict[str, Any] = {
            "type": entry.type,
            "action": entry.action.value,
            "status": "pending",
            "records": list(entry.records),
        }
        if entry.label is not None:
            attributes["label"] = entry.label
        collection = (
            {"data": {"id": entry.collection_id, "type": "collections"}}
            if entry.collection_id
            else {"data": None}
        )
        body = {
            "data": {
                "id": 1,
                "type": "activity-logs-requests",
                "attributes": attributes,
                "relationships": {
                    "rendering": {"data": {"id": str(entry.rendering_id), "type": "renderings"}},
                    "collection": collection,
                },
            }
        }
        try:
            answer = self._http.request(
                "POST",
                "/api/activity-logs-requests",
                operation="create activity log",
                json_body=body,
                headers=_bearer(server_token),
                retry_on=TRANSIENT_STATUSES,
            )
            data = answer["data"]
            return ActivityLogHandle(id=str(data["id"]), index=str(data["attributes"]["index"]))
        except (HttpError, KeyError, TypeError) as error:
            raise ActivityLogCreation(f"Activity log creation failed: {error}") from error

    def mark(self, server_token: str, handle: ActivityLogHandle, *, succeeded: bool) -> None:
        with self._lock:
            queue_it = len(self._pending) < MAX_PENDING_MARKS
            if queue_it:
                future = self._marks.submit(self._send_mark, server_token, handle, succeeded)
                self._pending.add(future)
        if queue_it:
            # Outside the lock: a mark already over runs _forget at once, in this thread.
            future.add_done_callback(self._forget)
        else:
            self._send_mark(server_token, handle, succeeded)

    def flush(self, timeout: float) -> bool:
        with self._lock:
            pending = set(self._pending)
        if not pending:
            return True
        _, not_done = wait(pending, timeout=timeout)
        if not_done:
            log.error("Activity log status updates still pending", extra={"count": len(not_done)})
        return not not_done

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _send_mark(self, server_token: str, handle: ActivityLogHandle, succeeded: bool) -> None:
        status = "completed" if succeeded else "failed"
        try:
            self._http.request(
                "PATCH",
                f"/api/activity-logs-requests/{handle.index}/{handle.id}/status",
                operation="update activity log status",
                json_body={"status": status},
                headers=_bearer(server_token),
                retry_on=TRANSIENT_STATUSES | {404},  # the entry may not be visible yet
            )
        except HttpError as error:
            log.error(
                "Activity log status update failed: %s",
                error,
                extra={"activity_log_id": handle.id, "status": status},
            )


class ApprovalClient(ApprovalPort):
    def __init__(
        self,
        forest_server_url: str,
        *,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self._http = JsonHttpClient(forest_server_url, timeout_s=timeout_s)

    def request_approval(
        self,
        server_token: str,
        rendering_id: int,
        *,
        action_name: str,
        collection_name: str,
        record_ids: Sequence[str],
        inputs: Sequence[Mapping[str, Any]],
        message: str | None,
    ) -> str | None:
        headers = {**_bearer(server_token), "forest-rendering-id": str(rendering_id)}
        body = {
            "data": {
                "type": "action-approvals",
                "attributes": {
                    "status": None,
                    "action_name": action_name,
                    "collection_name": collection_name,
                    "record_ids": list(record_ids),
                    "inputs": [dict(i) for i in inputs],
                },
            }
        }
        try:
            answer = self._http.request(
                "POST",
                "/api/action-approvals",
                operation="request approval",
                json_body=body,
                headers=headers,
            )
        except HttpError as error:
            raise ApprovalRequestCreation(f"Approval request failed: {error}") from error
        data = answer.get("data") if isinstance(answer, Mapping) else None
        approval_id = data.get("id") if isinstance(data, Mapping) else None
        if approval_id is None:
            return None
        approval_id = str(approval_id)
        if message:
            try:
                self._http.request(
                    "POST",
                    f"/api/action-approvals/{approval_id}/comments",
                    operation="comment approval",
                    json_body={"data": {"attributes": {"comment": message}}},
                    headers=headers,
                )
            except HttpError as error:  # best effort: the request itself exists
                log.warning("Could not comment the approval request: %s", error)
        return approval_id
