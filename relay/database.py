"""The trio side of the store: one writer connection, a few reader connections.

SQLite allows one writer at a time, so every write runs on the single writer
connection, one transaction per call, in a worker thread; the caller's
function receives the connection and never commits (store's rule). Reads run
on a small pool of their own connections (WAL lets them proceed beside the
writer). Writes are never abandoned on cancellation: a write that started
finishes, so an acknowledged write is never half-done.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import trio

from store import db as store_db

T = TypeVar("T")
READERS = 4


class Database:
    def __init__(self, path: Path, writer: sqlite3.Connection, synchronous: str) -> None:
        self.path = path
        self._writer = writer
        self._synchronous = synchronous
        self._write_limiter = trio.CapacityLimiter(1)
        self._read_limiter = trio.CapacityLimiter(READERS)
        self._readers: list[sqlite3.Connection] = []
        self._all_readers: list[sqlite3.Connection] = []

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` in one write transaction; returns once committed to disk."""

        def run() -> T:
            with store_db.write(self._writer):
                return fn(self._writer, *args)

        return await trio.to_thread.run_sync(run, limiter=self._write_limiter)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` on a reader connection, in one consistent snapshot."""
        async with self._read_limiter:
            conn = self._readers.pop() if self._readers else self._new_reader()
            try:

                def run() -> T:
                    with store_db.read(conn):
                        return fn(conn, *args)

                return await trio.to_thread.run_sync(run)
            finally:
                self._readers.append(conn)

    def _new_reader(self) -> sqlite3.Connection:
        conn = store_db.connect(self.path, synchronous=self._synchronous)
        self._all_readers.append(conn)
        return conn

    def close(self) -> None:
        for conn in self._all_readers:
            conn.close()
        self._writer.close()


@asynccontextmanager
async def open_database(path: Path, *, synchronous: str = "FULL") -> AsyncIterator[Database]:
    """Open (and migrate) the database at `path` for the life of the block."""
    writer = await trio.to_thread.run_sync(
        lambda: store_db.open_database(path, synchronous=synchronous)
    )
    database = Database(path, writer, synchronous)
    try:
        yield database
    finally:
        database.close()
