"""A fake orchestrator (Forest server) speaking the protocol over a real loopback socket.

Each run follows a scripted workflow: a list of server step definitions executed in order. The
fake claims runs atomically, records every request, chains the next step in its ``update-step``
answer, and can be told to fail (status codes, delays, a freeze) to test the executor's resilience.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

API = "/api/workflow-orchestrator"
ENV_SECRET = "ab" * 32


def guidance_step(execution_type: str = "manual", prompt: str = "Write a note") -> dict[str, Any]:
    return {
        "type": "task",
        "taskType": "guideline",
        "title": "Note",
        "prompt": prompt,
        "executionType": execution_type,
        "automaticCompletion": False,
        "outgoing": [{"stepId": "next", "buttonText": None}],
    }


def condition_step(
    options: tuple[str, ...] = ("Yes", "No"), execution_type: str = "manual"
) -> dict[str, Any]:
    return {
        "type": "condition",
        "title": "Decide",
        "prompt": "Is the customer a VIP?",
        "executionType": execution_type,
        "automaticCompletion": False,
        "outgoing": [{"stepId": f"to-{o}", "buttonText": None, "answer": o} for o in options],
    }


def record_step(
    task_type: str = "get-data",
    execution_type: str = "fully-automated",
    *,
    title: str = "Record step",
    **pre_recorded_args: Any,
) -> dict[str, Any]:
    """A record step (get-data, update-data, trigger-action, load-related-record)."""
    step: dict[str, Any] = {
        "type": "task",
        "taskType": task_type,
        "title": title,
        "prompt": "Do something with the record",
        "executionType": execution_type,
        "automaticCompletion": False,
        "outgoing": [{"stepId": "next", "buttonText": None}],
    }
    if pre_recorded_args:
        step["preRecordedArgs"] = pre_recorded_args
    return step


@dataclass
class ScriptedRun:
    run_id: int
    steps: list[dict[str, Any]]  # server step definitions, in execution order
    user_id: int = 7
    rendering_id: int = 3
    history: list[dict[str, Any]] = field(default_factory=list)
    claimed: bool = False
    finished: bool = False
    raw: dict[str, Any] | None = None  # a hand-made envelope served as is (malformed runs)
    collection_name: str = "customers"
    selected_record_id: str = "123"

    def envelope(self) -> dict[str, Any]:
        if self.raw is not None:
            return copy.deepcopy(self.raw)
        return {
            "id": self.run_id,
            "workflowId": "wf-1",
            "collectionId": "11",
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

    def open_step(self, index: int) -> None:
        self.history.append(
            {
                "stepName": f"step-{index}",
                "stepIndex": index,
                "done": False,
                "stepDefinition": copy.deepcopy(self.steps[index]),
            }
        )

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


class FakeOrchestrator:
    """Start with :meth:`start` (or as a context manager); ``url`` is its base URL."""

    def __init__(self, *, env_secret: str = ENV_SECRET, auto_chain: bool = True) -> None:
        self.env_secret = env_secret
        self.auto_chain = auto_chain
        self.runs: dict[str, ScriptedRun] = {}
        self.requests: list[RecordedRequest] = []
        self.access: dict[tuple[str, int], bool] = {}
        self._faults: list[tuple[str, int, int]] = []  # (path prefix, status, remaining)
        self._delays: dict[str, float] = {}
        # Replaces the update-step answer when set (e.g. to hand back a bogus next step).
        self.update_answer: Callable[[dict[str, Any], Any], Any] | None = None
        self.access_answer: Any = None  # replaces the access-check body when not None
        self.collection_schemas: dict[str, dict[str, Any]] = {}  # served by collection-schema
        self.mcp_server_configs: dict[str, Any] = {}  # served by mcp-server-configs-with-details
        self.agent_url = "http://127.0.0.1:9"  # the agent the executor under test talks to
        # Answers a real agent's own Forest-server calls (see tests/fakes/python_agent.py).
        self.agent_side: Any = None
        self.model: Any = None  # a FakeModel answering the AI proxy (tests/fakes/model.py)
        self.activity_logs: list[dict[str, Any]] = []  # audit entries, with their status
        self.approvals: dict[str, dict[str, Any]] = {}  # approval requests by id
        self.frozen = threading.Event()
        self.frozen.set()  # set = answering; clear() freezes every request until set() again
        self._changed = threading.Condition()
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"

    def start(self) -> FakeOrchestrator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.frozen.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeOrchestrator:
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
    ) -> ScriptedRun:
        run = ScriptedRun(
            run_id=run_id,
            steps=steps,
            user_id=user_id,
            collection_name=collection,
            selected_record_id=record_id,
        )
        run.open_step(0)
        with self._changed:
            self.runs[str(run_id)] = run
        return run

    def add_raw_run(self, envelope: dict[str, Any]) -> ScriptedRun:
        run = ScriptedRun(run_id=envelope.get("id", 0), steps=[], raw=envelope)
        with self._changed:
            self.runs[str(envelope.get("id"))] = run
        return run

    def fail(self, path_prefix: str, status: int, times: int = 1) -> None:
        """Answer ``status`` to the next ``times`` requests whose path starts with the prefix."""
        with self._changed:
            self._faults.append((path_prefix, status, times))

    def delay(self, path_prefix: str, seconds: float) -> None:
        self._delays[path_prefix] = seconds

    # --- observation ----------------------------------------------------------------------------

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Wait until ``predicate()`` holds, re-checked after each request the fake handles."""
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
        with self._changed:
            self.requests.append(
                RecordedRequest(
                    request.method, request.path, dict(request.args), dict(request.headers), body
                )
            )
        self.frozen.wait()
        for prefix, seconds in list(self._delays.items()):
            if request.path.startswith(prefix):
                time.sleep(seconds)  # simulates a slow server, not a test synchronisation
        path = request.path
        if path.startswith(("/api/activity-logs-requests", "/api/action-approvals")):
            # Calls made on the user's behalf carry the run's server token, not the secret.
            if not request.headers.get("Authorization", "").startswith("Bearer server-token-"):
                return _json({"errors": [{"detail": "bad server token"}]}, 401)
        elif request.headers.get("forest-secret-key") != self.env_secret:
            return _json({"errors": [{"detail": "bad secret"}]}, 401)
        fault = self._take_fault(path)
        if fault is not None:
            return _json({"errors": [{"detail": "injected failure"}]}, fault)
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
            answer = self._update(body)
            if self.update_answer is not None:
                answer = self.update_answer(body, answer)
            return _json(answer)
        if (
            request.method == "GET"
            and path.startswith(f"{API}/run/")
            and path.endswith("/access-check")
        ):
            if self.access_answer is not None:
                return _json(self.access_answer)
            run_id = path.split("/")[-2]
            user_id = int(request.args.get("userId", "0"))
            return _json({"hasAccess": self._has_access(run_id, user_id)})
        if request.method == "POST" and path == f"{API}/executor-metadata":
            return _json({})
        if request.method == "GET" and path == "/liana/mcp-server-configs-with-details":
            return _json(self.mcp_server_configs)
        if self.model is not None:  # the Forest server's AI proxy
            answer = self.model.handle(request)
            if answer is not None:
                return answer
        if self.agent_side is not None:  # what a real agent asks the Forest server
            answer = self.agent_side.handle(request)
            if answer is not None:
                return answer
        return _json({"errors": [{"detail": "not found"}]}, 404)

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

    def _take_fault(self, path: str) -> int | None:
        with self._changed:
            for i, (prefix, status, remaining) in enumerate(self._faults):
                if path.startswith(prefix):
                    if remaining <= 1:
                        del self._faults[i]
                    else:
                        self._faults[i] = (prefix, status, remaining - 1)
                    return status
        return None

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
            entry = next(e for e in run.history if e["stepIndex"] == update["stepIndex"])
            entry["done"] = update["attributes"]["done"]
            entry["context"] = update["attributes"]["context"]
            run.claimed = False
            if not entry["done"]:
                return None  # awaiting input: the run waits for a trigger
            next_index = update["stepIndex"] + 1
            if next_index >= len(run.steps):
                run.finished = True
                return None
            run.open_step(next_index)
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
