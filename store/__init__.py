"""The relay's storage: SQLite (the standard library's ``sqlite3``), plain functions over a
connection.

Rules kept (DESIGN.md, "Storage rules"; STYLE.md, "Store"):

- Imports nothing from ``relay`` and knows nothing of HTTP or Matrix routing:
  primitives in, primitives out. Every SQL statement of the relay is here
  (tests/test_layers.py: nothing under ``relay/`` but ``relay/runtime/database.py``, which
  runs these functions on its connections, imports ``sqlite3`` or calls ``.execute(``).
- Every function takes the connection first and never commits; the caller owns the
  transaction: ``with store.write(conn): ...`` (one commit, durable on return) or
  ``with store.read(conn): ...`` (one snapshot). ``relay/`` names the connection
  ``store.Connection`` and a failure of the database ``store.DatabaseError``.
- The schema is ``store/migrations/NNNN_<what>.sql``, plain SQL applied in order by
  ``db.migrate``.
- sqlite-utils is used where it saves code, through ``db.utils(conn)`` (same connection,
  same transaction): the upsert of ``keys.put_server_key`` and the table introspection
  of ``status.database``. It is imported on first use only (about 10 MB a relay at idle
  need not carry); the queries themselves are plain SQL.

The map, one module per group of tables:

- ``db``: opening, migrating, ``read``/``write`` transactions; ``batches``: ids sent
  ``IN (...)`` a few hundred at a time; ``errors``: what the store
  raises; ``private_files``: files only the relay's user reads; ``status``: the figures of
  ``relay status`` and ``/metrics``; ``backup``: a consistent copy of the live database
  and its integrity check.
- Accounts: ``accounts`` (users, devices, access tokens), ``passwords``,
  ``registration_tokens``, ``account_data`` (and filters), ``pushers`` (and how far each
  pusher's deliveries got), ``reports`` (content reports for the operator).
- Rooms: ``events`` (events and the DAG), ``state``, ``rooms`` (rooms, aliases,
  memberships), ``redactions``, ``remote_memberships`` (our users' invites to and knocks on
  rooms we are not in), ``txn_ids`` (client transaction ids), ``receipts``, ``presence``,
  ``relations`` (the relations index), ``search`` (the full-text index), ``sliding_sync``
  (what each sliding sync connection was sent).
- Encryption: ``e2ee_keys``, ``device_inbox``, ``key_backup``.
- Federation: ``outbox`` (the outbound queue), ``fed_txns`` (inbound dedup), ``keys``
  (remote servers' keys), ``pending_pdus``; the LAN mesh: ``peers``.
- ``media``: the content repository's rows.
"""

from store.db import Connection, DatabaseError, connect, migrate, open_database, read, write
from store.errors import (
    AliasExists,
    EventExists,
    RoomExists,
    SchemaTooNew,
    StoreError,
    TokenExists,
    UserExists,
)

__all__ = [
    "AliasExists",
    "Connection",
    "DatabaseError",
    "EventExists",
    "RoomExists",
    "SchemaTooNew",
    "StoreError",
    "TokenExists",
    "UserExists",
    "connect",
    "migrate",
    "open_database",
    "read",
    "write",
]
