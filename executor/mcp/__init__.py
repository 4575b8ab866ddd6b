"""MCP servers and their per-user OAuth credentials (protocol §10)."""
