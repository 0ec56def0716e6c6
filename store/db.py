"""Opening the SQLite database, migrating it, and the two kinds of transaction.

Rules kept here (DESIGN.md, "Storage rules"):

- WAL journal, ``synchronous=FULL`` by default: once ``write()`` has returned, its
  commit is on disk and survives kill -9 and power loss. ``NORMAL`` may be asked for
  (tests, throwaway data); it keeps the database consistent but may lose the last
  commits on power loss.
- Connections run in autocommit mode (``isolation_level=None``): Python's sqlite3 never
  opens or commits a transaction behind our back. Every transaction is explicit:
  ``write()`` is ``BEGIN IMMEDIATE`` … ``COMMIT`` (takes the write lock up front, so it
  never fails half-way with SQLITE_BUSY on upgrade), ``read()`` is a deferred ``BEGIN``
  … ``COMMIT`` giving one consistent snapshot.
- The functions in the other store modules never commit; the caller wraps them in
  ``write()``/``read()`` (Synapse's ``runInteraction`` + ``_txn``). One writer
  connection, owned by one thread (hence ``check_same_thread=False``).
- Migrations are ``store/migrations/NNNN_<what>.sql``, numbered from 1 without gaps,
  read with ``importlib.resources`` (so they work from a wheel), each applied in its own
  transaction together with ``PRAGMA user_version = NNNN``. A database whose
  ``user_version`` is newer than the newest migration raises ``SchemaTooNew``: an old
  relay must never write to a schema it does not understand.

See https://www.sqlite.org/wal.html and https://www.sqlite.org/pragma.html#pragma_synchronous.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils

from store.errors import SchemaTooNew
from store.private_files import make_private_file, restrict_file

__all__ = [
    "BUSY_TIMEOUT_MS",
    "Connection",
    "DatabaseError",
    "SchemaTooNew",
    "connect",
    "known_schema_version",
    "migrate",
    "migrations",
    "open_database",
    "read",
    "schema_version",
    "utils",
    "write",
]

BUSY_TIMEOUT_MS = 10_000

#: The connection every store function takes first. The layers above name it through
#: ``store.Connection`` and so never import ``sqlite3`` themselves.
Connection = sqlite3.Connection
#: Any failure of the database itself (disk full, I/O error, lock timeout, a bug in our
#: SQL): what a caller that must survive a failed write catches.
DatabaseError = sqlite3.Error
_SYNCHRONOUS = {"FULL": 2, "NORMAL": 1, "EXTRA": 3}
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def connect(path: str | os.PathLike[str], *, synchronous: str = "FULL") -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path`` with the relay's settings.

    Raises:
        ValueError: ``synchronous`` is not FULL, NORMAL or EXTRA.
        sqlite3.OperationalError: the file can't be opened, or WAL can't be enabled
            (e.g. a filesystem without shared memory support).
    """
    level = synchronous.upper()
    if level not in _SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {sorted(_SYNCHRONOUS)}, not {synchronous!r}")
    on_disk = _is_file_path(path)
    if on_disk:
        make_private_file(path)  # SQLite gives -wal and -shm the database file's mode
    conn = sqlite3.connect(
        os.fspath(path),
        timeout=BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,
        check_same_thread=False,
    )
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"could not enable WAL journal mode (got {mode!r})")
        if on_disk:
            for suffix in ("-wal", "-shm"):
                restrict_file(os.fspath(path) + suffix)  # made by an older relay
        conn.execute(f"PRAGMA synchronous = {level}")
        conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _is_file_path(path: str | os.PathLike[str]) -> bool:
    name = os.fspath(path)
    return name not in ("", ":memory:") and not name.startswith("file:")


def open_database(path: str | os.PathLike[str], *, synchronous: str = "FULL") -> sqlite3.Connection:
    """``connect`` then ``migrate``: the one call the relay makes at start.

    Raises:
        SchemaTooNew: the database was written by a newer relay.
    """
    conn = connect(path, synchronous=synchronous)
    try:
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def write(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: ``BEGIN IMMEDIATE`` … ``COMMIT``, ``ROLLBACK`` on any exception.

    When the block exits normally the commit has returned, and with WAL +
    ``synchronous=FULL`` it is on disk. Transactions do not nest: opening one inside
    another raises ``sqlite3.OperationalError``.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        _rollback_quietly(conn)
        raise
    try:
        conn.execute("COMMIT")
    except BaseException:
        _rollback_quietly(conn)
        raise


@contextmanager
def read(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One read transaction (deferred ``BEGIN`` … ``COMMIT``): every query inside sees
    the same snapshot, however many commits other connections make meanwhile."""
    conn.execute("BEGIN")
    try:
        yield conn
    except BaseException:
        _rollback_quietly(conn)
        raise
    conn.execute("COMMIT")


def optimize(conn: sqlite3.Connection) -> None:
    """``PRAGMA optimize``: SQLite refreshes the statistics (ANALYZE) of the tables whose
    queries would plan better with them, usually none; cheap, so housekeeping runs it."""
    conn.execute("PRAGMA optimize")


def _rollback_quietly(conn: sqlite3.Connection) -> None:
    # Some errors (SQLITE_FULL, SQLITE_IOERR, ...) already rolled the transaction back;
    # a second ROLLBACK would then mask the original exception.
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def utils(conn: sqlite3.Connection) -> sqlite_utils.Database:
    """A ``sqlite_utils.Database`` over ``conn`` for inserts, upserts and introspection.

    It shares the connection and so the caller's transaction: inside ``write()`` its
    writes run in savepoints and commit with the rest, never on their own.
    """
    # Imported on first use: sqlite-utils pulls in click, tabulate and pluggy, ~10 MB of
    # resident memory a relay that only ever upserts a few rows need not carry at idle.
    import sqlite_utils

    return sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)


def schema_version(conn: sqlite3.Connection) -> int:
    """The database's ``PRAGMA user_version``: the last migration applied (0 if none)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrations() -> list[tuple[int, str, str]]:
    """The shipped migrations as ``(number, name, sql)``, in order.

    Raises:
        RuntimeError: a file is misnamed, or the numbers are not 1, 2, 3, … without gaps.
    """
    found: list[tuple[int, str, str]] = []
    folder = resources.files("store").joinpath("migrations")
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _MIGRATION_NAME.match(entry.name)
        if match is None:
            raise RuntimeError(f"migration file {entry.name!r} is not named NNNN_<what>.sql")
        found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    numbers = [number for number, _, _ in found]
    if numbers != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..N without gaps, found {numbers}")
    return found


def known_schema_version() -> int:
    """The newest schema version this code understands (the last migration's number)."""
    return len(migrations())


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration newer than the database's ``user_version``; return the version.

    Each migration runs in its own ``BEGIN IMMEDIATE`` transaction that also sets
    ``user_version``, so a crash leaves the database at the previous version, and two
    processes migrating at once apply each step once. Idempotent.

    Raises:
        SchemaTooNew: the database's version is newer than ``known_schema_version()``.
    """
    from store.accounts import token_hash  # store.accounts imports nothing of this module

    conn.create_function("relay_token_hash", 1, token_hash, deterministic=True)
    steps = migrations()
    known = len(steps)
    found = schema_version(conn)
    if found > known:
        raise SchemaTooNew(found, known)
    for number, _name, sql in steps:
        if number <= found:
            continue
        with write(conn):
            current = schema_version(conn)  # re-read under the write lock
            if current > known:
                raise SchemaTooNew(current, known)
            if current >= number:
                continue
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
    return schema_version(conn)


def _statements(script: str) -> Iterator[str]:
    """Split a SQL script into complete statements (triggers' ``BEGIN … END`` included).

    ``executescript`` can't be used: it commits any open transaction first.
    """
    start = 0
    for index, char in enumerate(script):
        if char == ";" and sqlite3.complete_statement(script[start : index + 1]):
            statement = script[start : index + 1].strip()
            start = index + 1
            if _has_code(statement):
                yield statement
    rest = script[start:].strip()
    if _has_code(rest):
        raise RuntimeError(f"migration ends with an unterminated statement: {rest[:60]!r}")


def _has_code(statement: str) -> bool:
    lines = (line.split("--", 1)[0].strip() for line in statement.splitlines())
    return any(line and line != ";" for line in lines)
