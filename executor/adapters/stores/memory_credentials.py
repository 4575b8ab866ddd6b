"""In-memory MCP OAuth credential store: same semantics as the SQL one, gone with the process."""

from __future__ import annotations

import dataclasses
import itertools
import threading

from executor.mcp.store import EncryptedCredential, McpCredentialStore, StoredCredential


class MemoryMcpCredentialStore(McpCredentialStore):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[tuple[int, str], StoredCredential] = {}
        self._row_ids = itertools.count(1)

    def init(self) -> None:
        """Nothing to open: the rows live in this object."""

    def close(self) -> None:
        """Nothing to release: rows outlive a runner restart, as they would in a database."""

    def get(self, user_id: int, mcp_server_id: str) -> StoredCredential | None:
        with self._lock:
            return self._rows.get((user_id, mcp_server_id))

    def put(self, credential: EncryptedCredential) -> None:
        with self._lock:
            # A new row id, as the SQL store's delete + insert gives: a refresh that read the old
            # row must not write its rotated token over the new deposit.
            key = (credential.user_id, credential.mcp_server_id)
            self._rows[key] = StoredCredential(next(self._row_ids), credential)

    def delete(self, user_id: int, mcp_server_id: str) -> bool:
        with self._lock:
            return self._rows.pop((user_id, mcp_server_id), None) is not None

    def update_refresh_token(self, row_id: int, refresh_token_enc: bytes) -> bool:
        with self._lock:
            for key, row in self._rows.items():
                if row.row_id == row_id:
                    credential = dataclasses.replace(
                        row.credential, refresh_token_enc=refresh_token_enc
                    )
                    self._rows[key] = StoredCredential(row_id, credential)
                    return True
            return False
