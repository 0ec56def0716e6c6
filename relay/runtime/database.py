"""The trio side of the store: one writer connection, a few reader connections.

SQLite allows one writer at a time, so every write runs on the single writer
connection, in a worker thread; the caller's function receives the connection and
never commits (store's rule). Reads run on a few reader threads of their own, each with
its own connection (WAL lets them proceed beside the writer), fed from one queue.

Group commit: with ``synchronous=FULL`` every COMMIT is an fsync, so writes that
arrive while the writer is busy are run together, in arrival order, in ONE
transaction with ONE commit. Each call's function runs inside its own SAVEPOINT:
a call that raises rolls back only its own changes and gets its own exception; the
others are unaffected. Every call returns only after the shared COMMIT has returned,
so "returned" still means "on disk"; if the COMMIT fails, every call of the group
fails. A lone write is a plain ``BEGIN IMMEDIATE`` ... ``COMMIT`` as before.

What a write's function learns about the database must outlive it only once it is on
disk: the function hands such work (filling an in-memory cache) to ``after_commit``,
which runs it after the COMMIT that covers the call has returned, and drops it if the
call rolls back (its own exception, its savepoint undone, or the group's COMMIT failing).
Outside a write it runs at once: a read sees only committed data.

A read of a few rows by key (the access token of a request) may run on the trio thread
itself (``read_now``), on a connection of its own: in WAL a reader never waits for the
writer, so it is shorter than the hand-off to a worker thread it saves. Should SQLite
answer busy (a crashed process's WAL being recovered) it goes to a worker thread as any
read.

Writes are never abandoned on cancellation: a write that started finishes (and its
caller gets its result, as ``trio.to_thread.run_sync`` does), so an acknowledged
write is never half-done; a write cancelled before it started is dropped.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import outcome
import trio

from store import db as store_db

T = TypeVar("T")
log = logging.getLogger(__name__)
READERS = 4
#: SQLite's page cache of each reader connection (the default is 2000 KiB each). The
#: writer keeps the default: it walks the indexes it updates on every write. What the
#: readers miss comes from the operating system's file cache, which the whole box
#: shares and which it reclaims under pressure; the page caches never shrink.
READER_CACHE_KIB = 1024
#: `read_now` reads a few rows by key: a small cache is enough.
NOW_CACHE_KIB = 256
#: How long `read_now` lets SQLite wait on the trio thread before it takes a worker.
NOW_BUSY_TIMEOUT_MS = 20
#: At most this many calls share one transaction (bounds the latency of the group).
MAX_GROUP = 64
_SAVEPOINT = "relay_group_commit"

#: The ``after_commit`` list of the write call running on this thread, if any (the writer
#: runs in a worker thread, one call at a time).
_running = threading.local()


def after_commit(callback: Callable[[], None]) -> None:
    """Run ``callback`` once the write running on this thread has committed; never if it
    rolls back. Outside a write (a read, a plain ``store.write`` block), at once."""
    pending: list[Callable[[], None]] | None = getattr(_running, "pending", None)
    if pending is None:
        callback()
    else:
        pending.append(callback)


class _Write:
    """One queued `Database.write` call."""

    __slots__ = ("after", "args", "done", "error", "fn", "started", "value")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args
        self.started = False
        self.done = trio.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        #: What the call's function asked to run once it is committed (`after_commit`).
        self.after: list[Callable[[], None]] = []

    def invoke(self, conn: sqlite3.Connection) -> Any:
        """The call's function, collecting its `after_commit` work afresh."""
        self.after = []
        _running.pending = self.after
        try:
            return self.fn(conn, *self.args)
        finally:
            _running.pending = None

    def committed(self) -> None:
        """Its transaction committed: run what it left for after the commit."""
        after, self.after = self.after, []
        for callback in after:
            try:
                callback()
            except Exception:
                # The write is on disk and its caller must hear so; a cache left unfilled
                # only costs a later read.
                log.exception("after-commit work of a write failed")

    def run_alone(self, conn: sqlite3.Connection) -> None:
        """In its own transaction (store_db.write)."""
        try:
            with store_db.write(conn):
                self.value = self.invoke(conn)
        except BaseException as exc:
            self.after = []
            self.error = exc
            return
        self.committed()

    def unwrap(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def _run_group(conn: sqlite3.Connection, group: list[_Write]) -> None:
    """Run every call of `group`, each in a savepoint, then one COMMIT (writer thread)."""
    if len(group) == 1:
        group[0].run_alone(conn)
        return
    conn.execute("BEGIN IMMEDIATE")
    ran: list[_Write] = []
    try:
        for index, call in enumerate(group):
            conn.execute(f"SAVEPOINT {_SAVEPOINT}")
            try:
                call.value = call.invoke(conn)
            except BaseException as exc:
                call.error = exc
                call.after = []  # its savepoint (or the whole transaction) is undone
                if not conn.in_transaction:
                    # SQLite rolled the whole transaction back (disk full, I/O error,
                    # ...): the calls before this one are undone too. Run each of them,
                    # and the rest of the group, in a transaction of its own.
                    for other in ran + group[index + 1 :]:
                        other.value = None
                        other.run_alone(conn)
                    return
                conn.execute(f"ROLLBACK TO {_SAVEPOINT}")
            conn.execute(f"RELEASE {_SAVEPOINT}")
            if call.error is None:
                ran.append(call)
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        for call in group:  # nothing of the group is on disk
            call.after = []
            if call.error is None:
                call.value, call.error = None, exc
        return
    for call in ran:
        call.committed()


class _Read:
    """One `Database.read` call: run on a reader thread, its outcome delivered on trio's."""

    __slots__ = ("args", "done", "fn", "result")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args
        self.done = trio.Event()
        self.result: outcome.Outcome[Any] | None = None

    def run(self, conn: sqlite3.Connection) -> Any:
        with store_db.read(conn):
            return self.fn(conn, *self.args)

    def deliver(self, result: outcome.Outcome[Any]) -> None:
        self.result = result
        self.done.set()


class _Readers:
    """`READERS` worker threads, each with a connection of its own, taking reads from one
    queue: a thread that is busy takes the next read when it is done, so a burst of reads
    (50 long-polls woken by one message) wakes at most `READERS` threads, not one per
    read; each result comes back through the trio token."""

    def __init__(self, path: Path, synchronous: str, token: trio.lowlevel.TrioToken) -> None:
        self._jobs: queue.SimpleQueue[_Read | None] = queue.SimpleQueue()
        self._token = token
        self.connections = [store_db.connect(path, synchronous=synchronous) for _ in range(READERS)]
        for conn in self.connections:
            conn.execute(f"PRAGMA cache_size = -{READER_CACHE_KIB}")
        self._threads = [
            threading.Thread(target=self._work, args=(conn,), name="relay-reader", daemon=True)
            for conn in self.connections
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: _Read) -> None:
        self._jobs.put(job)

    def _work(self, conn: sqlite3.Connection) -> None:
        while (job := self._jobs.get()) is not None:
            result = outcome.capture(job.run, conn)
            try:
                self._token.run_sync_soon(job.deliver, result)
            except trio.RunFinishedError:
                return

    def close(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()
        for conn in self.connections:
            conn.close()


class Database:
    def __init__(self, path: Path, writer: sqlite3.Connection, synchronous: str) -> None:
        self.path = path
        self._writer = writer
        self._synchronous = synchronous
        self._write_limiter = trio.CapacityLimiter(1)
        self._queued: list[_Write] = []
        #: The reader threads (started by the first read, which has the trio token).
        self._readers: _Readers | None = None
        #: Every reader connection (the readers', `read_now`'s): tests trace them.
        self._all_readers: list[sqlite3.Connection] = []
        #: The connection of `read_now` (trio thread only).
        self._now: sqlite3.Connection | None = None

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` in a write transaction (possibly shared with other calls,
        each in its own savepoint); returns once committed to disk."""
        call = _Write(fn, args)
        self._queued.append(call)
        try:
            # Whoever gets the writer runs everything queued so far as one group; a call
            # that someone else's group already ran just passes through.
            async with self._write_limiter:
                if not call.started:
                    group = self._queued[:MAX_GROUP]
                    del self._queued[:MAX_GROUP]
                    for queued in group:
                        queued.started = True
                    try:
                        # Shielded: once taken from the queue, a group always runs.
                        with trio.CancelScope(shield=True):
                            await trio.to_thread.run_sync(_run_group, self._writer, group)
                    finally:
                        for queued in group:
                            queued.done.set()
        except trio.Cancelled:
            if not call.started:
                self._queued.remove(call)
                raise
            # Started in another call's group: it finishes, and this caller learns how.
            with trio.CancelScope(shield=True):
                await call.done.wait()
        if not call.done.is_set():
            with trio.CancelScope(shield=True):
                await call.done.wait()
        return call.unwrap()

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` on a reader connection, in one consistent snapshot.
        A read that started finishes (as `trio.to_thread.run_sync` without abandoning):
        its caller gets its result, and a cancellation is seen at the next checkpoint."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._readers is None:
            self._readers = _Readers(
                self.path, self._synchronous, trio.lowlevel.current_trio_token()
            )
            self._all_readers.extend(self._readers.connections)
        call = _Read(fn, args)
        self._readers.submit(call)
        with trio.CancelScope(shield=True):
            await call.done.wait()
        assert call.result is not None
        return call.result.unwrap()

    async def read_now(self, fn: Callable[..., T], *args: Any) -> T:
        """`read`, on the trio thread (no hand-off): only for `fn` running ONE statement
        that reads a few rows by key (so it needs no transaction to be consistent).
        Busy (see the module docstring): as `read`, in a worker thread."""
        if self._now is None:
            self._now = store_db.connect(self.path, synchronous=self._synchronous)
            self._now.execute(f"PRAGMA busy_timeout = {NOW_BUSY_TIMEOUT_MS}")
            self._now.execute(f"PRAGMA cache_size = -{NOW_CACHE_KIB}")
            self._all_readers.append(self._now)
        try:
            # One statement is its own snapshot: no BEGIN ... COMMIT around it.
            return fn(self._now, *args)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
        return await self.read(fn, *args)

    def close(self) -> None:
        if self._readers is not None:
            self._readers.close()
        if self._now is not None:
            self._now.close()
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
