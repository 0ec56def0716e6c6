"""Private files: the relay's data (messages, keys, media) is readable by its own user only.

Rules kept here, for every file the relay creates in its data dir:

- Files are 0600 and directories 0700, whatever the umask: the mode is set with
  `fchmod`/`chmod` after creating, not left to `open`'s mode argument (which the umask
  masks), and an existing file or directory is brought to it too.
- SQLite makes a database's `-wal` and `-shm` with the database file's own mode, so
  `connect` creates `relay.db` 0600 before SQLite opens it (`make_private_file`) and
  fixes the side files it finds.

This module lives in `store/` because `store/db.py` creates `relay.db` and store imports
nothing from relay; the rest of the relay (config, keys, TLS, media) calls it from here.
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def open_private(path: str | os.PathLike[str], flags: int) -> int:
    """`os.open(path, flags | O_CREAT)`, the file then 0600; returns the descriptor."""
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def make_private_file(path: str | os.PathLike[str]) -> None:
    """Create `path` empty if it is missing; either way it ends 0600.

    An existing file is never opened: it may be a database this process already has
    open, and closing *any* descriptor of a file drops every POSIX lock the process
    holds on it (SQLite's among them: another process then thinks it is the last
    connection and deletes the WAL under us)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        restrict_file(path)
        return
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def restrict_file(path: str | os.PathLike[str]) -> None:
    """Bring an existing file to 0600 (nothing if it is missing)."""
    try:
        os.chmod(path, FILE_MODE)
    except FileNotFoundError:
        pass


def write_private(path: str | os.PathLike[str], data: bytes, *, exclusive: bool = False) -> None:
    """Write `data` to a 0600 file, fsynced; `exclusive` refuses an existing file."""
    flags = os.O_WRONLY | os.O_TRUNC | (os.O_EXCL if exclusive else 0)
    with os.fdopen(open_private(path, flags), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def make_private_dir(path: str | os.PathLike[str]) -> list[Path]:
    """mkdir -p with every directory it creates 0700, and `path` itself 0700 even if it
    existed; the directories it created, outermost first."""
    directory = Path(path)
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    created = list(reversed(missing))
    for each in created:
        try:
            each.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass
        os.chmod(each, DIR_MODE)
    if not created:
        os.chmod(directory, DIR_MODE)
    return created
