"""Building the context of one step execution (protocol §6.8)."""

from __future__ import annotations

import logging
from typing import Any

from executor.domain.runs import Dispatch
from executor.ports import AiModel
from executor.runner.schema_cache import RunSchemas, SchemaCache
from executor.runner.services import Services
from executor.steps.audit import AuditedAgent
from executor.steps.base import StepContext
from executor.steps.decisions import AiDecider

log = logging.getLogger(__name__)


class StepContexts:
    """Binds the runner's ports to one dispatch: its user, its rendering, its server token."""

    def __init__(self, services: Services, schema_cache: SchemaCache) -> None:
        self._services = services
        self._schema_cache = schema_cache

    def build(self, dispatch: Dispatch, pending_data: Any) -> StepContext:
        step = dispatch.step
        token = dispatch.forest_server_token
        services = self._services

        def request_approval(**request: Any) -> str | None:
            return services.approvals.request_approval(token, step.user.rendering_id, **request)

        run_store = services.run_store

        def entries() -> dict[int, Any]:
            return {e["stepIndex"]: e for e in run_store.get_step_executions(step.run_id)}

        model = self._model_for(step.definition.ai_config_name)
        return StepContext(
            step=step,
            run_store=services.run_store,
            pending_data=pending_data,
            agent=AuditedAgent(
                services.agent, services.activity_log, user=step.user, server_token=token
            ),
            schemas=RunSchemas(self._schema_cache, step.run_id, step.user.rendering_id),
            request_approval=request_approval,
            ai=AiDecider(model, step, entries) if model is not None else None,
            mcp=services.mcp,
        )

    def _model_for(self, config_name: str | None) -> AiModel | None:
        models = self._services.ai_models
        if not models:
            return None
        if config_name is not None and config_name in models:
            return models[config_name]
        if config_name is not None:
            log.warning("Unknown AI configuration %r — using the default one", config_name)
        return next(iter(models.values()))
