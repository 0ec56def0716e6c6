"""The relay's storage: SQLite through sqlite-utils, plain functions over a connection.

Rules kept (DESIGN.md, "Storage rules"; STYLE.md, "Store"):

- Imports nothing from ``relay`` and knows nothing of HTTP or Matrix routing:
  primitives in, primitives out.
- Every function takes the connection first and never commits; the caller owns the
  transaction: ``with store.write(conn): ...`` (one commit, durable on return) or
  ``with store.read(conn): ...`` (one snapshot).
- One module per group of tables: ``accounts``, ``events``, ``state``, ``rooms``,
  ``txn_ids``, ``fed_txns``, ``outbox``, ``keys``, ``account_data``, ``receipts``,
  ``redactions``, ``relations``, ``sliding_sync`` (what each sliding sync connection
  was sent), ``presence``;
  ``status`` sums them up; the schema is ``store/migrations/NNNN_<what>.sql``.
"""

from store.db import connect, migrate, open_database, read, write
from store.errors import (
    AliasExists,
    EventExists,
    RoomExists,
    SchemaTooNew,
    StoreError,
    UserExists,
)

__all__ = [
    "AliasExists",
    "EventExists",
    "RoomExists",
    "SchemaTooNew",
    "StoreError",
    "UserExists",
    "connect",
    "migrate",
    "open_database",
    "read",
    "write",
]
