"""relay.runtime.database: concurrent writes share one transaction (group commit), each call in
its own savepoint, so one failing call rolls back only itself."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest
import trio
import trio.testing

from relay.runtime.database import Database, after_commit, open_database


def _setup(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY)")


def _insert(conn: sqlite3.Connection, n: int) -> int:
    conn.execute("INSERT INTO t (n) VALUES (?)", (n,))
    return n


def _insert_then_fail(conn: sqlite3.Connection, n: int) -> None:
    conn.execute("INSERT INTO t (n) VALUES (?)", (n,))
    raise ValueError(f"call {n} fails")


def _rows(conn: sqlite3.Connection) -> list[int]:
    return [row[0] for row in conn.execute("SELECT n FROM t ORDER BY n")]


def _commits(db: Database) -> list[int]:
    """Wrap the writer so every COMMIT issued on it is counted."""
    seen: list[int] = []
    db._writer.set_trace_callback(lambda sql: seen.append(1) if sql == "COMMIT" else None)
    return seen


async def test_concurrent_writes_share_commits_and_a_failure_stays_its_own(
    tmp_path: Path,
) -> None:
    async with open_database(tmp_path / "g.db", synchronous="NORMAL") as db:
        await db.write(_setup)
        commits = _commits(db)
        results: dict[int, object] = {}

        async def one(n: int) -> None:
            try:
                if n % 5 == 0:
                    await db.write(_insert_then_fail, n)
                    results[n] = "no error"
                else:
                    results[n] = await db.write(_insert, n)
            except ValueError as exc:
                results[n] = str(exc)

        async with trio.open_nursery() as nursery:
            for n in range(1, 41):
                nursery.start_soon(one, n)

        for n in range(1, 41):
            assert results[n] == (f"call {n} fails" if n % 5 == 0 else n)
        assert await db.read(_rows) == [n for n in range(1, 41) if n % 5]
        # 32 successful calls started together: far fewer commits than calls.
        assert 1 <= len(commits) < 32


async def test_a_lone_failing_write_rolls_back(tmp_path: Path) -> None:
    async with open_database(tmp_path / "g.db", synchronous="NORMAL") as db:
        await db.write(_setup)
        with pytest.raises(ValueError):
            await db.write(_insert_then_fail, 1)
        assert await db.read(_rows) == []


async def test_a_failing_commit_fails_every_call_of_the_group(tmp_path: Path) -> None:
    async with open_database(tmp_path / "g.db", synchronous="NORMAL") as db:
        await db.write(
            lambda conn: conn.execute(
                "CREATE TABLE t (n INTEGER PRIMARY KEY,"
                " p INTEGER REFERENCES t (n) DEFERRABLE INITIALLY DEFERRED)"
            )
        )

        def dangling(conn: sqlite3.Connection) -> None:
            # Violates the deferred foreign key: only COMMIT notices.
            conn.execute("INSERT INTO t (n, p) VALUES (100, 999)")

        outcomes: list[str] = []

        async def call(fn: object, *args: object) -> None:
            try:
                await db.write(fn, *args)  # type: ignore[arg-type]
                outcomes.append("ok")
            except sqlite3.IntegrityError:
                outcomes.append("failed")

        async with trio.open_nursery() as nursery:
            for n in range(1, 4):
                nursery.start_soon(call, _insert, n)
            nursery.start_soon(call, dangling)
        # Whatever was grouped with the bad call failed with it; nothing acknowledged
        # is missing, nothing failed is stored.
        stored = await db.read(_rows)
        assert outcomes.count("ok") == len(stored)
        assert 100 not in stored
        assert "failed" in outcomes


async def test_a_write_cancelled_before_it_started_is_dropped(tmp_path: Path) -> None:
    async with open_database(tmp_path / "g.db", synchronous="NORMAL") as db:
        await db.write(_setup)
        release = trio.Event()

        def blocking(conn: sqlite3.Connection) -> None:
            trio.from_thread.run(release.wait)

        async def cancelled_write(scope: trio.CancelScope) -> None:
            with scope:
                await db.write(_insert, 7)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(db.write, blocking)
            await trio.testing.wait_all_tasks_blocked()
            scope = trio.CancelScope()
            nursery.start_soon(cancelled_write, scope)
            await trio.testing.wait_all_tasks_blocked()  # queued behind `blocking`
            scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
            release.set()
        assert await db.read(_rows) == []
        assert await db.write(_insert, 8) == 8
        assert await db.read(_rows) == [8]


async def test_after_commit_work_runs_once_committed_and_never_for_a_rolled_back_call(
    tmp_path: Path,
) -> None:
    """Three calls share one transaction (queued behind a blocked write); the one that
    raises loses its after-commit work, the others' runs once their rows are on disk."""
    async with open_database(tmp_path / "g.db", synchronous="NORMAL") as db:
        await db.write(_setup)
        release = trio.Event()
        seen: dict[int, list[int]] = {}

        def blocking(conn: sqlite3.Connection) -> None:
            trio.from_thread.run(release.wait)

        def insert_and_note(conn: sqlite3.Connection, n: int, fail: bool) -> None:
            conn.execute("INSERT INTO t (n) VALUES (?)", (n,))

            def note() -> None:
                # What another connection sees at the time: the commit is behind us.
                other = sqlite3.connect(tmp_path / "g.db")
                try:
                    seen[n] = _rows(other)
                finally:
                    other.close()

            after_commit(note)
            if fail:
                raise ValueError(n)

        async def call(n: int, fail: bool) -> None:
            with contextlib.suppress(ValueError):
                await db.write(insert_and_note, n, fail)

        commits = _commits(db)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(db.write, blocking)
            await trio.testing.wait_all_tasks_blocked()
            for n, fail in ((1, False), (2, True), (3, False)):
                nursery.start_soon(call, n, fail)
            await trio.testing.wait_all_tasks_blocked()  # all three queued behind it
            release.set()
        assert len(commits) == 2  # the blocked write, then the group of three
        assert seen == {1: [1, 3], 3: [1, 3]}
        assert await db.read(_rows) == [1, 3]


def test_after_commit_outside_a_write_runs_at_once() -> None:
    ran: list[int] = []
    after_commit(lambda: ran.append(1))
    assert ran == [1]
