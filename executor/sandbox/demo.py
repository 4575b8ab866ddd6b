"""``workflow-executor demo``: run a workflow end to end in the sandbox, in the terminal.

The demo starts the sandbox (:mod:`executor.sandbox.stack`), scripts one run of a workflow
definition on the orchestrator, and follows it: it prints each step as the orchestrator hands it
out and its outcome as the executor reports it, with what the executor keeps about it (read from
``GET /runs/<id>``, the executor's own API). A step waiting for the user is answered from the
terminal or by anyone with the printed ``curl``; the demo sends the terminal's answer through the
same ``POST /runs/<id>/trigger``. Without a terminal (``--no-input``, or stdin not a TTY) the
definition's ``demoAnswer`` (or a default) answers. Then everything stays up until Ctrl-C.
"""

from __future__ import annotations

import json
import queue
import shlex
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from executor.errors import ExecutorError
from executor.logs import configure_logging
from executor.sandbox.definitions import (
    DefinitionError,
    StepDefinition,
    WorkflowDefinition,
    load_definition,
    server_steps,
)
from executor.sandbox.loopback import call
from executor.sandbox.stack import USER_ID, Stack, StackOptions

RUN_ID = 1
SETTLE_TIMEOUT_S = 10.0  # how long a paused run may take to be let go of
WAKE_UP_S = 0.25  # how often a wait re-checks for Ctrl-C or an answer given elsewhere


@dataclass(frozen=True)
class DemoOptions:
    workflow: Path | None = None  # None: the sample shipped with the package
    port: int = 3400
    data_dir: Path = Path("sandbox-data")
    interactive: bool = True  # False: answer every waiting step automatically
    exit_when_done: bool = False
    log_level: str | None = None  # configure the process's logging (the CLI); None: leave it


def run_demo(
    options: DemoOptions, *, out: TextIO | None = None, stdin: TextIO | None = None
) -> int:
    """Run the demo; 0 when it ran (whatever the workflow's outcome), 1 when it could not start."""
    out = out or sys.stdout
    stdin = stdin or sys.stdin
    try:
        definition = load_definition(options.workflow)
    except DefinitionError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    if options.log_level is not None:
        configure_logging(options.log_level, "text")
    stop = threading.Event()
    _stop_on_signals(stop)
    try:
        stack = Stack(StackOptions(data_dir=options.data_dir, port=options.port))
    except (ExecutorError, OSError) as error:
        print(f"Error: the sandbox could not start: {error}", file=sys.stderr)
        return 1
    problem = _check_start_record(stack, definition)
    if problem is None:
        try:
            stack.start()
        except (ExecutorError, OSError) as error:
            hint = " (--port 0 picks a free port)" if options.port else ""
            problem = f"the sandbox could not start: {error}{hint}"
    if problem is not None:
        print(f"Error: {problem}", file=sys.stderr)
        stack.stop()
        return 1
    try:
        console = Console(out)
        answers = Answers(console, stdin, interactive=options.interactive, stop=stop)
        Demo(stack, definition, console, answers, stop).run(stays_up=not options.exit_when_done)
        if not options.exit_when_done:
            stop.wait()
        console.line("Stopping…")
    finally:
        stack.stop()
    return 0


def _stop_on_signals(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # embedded (tests): whoever called us stops us
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())


def _check_start_record(stack: Stack, definition: WorkflowDefinition) -> str | None:
    if definition.collection not in stack.agent.models:
        names = ", ".join(sorted(stack.agent.models))
        return f"the sandbox agent has no collection {definition.collection!r} (it has {names})"
    if stack.agent.record(definition.collection, definition.record_id) is None:
        return (
            f"no record {definition.record_id!r} in {definition.collection!r} "
            f"(database: {stack.database})"
        )
    return None


class Console:
    """What the demo prints: flushed lines, so a pipe reads them as they happen."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def line(self, text: str = "", indent: int = 0) -> None:
        print(" " * indent + text, file=self._out, flush=True)

    def prompt(self, text: str) -> None:
        print(text, end="", file=self._out, flush=True)


class Answers:
    """Answers a waiting step: from the terminal, or automatically."""

    def __init__(
        self, console: Console, stdin: TextIO, *, interactive: bool, stop: threading.Event
    ) -> None:
        self._console = console
        self._stdin = stdin
        self._interactive = interactive and _is_terminal(stdin)
        self._stop = stop
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader: threading.Thread | None = None

    @property
    def interactive(self) -> bool:
        return self._interactive

    def ask(
        self,
        question: str,
        parse: Callable[[str], Any],
        answered_elsewhere: Callable[[], bool],
    ) -> Any:
        """Ask until ``parse`` accepts a line (it raises ValueError otherwise); None when the step
        was answered elsewhere, the demo is stopping, or the terminal closed."""
        self._start_reader()
        while True:
            self._console.prompt(question)
            line = self._next_line(answered_elsewhere)
            if line is None:
                self._console.line()
                return None
            try:
                return parse(line.strip())
            except ValueError as error:
                self._console.line(f"      {error}")

    def _next_line(self, answered_elsewhere: Callable[[], bool]) -> str | None:
        while not self._stop.is_set():
            try:
                line = self._lines.get(timeout=WAKE_UP_S)
            except queue.Empty:
                if answered_elsewhere():
                    return None
                continue
            if line is None:  # end of input: nobody is left to answer
                self._interactive = False
            return line
        return None

    def _start_reader(self) -> None:
        if self._reader is not None:
            return

        def read() -> None:
            for line in self._stdin:
                self._lines.put(line)
            self._lines.put(None)

        # A daemon: a thread blocked reading the terminal cannot be stopped, only abandoned.
        self._reader = threading.Thread(target=read, name="demo-terminal", daemon=True)
        self._reader.start()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Demo:
    """Follows one run of ``definition`` and answers its waiting steps."""

    def __init__(
        self,
        stack: Stack,
        definition: WorkflowDefinition,
        console: Console,
        answers: Answers,
        stop: threading.Event,
    ) -> None:
        self.stack = stack
        self.definition = definition
        self.console = console
        self.answers = answers
        self.stop = stop
        self.token = stack.user_token()
        self.announced = 0  # history entries printed
        self.reported = 0  # update-step bodies handled
        self.outcomes: list[str] = []  # status of each step's final outcome

    # --- the run ---------------------------------------------------------------------------------

    def run(self, *, stays_up: bool = True) -> None:
        self._print_header()
        orchestrator = self.stack.orchestrator
        orchestrator.add_run(
            RUN_ID,
            server_steps(self.definition),
            user_id=USER_ID,
            collection=self.definition.collection,
            record_id=self.definition.record_id,
            step_ids=self.definition.step_ids,
        )
        while not self.stop.is_set():
            orchestrator.wait_until(self._news, timeout=WAKE_UP_S)
            history, finished, _ = orchestrator.history(RUN_ID)
            updates = orchestrator.updates(RUN_ID)
            for update in updates[self.reported :]:
                self.reported += 1
                index = update["stepUpdate"]["stepIndex"]
                self._announce(history, up_to=index)
                self._report(history, index, update["stepUpdate"]["attributes"]["context"])
            self._announce(history, up_to=None)
            if finished and self.reported == len(orchestrator.updates(RUN_ID)):
                break
        self._print_footer(stays_up)

    def _news(self) -> bool:
        history, _, _ = self.stack.orchestrator.history(RUN_ID)
        return (
            self.stop.is_set()
            or len(history) > self.announced
            or len(self.stack.orchestrator.updates(RUN_ID)) > self.reported
        )

    def _announce(self, history: list[dict[str, Any]], up_to: int | None) -> None:
        while self.announced < len(history) and (
            up_to is None or history[self.announced]["stepIndex"] <= up_to
        ):
            entry = history[self.announced]
            step = self.definition.step(entry["stepName"])
            self.announced += 1
            self.console.line()
            self.console.line(
                f"[{entry['stepIndex'] + 1}] {step.label}  ({step.type}, {step.execution_type})"
            )

    def _report(self, history: list[dict[str, Any]], index: int, context: dict[str, Any]) -> None:
        entry = next(e for e in history if e["stepIndex"] == index)
        step = self.definition.step(entry["stepName"])
        status = context.get("status")
        stored = self._stored_entry(index)
        if status == "awaiting-input":
            self.console.line("⏸  waiting for you", indent=4)
            self._answer(step, index, stored)
            return
        self.outcomes.append(str(status))
        if status == "error":
            self.console.line(f"✗  error: {context.get('error')}", indent=4)
            return
        self.console.line(f"✓  success{_details(step, stored, context)}", indent=4)

    # --- answering ------------------------------------------------------------------------------

    def _answer(self, step: StepDefinition, index: int, stored: dict[str, Any] | None) -> None:
        question = _question(step, stored)
        self.console.line(question.text, indent=4)
        self.console.line("Answer here, or from another terminal:", indent=4)
        self.console.line(self._trigger_curl(question.example), indent=6)
        answer: Any = None
        if self.answers.interactive:
            answer = self.answers.ask(
                f"    {question.prompt} ", question.parse, lambda: self._answered_elsewhere(index)
            )
        if self.stop.is_set():
            return  # Ctrl-C while asking: leave the step waiting
        if answer is None and self._answered_elsewhere(index):
            self.console.line("(answered elsewhere)", indent=4)
            return
        if answer is None:
            answer = step.demo_answer if step.demo_answer is not None else question.example
            self.console.line(f"(answered automatically: {json.dumps(answer)})", indent=4)
        if step.type == "trigger-action" and answer.get("userConfirmed"):
            answer = self._run_action_as_the_front(stored)
        # The executor reports the pause before its worker lets go of the run: a trigger sent in
        # between would be refused as already running.
        self.stack.runner.in_flight.wait_settled([str(RUN_ID)], timeout=SETTLE_TIMEOUT_S)
        response = call(
            "POST",
            f"{self.stack.executor_url}/runs/{RUN_ID}/trigger",
            token=self.token,
            body={"pendingData": answer},
        )
        if response.status != 200:
            self.console.line(f"(the trigger answered {response.status}: {response.text})", 4)

    def _run_action_as_the_front(self, stored: dict[str, Any] | None) -> dict[str, Any]:
        """A confirmed action is executed by the front itself, which then tells the executor the
        result (protocol §7.5): the demo does the same with the agent, or skips the action."""
        pending: dict[str, Any] = (stored or {}).get("pendingData") or {}
        record: dict[str, Any] = (stored or {}).get("selectedRecordRef") or {}
        collection = str(record.get("collectionName"))
        schema = self.stack.orchestrator.collection_schemas.get(collection, {})
        action = next(
            (a for a in schema.get("actions", []) if a["name"] == pending.get("name")), None
        )
        form = pending.get("form") or {}
        values = {f["name"]: f.get("value") for f in form.get("fields", []) if "name" in f}
        if action is None:
            self.console.line("(the action is not in the schema any more: skipped)", indent=4)
            return {"userConfirmed": False}
        ids = [] if action.get("type") == "global" else [str(record.get("recordId"))]
        body = {
            "data": {
                "attributes": {
                    "collection_name": collection,
                    "ids": ids,
                    "values": values,
                    "smart_action_id": action["name"],
                },
                "type": "custom-action-requests",
            }
        }
        response = call(
            "POST",
            f"{self.stack.agent.url}{action['endpoint']}",
            token=self.stack.agent_token(),
            body=body,
            query={"timezone": "Europe/Paris"},
        )
        if response.status != 200:
            errors = (response.json() or {}).get("errors") or [{}]
            detail = errors[0].get("detail", response.status)
            self.console.line(f"(the agent refused the action: {detail}; skipped)", indent=4)
            return {"userConfirmed": False}
        return {"userConfirmed": True, "actionResult": response.json(), "submittedValues": values}

    def _answered_elsewhere(self, index: int) -> bool:
        history, _, claimed = self.stack.orchestrator.history(RUN_ID)
        entry = next(e for e in history if e["stepIndex"] == index)
        waiting = (entry.get("context") or {}).get("status") == "awaiting-input"
        return claimed or not waiting or entry["done"]

    # --- the executor's view --------------------------------------------------------------------

    def _stored_entry(self, index: int) -> dict[str, Any] | None:
        response = call("GET", f"{self.stack.executor_url}/runs/{RUN_ID}", token=self.token)
        document = response.json() if response.status == 200 else None
        if not isinstance(document, dict):
            return None
        steps: list[dict[str, Any]] = document.get("steps", [])
        return next((s for s in steps if s.get("stepIndex") == index), None)

    def _trigger_curl(self, pending_data: Any) -> str:
        body = json.dumps({"pendingData": pending_data})
        return (
            f"curl -s -X POST {self.stack.executor_url}/runs/{RUN_ID}/trigger "
            f"-H 'Authorization: Bearer {self.token}' -H 'Content-Type: application/json' "
            f"-d {shlex.quote(body)}"
        )

    def _print_header(self) -> None:
        line, stack = self.console.line, self.stack
        origin = "new, seeded" if stack.seeded else "kept from an earlier demo"
        line(
            "Workflow executor sandbox — everything runs on 127.0.0.1, nothing leaves this machine."
        )
        line(f"orchestrator  {stack.orchestrator.url}  (runs workflows from definition files)", 2)
        line(f"agent         {stack.agent.url}  (SQLite {stack.database}, {origin})", 2)
        line(f"executor      {stack.executor_url}  (run store {stack.run_store})", 2)
        line()
        record = stack.agent.record(self.definition.collection, self.definition.record_id) or {}
        label = f" ({record['name']})" if isinstance(record.get("name"), str) else ""
        line(
            f'Run {RUN_ID}: "{self.definition.name}" on {self.definition.collection} '
            f"#{self.definition.record_id}{label}"
        )
        if not self.answers.interactive:
            line("(no terminal input: waiting steps are answered automatically)")

    def _print_footer(self, stays_up: bool) -> None:
        line = self.console.line
        line()
        failed = self.outcomes.count("error")
        verdict = "with an error" if failed else "every step succeeded"
        line(f"Run {RUN_ID} finished: {len(self.outcomes)} steps, {verdict}.")
        line(
            "The orchestrator saw only each step's status; what the steps read and wrote stays in "
            "the executor's run store:"
        )
        line(
            f"curl -s {self.stack.executor_url}/runs/{RUN_ID} "
            f"-H 'Authorization: Bearer {self.token}'",
            2,
        )
        if stays_up:
            line()
            line("The sandbox stays up until Ctrl-C.")


@dataclass(frozen=True)
class Question:
    text: str  # what the step asks
    prompt: str  # the terminal prompt
    parse: Callable[[str], Any]  # a terminal line -> pendingData (ValueError when unusable)
    example: Any  # a pendingData that answers it (the curl's body, the automatic answer)


def _question(step: StepDefinition, stored: dict[str, Any] | None) -> Question:
    pending: dict[str, Any] = (stored or {}).get("pendingData") or {}
    if step.type == "guidance":
        return Question(
            f"Instructions: {step.prompt or step.label}",
            "Your note:",
            lambda text: {"userInput": text},
            {"userInput": ""},
        )
    if step.type == "condition":
        options = list(step.branches or {})
        numbered = "  ".join(f"{n}) {option}" for n, option in enumerate(options, 1))
        return Question(
            f"Question: {step.prompt or step.label}  {numbered}",
            f"Choose 1-{len(options)}:",
            lambda text: {"selectedOption": _choose(options, text)},
            {"selectedOption": options[0]},
        )
    if step.type == "update-record":
        proposal = f"Set {pending.get('displayName')} to {json.dumps(pending.get('value'))}?"
    elif step.type == "load-related-record":
        field = (pending.get("suggestedField") or {}).get("displayName")
        record = pending.get("suggestedRecord") or {}
        label = record.get("referenceFieldValue") or record.get("recordId")
        proposal = f"Load {field}: {label} (#{record.get('recordId')})?"
    elif step.type == "trigger-action":
        # "y" runs the action as the front would; the curl (and the automatic answer) skip it.
        return Question(
            f'Run the action "{pending.get("displayName")}"?',
            "Confirm? [Y/n]:",
            _yes_no,
            {"userConfirmed": False},
        )
    else:
        proposal = f"Run the tool {pending.get('name')} with {json.dumps(pending.get('input'))}?"
    return Question(proposal, "Confirm? [Y/n]:", _yes_no, {"userConfirmed": True})


def _choose(options: list[str], text: str) -> str:
    if text.isdigit() and 1 <= int(text) <= len(options):
        return options[int(text) - 1]
    matches = [o for o in options if o.lower() == text.lower()]
    if not matches:
        raise ValueError(f"Type a number from 1 to {len(options)}.")
    return matches[0]


def _yes_no(text: str) -> dict[str, bool]:
    if text.lower() in ("", "y", "yes"):
        return {"userConfirmed": True}
    if text.lower() in ("n", "no"):
        return {"userConfirmed": False}
    raise ValueError("Type y or n.")


def _details(step: StepDefinition, stored: dict[str, Any] | None, context: dict[str, Any]) -> str:
    """What the executor kept about a finished step, in one short phrase."""
    if stored is None:
        return ""
    result: dict[str, Any] = stored.get("executionResult") or {}
    if result.get("skipped"):
        return " — skipped by the user"
    if step.type == "guidance":
        return f" — note: {json.dumps(result.get('userInput', ''))}"
    if step.type == "condition":
        return f" — answer: {context.get('selectedOption')}"
    if step.type == "read-record":
        values = ", ".join(
            f"{f.get('name')} = {json.dumps(f.get('value', f.get('error')))}"
            for f in result.get("fields", [])
        )
        return f" — {values}"
    if step.type == "update-record":
        params = stored.get("executionParams") or {}
        return f" — {params.get('displayName')} set to {json.dumps(params.get('value'))}"
    if step.type == "load-related-record":
        record = result.get("record") or {}
        relation = (result.get("relation") or {}).get("displayName")
        return f" — loaded {relation}: {record.get('collectionName')} #{record.get('recordId')}"
    if step.type == "trigger-action":
        params = stored.get("executionParams") or {}
        if result.get("submissionOutcome") == "pending-approval":
            return f" — {params.get('displayName')}: submitted for approval"
        return f" — {params.get('displayName')}: {json.dumps(result.get('actionResult'))}"
    return ""
