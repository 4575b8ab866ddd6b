"""``WorkflowExecutor``: the Flask extension that mounts the executor into an app."""

from __future__ import annotations

import typing as t
from collections.abc import Mapping

from flask import Flask

from executor.adapters.agent import AgentClient
from executor.adapters.ai.anthropic import ANTHROPIC_URL, AnthropicModel
from executor.adapters.ai.base import FailingModel
from executor.adapters.ai.openai import OPENAI_URL, ForestProxyModel, OpenAiChatModel
from executor.adapters.forest_server import ActivityLogClient, ApprovalClient
from executor.adapters.orchestrator import OrchestratorClient
from executor.adapters.stores.memory import MemoryRunStore
from executor.adapters.stores.memory_credentials import MemoryMcpCredentialStore
from executor.adapters.stores.sql import SqlRunStore
from executor.adapters.stores.sql_credentials import SqlMcpCredentialStore
from executor.config import Settings, load_settings, metrics_multiprocess_dir
from executor.http.access import AccessChecks
from executor.http.health import health
from executor.http.mcp_credentials import mcp_credentials
from executor.http.mcp_tools import mcp_tools
from executor.http.monitoring import monitoring
from executor.http.openapi import openapi
from executor.http.runs import EXTENSION_KEY, runs
from executor.mcp.credentials import McpCredentials
from executor.mcp.servers import McpServers
from executor.mcp.store import McpCredentialStore
from executor.mcp.tokens import McpAccessTokens
from executor.monitoring.metrics import ExecutorMetrics
from executor.monitoring.ports import timed_services
from executor.monitoring.readiness import BoundedPing
from executor.ports import AiModel
from executor.runner import Runner
from executor.runner.services import Services
from executor.steps.registry import StepRegistry


class ExecutorState:
    """What one app's executor holds: its settings, ports, runner and metrics."""

    def __init__(self, settings: Settings, services: Services, runner: Runner) -> None:
        self.settings = settings
        self.services = services
        self.runner = runner
        self.access = AccessChecks(services.workflow, grant_ttl_s=settings.access_check_cache_s)
        self.metrics = runner.metrics
        self.store_ping = BoundedPing(
            services.run_store.ping, settings.ready_store_timeout_s, what="run store"
        )


def build_services(settings: Settings) -> Services:
    """The real adapters for these settings."""
    store: MemoryRunStore | SqlRunStore
    if settings.store_url is None:
        store = MemoryRunStore()
    else:
        store = SqlRunStore(
            settings.store_url, schema=settings.database_schema, migrate=settings.run_migrations
        )
    credential_store: McpCredentialStore
    if settings.store_url is None:
        credential_store = MemoryMcpCredentialStore()
    else:
        credential_store = SqlMcpCredentialStore(
            settings.store_url, schema=settings.database_schema, migrate=settings.run_migrations
        )
    credentials = McpCredentials(
        credential_store,
        encryption_key=settings.encryption_key,
        environment=settings.executor_env,
    )
    tokens = McpAccessTokens(credentials)
    workflow = OrchestratorClient(settings.forest_server_url, settings.forest_env_secret)
    return Services(
        workflow=workflow,
        run_store=store,
        leases=store,
        steps=StepRegistry(),
        agent=AgentClient(settings.agent_url, settings.forest_auth_secret),
        activity_log=ActivityLogClient(settings.forest_server_url),
        approvals=ApprovalClient(settings.forest_server_url),
        ai_models={"default": build_ai_model(settings)},
        mcp_credentials=credentials,
        mcp_tokens=tokens,
        mcp=McpServers(
            workflow,
            tokens=tokens,
            call_timeout_s=settings.step_timeout_s,
        ),
    )


def build_ai_model(settings: Settings) -> AiModel:
    """The configured provider, or the Forest server's AI proxy when none is configured."""
    timeout = settings.ai_invoke_timeout_s
    if settings.force_ai_error:
        return FailingModel()
    if settings.ai_provider == "openai":
        assert settings.ai_model is not None and settings.ai_api_key is not None
        return OpenAiChatModel(
            settings.ai_model,
            settings.ai_api_key,
            invoke_timeout_s=timeout,
            base_url=settings.ai_base_url or OPENAI_URL,
        )
    if settings.ai_provider == "anthropic":
        assert settings.ai_model is not None and settings.ai_api_key is not None
        return AnthropicModel(
            settings.ai_model,
            settings.ai_api_key,
            invoke_timeout_s=timeout,
            base_url=settings.ai_base_url or ANTHROPIC_URL,
        )
    return ForestProxyModel(
        settings.forest_server_url, settings.forest_env_secret, invoke_timeout_s=timeout
    )


class WorkflowExecutor:
    """Mounts the ``runs``, ``health``, ``monitoring``, ``openapi`` and ``mcp_credentials``
    blueprints and owns the app's runner.

    ``init_app`` leaves the host app's own routes, error handlers and config alone: the executor's
    settings come from the environment, then ``app.config["WORKFLOW_EXECUTOR"]`` (a mapping), then
    the ``config`` argument. The runner is created but not started; start it with
    ``runner_of(app).start()`` in the process that serves the app.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        url_prefix: str | None = None,
        config: Mapping[str, t.Any] | None = None,
        services: Services | None = None,
    ) -> None:
        if app is not None:
            self.init_app(app, url_prefix=url_prefix, config=config, services=services)

    def init_app(
        self,
        app: Flask,
        *,
        url_prefix: str | None = None,
        config: Mapping[str, t.Any] | None = None,
        services: Services | None = None,
        settings: Settings | None = None,
        serve: bool = False,
    ) -> ExecutorState:
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError("This app already has a workflow executor")
        if settings is None:
            explicit = {**app.config.get("WORKFLOW_EXECUTOR", {}), **(config or {})}
            settings = load_settings(explicit, data_dir=app.instance_path)
        # Metrics of this app only (a registry of its own): many apps may share a process.
        metrics_multiprocess_dir()  # a variable naming no directory fails here, clearly
        metrics = ExecutorMetrics()
        services = timed_services(services or build_services(settings), metrics)
        runner = Runner(
            settings,
            services,
            app=app,
            # serve: the runner owns a server on HTTP_HOST:HTTP_PORT (the CLI); otherwise a host
            # (gunicorn wsgi:app, flask run, a host app) serves the app.
            http_port=settings.http_port if serve else None,
            http_host=settings.http_host,
            server=settings.http_server,
            metrics=metrics,
        )
        state = ExecutorState(settings, services, runner)
        app.extensions[EXTENSION_KEY] = state
        app.register_blueprint(runs, url_prefix=url_prefix)
        app.register_blueprint(health, url_prefix=url_prefix)
        app.register_blueprint(monitoring, url_prefix=url_prefix)
        app.register_blueprint(mcp_credentials, url_prefix=url_prefix)
        app.register_blueprint(openapi, url_prefix=url_prefix)
        app.register_blueprint(mcp_tools, url_prefix=url_prefix)
        return state


def executor_state(app: t.Any) -> ExecutorState:
    """The executor of an app built by ``create_app`` or ``WorkflowExecutor``."""
    state: ExecutorState = app.extensions[EXTENSION_KEY]
    return state


def runner_of(app: t.Any) -> Runner:
    return executor_state(app).runner
