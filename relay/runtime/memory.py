"""How the relay keeps its resident memory flat: the C allocator's side.

glibc's malloc gives each thread that allocates its own arena (up to 8 per core), and
memory freed in an arena goes back to the system only from its top. The relay's worker
threads (the database's readers and writer) each build large short-lived objects (a
sync answer, a page of history), so with one arena each the freed holes add up to tens
of MiB that stay resident. Two arenas bound that; `trim` hands freed pages back.

Both are no-ops where the C library is not glibc (musl, macOS): nothing there to tune.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

#: glibc's mallopt parameter number for the arena count (malloc.h: M_ARENA_MAX).
_M_ARENA_MAX = -8
ARENAS = 2


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def limit_arenas(arenas: int = ARENAS) -> bool:
    """At most `arenas` malloc arenas for threads started from now on (call at start,
    before the worker threads). False where it cannot be set."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(_M_ARENA_MAX, arenas) == 1)


def trim() -> bool:
    """Give the freed pages of every arena back to the system (housekeeping)."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))
