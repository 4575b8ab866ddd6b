"""Timing every port call at the boundary: one wrapper per port, no timing code in the adapters.

A :class:`TimedPort` stands in for an adapter: the operations its port declares (public methods of
the port's abstract classes) are timed and counted; anything else (attributes, helpers) passes
through untouched. The operation label therefore comes from the port's own method names, a small
fixed set.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import typing as t

from executor.monitoring.metrics import ExecutorMetrics
from executor.ports import (
    ActivityLogPort,
    AgentPort,
    AiModel,
    ApprovalPort,
    RunLeases,
    RunStore,
    WorkflowPort,
)
from executor.runner.services import Services

P = t.TypeVar("P")


def port_operations(*ports: type) -> frozenset[str]:
    """The public methods the port classes declare (their abstract and default methods)."""
    return frozenset(
        name
        for port in ports
        for name, value in vars(port).items()
        if not name.startswith("_") and callable(value)
    )


_OPERATIONS: dict[str, frozenset[str]] = {
    "orchestrator": port_operations(WorkflowPort),
    "run_store": port_operations(RunStore, RunLeases),
    "agent": port_operations(AgentPort),
    "ai_model": port_operations(AiModel),
    "activity_log": port_operations(ActivityLogPort),
    "approvals": port_operations(ApprovalPort),
}
PORT_NAMES = tuple(_OPERATIONS)


class TimedPort:
    """Forwards to ``target``; calls of the port's operations are timed under ``port``."""

    def __init__(self, target: object, port: str, metrics: ExecutorMetrics) -> None:
        self._target = target
        for operation in _OPERATIONS[port]:
            method = getattr(target, operation, None)
            if callable(method):
                # Instance attributes: found before __getattr__, so a timed call costs one wrapper.
                setattr(self, operation, _timed(method, port, operation, metrics))

    @property
    def wrapped(self) -> object:
        return self._target

    def __getattr__(self, name: str) -> t.Any:
        return getattr(self._target, name)

    def __repr__(self) -> str:
        return f"TimedPort({self._target!r})"


def _timed(
    method: t.Callable[..., t.Any], port: str, operation: str, metrics: ExecutorMetrics
) -> t.Callable[..., t.Any]:
    @functools.wraps(method)
    def call(*args: t.Any, **kwargs: t.Any) -> t.Any:
        started = time.perf_counter()
        failed = True
        try:
            result = method(*args, **kwargs)
            failed = False
            return result
        finally:
            metrics.port_called(port, operation, time.perf_counter() - started, failed=failed)

    return call


def timed(target: P, port: str, metrics: ExecutorMetrics) -> P:
    """``target`` with its port operations timed; typed as the port it stands in for."""
    if isinstance(target, TimedPort):
        return target  # already timed (services reused by a second runner)
    return t.cast(P, TimedPort(target, port, metrics))


def timed_services(services: Services, metrics: ExecutorMetrics) -> Services:
    """The same services with every port call timed."""
    return dataclasses.replace(
        services,
        workflow=timed(services.workflow, "orchestrator", metrics),
        run_store=timed(services.run_store, "run_store", metrics),
        leases=timed(services.leases, "run_store", metrics),
        agent=timed(services.agent, "agent", metrics),
        activity_log=timed(services.activity_log, "activity_log", metrics),
        approvals=timed(services.approvals, "approvals", metrics),
        ai_models={
            name: timed(model, "ai_model", metrics) for name, model in services.ai_models.items()
        },
    )
