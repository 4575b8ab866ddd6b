"""The memory of granted access checks: reused briefly, bounded, never for a refusal."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from executor.errors import WorkflowPortError
from executor.http.access import AccessChecks


class Orchestrator:
    """Answers access checks from a table and counts the questions."""

    def __init__(self) -> None:
        self.grants: dict[tuple[str, int], bool] = {}
        self.asked: list[tuple[str, int]] = []
        self.down = False

    def has_access(self, run_id: str, user_id: int) -> bool:
        self.asked.append((run_id, user_id))
        if self.down:
            raise WorkflowPortError("access check failed")
        return self.grants.get((run_id, user_id), False)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def checks(orchestrator: Orchestrator, clock: Clock, **kwargs: Any) -> AccessChecks:
    return AccessChecks(orchestrator, grant_ttl_s=5, clock=clock, **kwargs)  # type: ignore[arg-type]


def test_a_grant_is_reused_until_it_expires_then_asked_again() -> None:
    orchestrator, clock = Orchestrator(), Clock()
    orchestrator.grants[("42", 7)] = True
    access = checks(orchestrator, clock)

    assert access.has_access("42", 7)
    clock.now += 4.9
    assert access.has_access("42", 7)
    assert len(orchestrator.asked) == 1

    clock.now += 0.2
    orchestrator.grants[("42", 7)] = False  # revoked: seen once the grant has expired
    assert not access.has_access("42", 7)
    assert not access.has_access("42", 7)
    assert len(orchestrator.asked) == 3


def test_a_failed_check_is_not_remembered_as_anything() -> None:
    orchestrator, clock = Orchestrator(), Clock()
    orchestrator.grants[("42", 7)] = True
    orchestrator.down = True
    access = checks(orchestrator, clock)

    with pytest.raises(WorkflowPortError):
        access.has_access("42", 7)
    orchestrator.down = False
    assert access.has_access("42", 7)
    assert len(orchestrator.asked) == 2


def test_the_memory_is_bounded_forgetting_the_oldest_grant() -> None:
    orchestrator, clock = Orchestrator(), Clock()
    for run in ("1", "2", "3"):
        orchestrator.grants[(run, 7)] = True
    access = checks(orchestrator, clock, max_grants=2)

    for run in ("1", "2", "3"):
        access.has_access(run, 7)
    access.has_access("3", 7)
    access.has_access("2", 7)
    assert len(orchestrator.asked) == 3  # 2 and 3 remembered
    access.has_access("1", 7)
    assert len(orchestrator.asked) == 4  # 1 was forgotten


def test_a_zero_ttl_asks_every_time() -> None:
    orchestrator = Orchestrator()
    orchestrator.grants[("42", 7)] = True
    access = AccessChecks(orchestrator, grant_ttl_s=0)  # type: ignore[arg-type]
    for _ in range(3):
        assert access.has_access("42", 7)
    assert len(orchestrator.asked) == 3


def test_a_slow_grant_answered_after_a_refusal_is_not_kept() -> None:
    clock = Clock()
    arrived = threading.Event()
    release = threading.Event()

    class SlowThenRefusing(Orchestrator):
        def has_access(self, run_id: str, user_id: int) -> bool:
            if not self.asked:  # the first question: a "yes" that takes its time
                self.asked.append((run_id, user_id))
                arrived.set()
                release.wait(5)
                return True
            return super().has_access(run_id, user_id)

    orchestrator = SlowThenRefusing()
    access = checks(orchestrator, clock)
    slow = threading.Thread(target=access.has_access, args=("42", 7))
    slow.start()
    assert arrived.wait(5)
    assert not access.has_access("42", 7)  # revoked meanwhile: the orchestrator says no
    release.set()
    slow.join(5)

    assert not access.has_access("42", 7)  # the late "yes" was not remembered
    assert len(orchestrator.asked) == 3


def test_a_grant_lasts_from_the_question_not_the_answer() -> None:
    clock = Clock()

    class Slow(Orchestrator):
        def has_access(self, run_id: str, user_id: int) -> bool:
            clock.now += 4  # the answer takes 4 of the 5 seconds
            return super().has_access(run_id, user_id)

    orchestrator = Slow()
    orchestrator.grants[("42", 7)] = True
    access = checks(orchestrator, clock)
    assert access.has_access("42", 7)
    clock.now += 1.5  # 5.5 s after the question
    assert access.has_access("42", 7)
    assert len(orchestrator.asked) == 2
