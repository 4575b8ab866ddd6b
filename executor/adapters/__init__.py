"""Adapters: the ports implemented over real I/O (HTTP clients, SQL, memory)."""
