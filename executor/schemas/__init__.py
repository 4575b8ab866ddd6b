"""marshmallow schemas: the wire (orchestrator), the run store, and the executor's own API."""
