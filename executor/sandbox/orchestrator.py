"""An orchestrator (Forest server) speaking the protocol (§3, §4.9, §9) over a loopback socket.

Each run follows a script: a list of server step definitions. Without step ids they run in order
(what most tests need); with step ids the run follows each step's ``outgoing`` links, a condition
taking the branch of the option the executor reported (what a workflow definition file needs).
The orchestrator claims runs atomically, records every request, and chains the next step in its
``update-step`` answer. ``tests/fakes/orchestrator.py`` adds fault injection for the tests.
"""

from __future__ import annotations

import copy
import hmac
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

API = "/api/workflow-orchestrator"


@dataclass
class ScriptedRun:
    run_id: int
    steps: list[dict[str, Any]]  # server step definitions
    user_id: int = 7
    rendering_id: int = 3
    history: list[dict[str, Any]] = field(default_factory=list)
    claimed: bool = False
    finished: bool = False
    raw: dict[str, Any] | None = None  # a hand-made envelope served as is (malformed runs)
    collection_name: str = "customers"
    collection_id: str = "11"
    selected_record_id: str = "123"
    # The steps' ids, when the run follows ``outgoing`` links; None: ids ``step-<i>``, in order.
    step_ids: list[str] | None = None
    positions: list[int] = field(default_factory=list)  # history entry -> position in steps

    def envelope(self) -> dict[str, Any]:
        if self.raw is not None:
            return copy.deepcopy(self.raw)
        return {
            "id": self.run_id,
            "workflowId": "wf-1",
            "collectionId": self.collection_id,
            "collectionName": self.collection_name,
            "selectedRecordId": self.selected_record_id,
            "bpmnVersion": "1.0",
            "runState": "started",
            "triggerType": "manual",
            "createdAt": "2026-01-01T10:00:00.000Z",
            "updatedAt": "2026-01-01T10:05:00.000Z",
            "userId": self.user_id,
            "renderingId": self.rendering_id,
            "lockedAt": None,
            "userProfile": {
                "id": self.user_id,
                "email": "ada@example.com",
                "firstName": "Ada",
                "lastName": None,
                "team": "Operations",
                "renderingId": self.rendering_id,
                "role": "Admin",
                "permissionLevel": "admin",
                "tags": {"region": "EU"},
                "serverToken": f"server-token-{self.run_id}",
            },
            "workflowHistory": copy.deepcopy(self.history),
        }

    def open_step(self, position: int) -> None:
        """Append the step at ``position`` of the script to the history, not done."""
        if self.step_ids is None:
            step_id, index = f"step-{position}", position
        else:
            step_id, index = self.step_ids[position], len(self.history)
        self.history.append(
            {
                "stepName": step_id,
                "stepIndex": index,
                "done": False,
                "stepDefinition": copy.deepcopy(self.steps[position]),
            }
        )
        self.positions.append(position)

    def position_of(self, entry_number: int) -> int:
        """The script position of the ``entry_number``-th history entry."""
        if self.step_ids is None:
            return int(self.history[entry_number]["stepIndex"])
        return self.positions[entry_number]

    def successor(self, position: int, context: dict[str, Any]) -> int | None:
        """The position of the step that follows ``position`` given its outcome, None at the end."""
        if self.step_ids is None:
            return position + 1 if position + 1 < len(self.steps) else None
        if context.get("status") == "error":
            return None  # a failed step stops the run (the user retries it in the front)
        step = self.steps[position]
        links: list[dict[str, Any]] = step.get("outgoing") or []
        if step.get("type") == "condition":
            chosen = context.get("selectedOption")
            links = [o for o in links if chosen in (o.get("answer"), o.get("buttonText"))]
        target = links[0].get("stepId") if links else None
        return self.step_ids.index(target) if target in self.step_ids else None

    @property
    def available(self) -> bool:
        if self.raw is not None:
            return True
        return bool(self.history) and not self.history[-1]["done"]


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


class SandboxOrchestrator:
    """Start with :meth:`start` (or as a context manager); ``url`` is its base URL."""

    def __init__(
        self,
        *,
        env_secret: str,
        auto_chain: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        record_polls: bool = True,
    ) -> None:
        self.env_secret = env_secret
        self.auto_chain = auto_chain
        # Polls are most of the traffic: a long-lived sandbox does not keep them (tests count them).
        self.record_polls = record_polls
        self.runs: dict[str, ScriptedRun] = {}
        self.requests: list[RecordedRequest] = []
        self.access: dict[tuple[str, int], bool] = {}
        self.collection_schemas: dict[str, dict[str, Any]] = {}  # served by collection-schema
        # Served by mcp-server-configs-with-details (§3.3.7): server name → configuration.
        self.mcp_server_configs: dict[str, Any] = {}
        self.activity_logs: list[dict[str, Any]] = []  # audit entries, with their status
        self.approvals: dict[str, dict[str, Any]] = {}  # approval requests by id
        self._changed = threading.Condition()
        self._host = host
        self._server = make_server(host, port, self._wsgi, threaded=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="sandbox-orchestrator",
            daemon=True,
        )

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._server.port}"

    @property
    def serving(self) -> bool:
        """Whether :meth:`start` was called (and :meth:`stop` not yet)."""
        return self._thread.is_alive()

    def start(self) -> SandboxOrchestrator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def close(self) -> None:
        """Release the socket of an orchestrator that was never started."""
        self._server.server_close()

    def __enter__(self) -> SandboxOrchestrator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- scripting ------------------------------------------------------------------------------

    def add_run(
        self,
        run_id: int,
        steps: list[dict[str, Any]],
        *,
        user_id: int = 7,
        collection: str = "customers",
        record_id: str = "123",
        step_ids: list[str] | None = None,
    ) -> ScriptedRun:
        """Script a run whose first step is available at once."""
        run = ScriptedRun(
            run_id=run_id,
            steps=steps,
            user_id=user_id,
            collection_name=collection,
            selected_record_id=record_id,
            step_ids=step_ids,
        )
        schema = self.collection_schemas.get(collection)
        if schema is not None:
            run.collection_id = str(schema["collectionId"])
        run.open_step(0)
        with self._changed:
            self.runs[str(run_id)] = run
            self._changed.notify_all()
        return run

    def add_raw_run(self, envelope: dict[str, Any]) -> ScriptedRun:
        run = ScriptedRun(run_id=envelope.get("id", 0), steps=[], raw=envelope)
        with self._changed:
            self.runs[str(envelope.get("id"))] = run
        return run

    # --- observation ----------------------------------------------------------------------------

    def wait_until(self, predicate: Callable[[], bool], timeout: float | None = 10.0) -> bool:
        """Wait until ``predicate()`` holds, re-checked after each request handled."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout=timeout)

    def updates(self, run_id: int | None = None) -> list[dict[str, Any]]:
        """Bodies of the update-step requests received (for one run, or all)."""
        with self._changed:
            return [
                r.body
                for r in self.requests
                if r.path == f"{API}/update-step"
                and (run_id is None or (isinstance(r.body, dict) and r.body.get("runId") == run_id))
            ]

    def history(self, run_id: int) -> tuple[list[dict[str, Any]], bool, bool]:
        """A copy of a run's history, whether it is finished, and whether it is claimed."""
        with self._changed:
            run = self.runs[str(run_id)]
            return copy.deepcopy(run.history), run.finished, run.claimed

    def count(self, path_prefix: str) -> int:
        with self._changed:
            return sum(1 for r in self.requests if r.path.startswith(path_prefix))

    # --- protocol -------------------------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        response = self._handle(request)
        with self._changed:
            self._changed.notify_all()
        return response(environ, start_response)

    def _handle(self, request: Request) -> Response:
        body = request.get_json(silent=True)
        poll = request.path == f"{API}/pending-run"
        with self._changed:
            if self.record_polls or not poll:
                self.requests.append(
                    RecordedRequest(
                        request.method,
                        request.path,
                        dict(request.args),
                        dict(request.headers),
                        body,
                    )
                )
        early = self._intercept(request)
        if early is not None:
            return early
        if request.path.startswith(("/api/activity-logs-requests", "/api/action-approvals")):
            # Calls made on the user's behalf carry the run's server token, not the secret.
            if not request.headers.get("Authorization", "").startswith("Bearer server-token-"):
                return _json({"errors": [{"detail": "bad server token"}]}, 401)
        elif not hmac.compare_digest(
            request.headers.get("forest-secret-key", "").encode(), self.env_secret.encode()
        ):
            return _json({"errors": [{"detail": "bad secret"}]}, 401)
        return self._route(request, body)

    def _intercept(self, request: Request) -> Response | None:
        """A hook answering (or holding) a request before authentication; None lets it through."""
        return None

    def _route(self, request: Request, body: Any) -> Response:
        path = request.path
        if path.startswith("/api/activity-logs-requests"):
            return self._activity_log(request, body)
        if path.startswith("/api/action-approvals"):
            return self._approval(request, body)
        if request.method == "GET" and path.startswith(f"{API}/collection-schema/"):
            schema = self.collection_schemas.get(path.rsplit("/", 1)[1])
            if schema is None:
                return _json({"errors": [{"detail": "no such collection"}]}, 404)
            return _json(schema)
        if request.method == "GET" and path == f"{API}/pending-run":
            return _json(self._pending())
        if request.method == "GET" and path.startswith(f"{API}/available-run/"):
            return _json(self._claim(path.rsplit("/", 1)[1]))
        if request.method == "POST" and path == f"{API}/update-step":
            return _json(self._update_answer(body))
        if (
            request.method == "GET"
            and path.startswith(f"{API}/run/")
            and path.endswith("/access-check")
        ):
            run_id = path.split("/")[-2]
            user_id = int(request.args.get("userId", "0"))
            return _json(self._access_answer(run_id, user_id))
        if request.method == "POST" and path == f"{API}/executor-metadata":
            return _json({})
        if request.method == "GET" and path == "/liana/mcp-server-configs-with-details":
            return _json(self.mcp_server_configs)
        return self._unrouted(request)

    def _unrouted(self, request: Request) -> Response:
        return _json({"errors": [{"detail": "not found"}]}, 404)

    def _update_answer(self, body: Any) -> Any:
        return self._update(body)

    def _access_answer(self, run_id: str, user_id: int) -> Any:
        return {"hasAccess": self._has_access(run_id, user_id)}

    def _activity_log(self, request: Request, body: Any) -> Response:
        with self._changed:
            if request.method == "POST":
                entry_id = str(len(self.activity_logs) + 1)
                self.activity_logs.append(
                    {
                        **body["data"]["attributes"],
                        "id": entry_id,
                        "relationships": body["data"]["relationships"],
                    }
                )
                return _json({"data": {"id": entry_id, "attributes": {"index": "idx"}}})
            entry_id = request.path.split("/")[-2]
            entry = next(e for e in self.activity_logs if e["id"] == entry_id)
            entry["status"] = body["status"]
            return _json({})

    def _approval(self, request: Request, body: Any) -> Response:
        with self._changed:
            if request.path.endswith("/comments"):
                approval_id = request.path.split("/")[-2]
                self.approvals[approval_id]["comment"] = body["data"]["attributes"]["comment"]
                return _json({})
            approval_id = str(880 + len(self.approvals) + 1)
            self.approvals[approval_id] = {
                **body["data"]["attributes"],
                "rendering": request.headers.get("forest-rendering-id"),
            }
            return _json({"data": {"id": approval_id, "type": "action-approvals"}})

    def _pending(self) -> list[dict[str, Any]]:
        with self._changed:
            ready = [
                r for r in self.runs.values() if r.available and not r.claimed and not _awaiting(r)
            ]
            for run in ready:
                run.claimed = True  # pending-run locks what it hands out
            return [run.envelope() for run in ready]

    def _claim(self, run_id: str) -> dict[str, Any] | None:
        with self._changed:
            run = self.runs.get(run_id)
            if run is None or run.claimed or not run.available:
                return None
            run.claimed = True
            return run.envelope()

    def _update(self, body: Any) -> dict[str, Any] | None:
        with self._changed:
            run = self.runs.get(str(body["runId"]))
            if run is None or run.raw is not None:
                if run is not None:
                    run.finished = True
                    run.raw = None
                    run.claimed = False
                    run.history = [{"done": True}]
                return None
            update = body["stepUpdate"]
            number, entry = next(
                (i, e) for i, e in enumerate(run.history) if e["stepIndex"] == update["stepIndex"]
            )
            entry["done"] = update["attributes"]["done"]
            entry["context"] = update["attributes"]["context"]
            run.claimed = False
            if not entry["done"]:
                return None  # awaiting input: the run waits for a trigger
            following = run.successor(run.position_of(number), entry["context"])
            if following is None:
                run.finished = True
                return None
            run.open_step(following)
            if not self.auto_chain:
                return None
            run.claimed = True
            return run.envelope()

    def _has_access(self, run_id: str, user_id: int) -> bool:
        with self._changed:
            if (run_id, user_id) in self.access:
                return self.access[(run_id, user_id)]
            run = self.runs.get(run_id)
            return run is not None and run.user_id == user_id


def _awaiting(run: ScriptedRun) -> bool:
    if run.raw is not None or not run.history:
        return False
    context = run.history[-1].get("context") or {}
    return context.get("status") == "awaiting-input"


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json")
