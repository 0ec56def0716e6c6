"""relay.runtime.housekeeping: old dedupe records go, recent ones stay; the node runs it."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import pytest
import trio

from relay.runtime.database import open_database
from relay.runtime.housekeeping import (
    FEDERATION_TXN_RETENTION_MS,
    REMOTE_TO_DEVICE_RETENTION_MS,
    Housekeeping,
    housekeep,
)
from store import db as store_db
from store import device_inbox, fed_txns, txn_ids
from tests.integration.conftest import make_relay

NOW = 10_000 * 24 * 3600 * 1000
# Client transaction ids are never pruned: a year-old one is still there.
CLIENT_TXN_AGE_MS = 365 * 24 * 3600 * 1000


def _fill(conn: sqlite3.Connection, now: int, margin: int = 1) -> None:
    """One row ``margin`` ms older and one ``margin`` ms newer than its window, in each
    table."""
    for name, age in (("old", margin), ("new", -margin)):
        fed_txns.put_txn(
            conn,
            origin="remote.example",
            txn_id=name,
            response="{}",
            now_ms=now - FEDERATION_TXN_RETENTION_MS - age,
        )
        device_inbox.claim_remote_message(
            conn, "remote.example", name, now - REMOTE_TO_DEVICE_RETENTION_MS - age
        )
        txn_ids.put_txn(
            conn,
            user_id="@a:k",
            device_id="D",
            scope="send:!r:k",
            txn_id=name,
            result="$e",
            now_ms=now - CLIENT_TXN_AGE_MS - age,
        )
        device_inbox.claim_txn(conn, "@a:k", "D", name, now - CLIENT_TXN_AGE_MS - age)


def _left(conn: sqlite3.Connection) -> dict[str, list[str]]:
    def ids(sql: str) -> list[str]:
        return sorted(r[0] for r in conn.execute(sql))

    return {
        "federation_txn_ids": ids("SELECT txn_id FROM federation_txn_ids"),
        "device_inbox_remote_messages": ids("SELECT message_id FROM device_inbox_remote_messages"),
        "client_txn_ids": ids("SELECT txn_id FROM client_txn_ids"),
        "device_inbox_txns": ids("SELECT txn_id FROM device_inbox_txns"),
    }


# What a run leaves of _fill's rows: the new ones, and every client transaction id.
PRUNED = {
    "federation_txn_ids": ["new"],
    "device_inbox_remote_messages": ["new"],
    "client_txn_ids": ["new", "old"],
    "device_inbox_txns": ["new", "old"],
}


async def test_housekeep_deletes_old_rows_and_keeps_new_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "relay.db"
    async with open_database(path) as database:
        await database.write(_fill, NOW)
        with caplog.at_level(logging.INFO, logger="relay.runtime.housekeeping"):
            removed = await housekeep(database, now=NOW)
            assert removed == {
                "federation_txn_ids": 1,
                "device_inbox_remote_messages": 1,
            }
            assert await database.read(_left) == PRUNED
            lines = [r for r in caplog.records if r.name == "relay.runtime.housekeeping"]
            assert len(lines) == 1 and lines[0].levelno == logging.INFO
            assert "1 from federation_txn_ids" in lines[0].getMessage()
            # Nothing to delete: nothing deleted, nothing logged.
            caplog.clear()
            assert set((await housekeep(database, now=NOW)).values()) == {0}
            assert not [r for r in caplog.records if r.name == "relay.runtime.housekeeping"]


async def test_housekeep_refreshes_the_planner_statistics(tmp_path: Path) -> None:
    # A table that grew since its statistics were taken plans on stale figures; SQLite's
    # own "PRAGMA optimize" re-analyzes what needs it, and housekeeping runs it.
    async with open_database(tmp_path / "relay.db") as database:
        statements: list[str] = []
        database._writer.set_trace_callback(statements.append)
        try:
            await housekeep(database, now=NOW)
        finally:
            database._writer.set_trace_callback(None)
        assert "PRAGMA optimize" in statements


async def test_housekeeping_task_runs_every_interval_and_cancels(tmp_path: Path) -> None:
    async with open_database(tmp_path / "relay.db") as database:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                await nursery.start(Housekeeping(database, interval_s=0.05).serve)
                for _ in range(2):  # a row written after the first run goes in a later one
                    await database.write(_fill, int(time.time() * 1000))
                    await database.write(
                        lambda conn: conn.execute(
                            "UPDATE federation_txn_ids SET received_ts = 0 WHERE txn_id = 'new'"
                        )
                    )
                    with trio.fail_after(5):
                        while "new" in (await database.read(_left))["federation_txn_ids"]:
                            await trio.sleep(0.02)
                scope.cancel()
        assert scope.cancelled_caught


@pytest.mark.integration
def test_relay_runs_housekeeping(tmp_path: Path) -> None:
    relay = make_relay(tmp_path)
    relay.init()
    config = relay.data_dir / "relay.toml"
    text = config.read_text()
    assert "housekeeping_interval_seconds = 3600.0" in text  # the template documents the key
    config.write_text(
        text.replace(
            "housekeeping_interval_seconds = 3600.0", "housekeeping_interval_seconds = 0.2"
        )
    )
    relay.start()
    try:
        conn = store_db.open_database(relay.data_dir / "relay.db")
        try:
            with store_db.write(conn):
                _fill(conn, int(time.time() * 1000), 3600 * 1000)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with store_db.read(conn):
                    left = _left(conn)
                if left == PRUNED:
                    break
                time.sleep(0.1)
            assert left == PRUNED, (left, relay.log())
        finally:
            conn.close()
        assert relay.stop() == 0
        assert "housekeeping removed" in relay.log()
    finally:
        relay.kill()
