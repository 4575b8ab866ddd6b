"""The executor's HTTP API: the runs blueprint, health, authentication and JSON errors."""
