"""The fake agent: the sandbox agent (``executor.sandbox.agent``), kept under its test name so one
implementation of the agent protocol serves the tests and the sandbox."""

from executor.sandbox.agent import (
    APPROVAL_ERROR,
    REQUIRED_CLAIMS,
    SandboxAgent,
    collection_schemas,
)

FakeAgent = SandboxAgent

__all__ = ["APPROVAL_ERROR", "REQUIRED_CLAIMS", "FakeAgent", "collection_schemas"]
