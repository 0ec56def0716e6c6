"""A consistent copy of the live database, and checking a database file whole.

Rules kept:

- ``copy_database`` uses SQLite's online backup API (https://www.sqlite.org/backup.html)
  in one step: it reads one snapshot of the source (WAL lets the relay keep writing
  meanwhile) and writes it to a new file, so the copy holds exactly the transactions
  committed when it started, never half of one.
- ``integrity_problems`` is ``PRAGMA integrity_check``: an empty list means "ok".
"""

from __future__ import annotations

import os
import sqlite3

from store import db
from store.private_files import make_private_file

__all__ = ["copy_database", "integrity_problems"]


def copy_database(source: sqlite3.Connection, dest_path: str | os.PathLike[str]) -> int:
    """Copy the database `source` is connected to into a new file `dest_path` (0600);
    the copy's schema version. `source` must not be in a transaction."""
    make_private_file(dest_path)
    dest = sqlite3.connect(os.fspath(dest_path), isolation_level=None)
    try:
        source.backup(dest, pages=-1)
        # The copy is a single file: no WAL beside it to lose when it is archived.
        dest.execute("PRAGMA journal_mode = DELETE")
        return db.schema_version(dest)
    finally:
        dest.close()


def integrity_problems(conn: sqlite3.Connection) -> list[str]:
    """What ``PRAGMA integrity_check`` reports, or [] for a sound database."""
    rows = [str(row[0]) for row in conn.execute("PRAGMA integrity_check").fetchall()]
    return [] if rows == ["ok"] else rows
