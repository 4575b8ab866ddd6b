"""Monitoring: Prometheus metrics of the runner and its ports, and the readiness checks."""
