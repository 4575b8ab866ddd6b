"""The fake agent: the sandbox agent's protocol code (``executor.sandbox``), kept under its test
name so one implementation of the protocol serves the tests and the sandbox."""

from executor.sandbox.agent import (
    APPROVAL_ERROR,
    REQUIRED_CLAIMS,
    FakeAgent,
    collection_schemas,
)

__all__ = ["APPROVAL_ERROR", "REQUIRED_CLAIMS", "FakeAgent", "collection_schemas"]
