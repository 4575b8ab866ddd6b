"""MCP steps: server configurations, tool loading and invocation, OAuth access tokens (§10)."""
