"""Splitting a list of ids into batches for ``IN (...)`` queries.

One rule for every store module: ids are de-duplicated (first occurrence kept) and
sent at most ``BATCH_SIZE`` at a time, well under SQLite's limit on bound variables
(32,766 since 3.32, but 999 on older builds).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from typing import TypeVar

__all__ = ["BATCH_SIZE", "id_batches"]

BATCH_SIZE = 500

_Id = TypeVar("_Id", bound=Hashable)


def id_batches(items: Iterable[_Id]) -> Iterator[list[_Id]]:
    """The distinct ``items`` in order, in lists of at most ``BATCH_SIZE``."""
    batch: list[_Id] = []
    for item in dict.fromkeys(items):
        batch.append(item)
        if len(batch) == BATCH_SIZE:
            yield batch
            batch = []
    if batch:
        yield batch
