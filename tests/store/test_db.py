"""store.db: connection settings, migrations, transactions, durability under kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from store import db, outbox
from store.errors import SchemaTooNew

REPO = Path(__file__).resolve().parents[2]


def test_fresh_connection_is_wal_with_synchronous_full(db_path: Path) -> None:
    conn = db.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
        assert conn.isolation_level is None
        assert conn.row_factory is sqlite3.Row
    finally:
        conn.close()


def test_synchronous_normal_on_request(db_path: Path) -> None:
    conn = db.connect(db_path, synchronous="NORMAL")
    try:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1
    finally:
        conn.close()


def test_unknown_synchronous_level_is_refused(db_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        db.connect(db_path, synchronous="OFF")


def test_connection_may_be_used_from_another_thread(conn: sqlite3.Connection) -> None:
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(db.schema_version(conn)))
    thread.start()
    thread.join()
    assert seen == [db.known_schema_version()]


def test_migrations_apply_on_a_fresh_database(conn: sqlite3.Connection) -> None:
    assert db.schema_version(conn) == db.known_schema_version() >= 1
    tables = set(db.utils(conn).table_names())
    assert {
        "events",
        "event_edges",
        "event_auth_edges",
        "forward_extremities",
        "rooms",
        "room_aliases",
        "current_state",
        "state_groups",
        "event_state",
        "room_memberships",
        "users",
        "devices",
        "access_tokens",
        "client_txn_ids",
        "account_data",
        "receipts",
        "filters",
        "federation_outbox",
        "federation_destinations",
        "federation_txn_ids",
        "server_keys",
        "registration_tokens",
        "stream_positions",
    } <= tables


def test_migrate_is_idempotent(db_path: Path) -> None:
    first = db.open_database(db_path)
    schema = first.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    version = db.migrate(first)
    first.close()
    second = db.open_database(db_path)
    try:
        assert db.migrate(second) == version == db.known_schema_version()
        again = second.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
        assert [tuple(r) for r in again] == [tuple(r) for r in schema]
    finally:
        second.close()


def test_migrations_are_numbered_without_gaps() -> None:
    steps = db.migrations()
    assert [number for number, _, _ in steps] == list(range(1, len(steps) + 1))
    assert steps[0][1] == "0001_initial.sql"


def test_newer_schema_refuses_to_start(db_path: Path) -> None:
    known = db.known_schema_version()
    conn = db.open_database(db_path)
    conn.execute(f"PRAGMA user_version = {known + 5}")
    conn.close()
    with pytest.raises(SchemaTooNew) as info:
        db.open_database(db_path)
    assert info.value.found == known + 5
    assert info.value.known == known
    message = str(info.value)
    assert f"version {known + 5}" in message
    assert f"({known})" in message
    assert "upgrade the relay" in message


def test_write_rolls_back_on_exception(conn: sqlite3.Connection) -> None:
    with pytest.raises(RuntimeError), db.write(conn):
        outbox.enqueue(conn, destination="a.example", kind="pdu", payload=b"{}", now_ms=1)
        raise RuntimeError("boom")
    assert not conn.in_transaction
    assert outbox.depths(conn) == {}


def test_write_commits_and_second_connection_sees_it(
    conn: sqlite3.Connection, db_path: Path
) -> None:
    with db.write(conn):
        outbox.enqueue(conn, destination="a.example", kind="edu", payload=b"{}", now_ms=1)
    assert not conn.in_transaction
    other = db.connect(db_path)
    try:
        assert outbox.depths(other) == {"a.example": 1}
    finally:
        other.close()


def test_store_functions_do_not_commit(conn: sqlite3.Connection, db_path: Path) -> None:
    other = db.connect(db_path)
    try:
        with db.write(conn):
            outbox.enqueue(conn, destination="a.example", kind="pdu", payload=b"{}", now_ms=1)
            assert conn.in_transaction
            assert outbox.depths(other) == {}
        assert outbox.depths(other) == {"a.example": 1}
    finally:
        other.close()


def test_read_sees_one_snapshot(conn: sqlite3.Connection, db_path: Path) -> None:
    writer = db.connect(db_path)
    try:
        with db.read(conn):
            assert outbox.depths(conn) == {}
            with db.write(writer):
                outbox.enqueue(writer, destination="a.example", kind="pdu", payload=b"", now_ms=1)
            assert outbox.depths(conn) == {}
        assert outbox.depths(conn) == {"a.example": 1}
    finally:
        writer.close()


def test_write_does_not_nest(conn: sqlite3.Connection) -> None:
    with db.write(conn), pytest.raises(sqlite3.OperationalError), db.write(conn):
        pass


_WRITER = textwrap.dedent(
    """
    import sys
    from store import db, outbox

    conn = db.open_database(sys.argv[1])
    n = 0
    while True:
        with db.write(conn):
            row_id = outbox.enqueue(
                conn, destination="peer.example", kind="pdu", payload=b"x" * 200, now_ms=n
            )
        print(row_id, flush=True)
        n += 1
    """
)


def test_committed_writes_survive_kill_9(db_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(db_path)],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env=env,
        text=True,
    )
    assert child.stdout is not None
    printed: list[int] = []
    try:
        while len(printed) < 300:
            line = child.stdout.readline()
            assert line, f"writer exited early with {child.wait()}"
            printed.append(int(line))
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    # Lines already written to the pipe before the kill were committed too.
    rest = child.stdout.read()
    child.stdout.close()
    printed += [int(line) for line in rest.splitlines(keepends=True) if line.endswith("\n")]
    assert child.returncode == -signal.SIGKILL

    conn = db.open_database(db_path)
    try:
        stored = {row[0] for row in conn.execute("SELECT id FROM federation_outbox")}
    finally:
        conn.close()
    assert set(printed) <= stored
    assert printed == sorted(printed)


def test_failed_migration_leaves_previous_version(
    conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = db.known_schema_version()
    shipped = db.migrations()
    broken = (known + 1, f"{known + 1:04d}_broken.sql", "CREATE TABLE t (a);\nNOT SQL;\n")
    monkeypatch.setattr(db, "migrations", lambda: [*shipped, broken])
    with pytest.raises(sqlite3.OperationalError):
        db.migrate(conn)
    assert not conn.in_transaction
    assert db.schema_version(conn) == known
    assert "t" not in db.utils(conn).table_names()


def test__statements_splits_triggers_and_ignores_comment_semicolons() -> None:
    script = textwrap.dedent(
        """
        -- a comment; with a semicolon and the relay's apostrophe
        CREATE TABLE a (x TEXT DEFAULT ';');  -- trailing; comment
        CREATE TRIGGER t AFTER INSERT ON a BEGIN
            UPDATE a SET x = 'y';
        END;
        -- the end
        """
    )
    statements = list(db._statements(script))
    assert len(statements) == 2
    assert statements[1].rstrip().endswith("END;")
