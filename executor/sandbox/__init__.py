"""The sandbox: a development tool (``workflow-executor demo``), not part of the service.

It runs, on loopback ports, an orchestrator and an agent speaking the real protocols, so a
newcomer can watch the executor run a workflow with no configuration and no network; the test
suite uses the same pieces as its fakes (``tests/fakes``).
"""
