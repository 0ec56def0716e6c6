"""What of an event the full-text search index keeps (store/search.py), and when it lets
go of it.

Rules kept (Synapse's choices where the spec is silent):

- Three keys, one per event type: an `m.room.message`'s `content.body`, an
  `m.room.name`'s `content.name`, an `m.room.topic`'s `content.topic`; a value that is no
  string is not indexed. Nothing else is: an `m.room.encrypted` event has no text the
  server can read, and is never indexed.
- Every path that stores an event indexes it in the same write (`insert_pdu_txn`:
  local sends, federation, backfill, outliers that later join the timeline); a rejected
  event is not indexed. The searches leave out what is in no timeline.
- A redacted event is dropped from the index in the write that makes the redaction
  apply (`forget_redacted_txn`, after the event's state is recorded: whether a
  redaction applies is `RoomService.redacted_by_txn`'s rule, which needs it). Searches
  still ask the same rule of every hit (a redaction can apply later, e.g. once its
  target arrives), so a redacted event is never found.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relay.events.pdu import Pdu
from store import Connection
from store import search as store_search

if TYPE_CHECKING:
    from relay.rooms.service import RoomService

#: Event type -> the content key whose text is indexed (and the `keys` name for it).
INDEXED: dict[str, tuple[str, str]] = {
    "m.room.message": ("body", "content.body"),
    "m.room.name": ("name", "content.name"),
    "m.room.topic": ("topic", "content.topic"),
}
KEYS = tuple(key for _, key in INDEXED.values())


def search_entry(pdu: Pdu) -> tuple[str, str] | None:
    """(key, text) of the event for the index, or None if it has nothing searchable."""
    found = INDEXED.get(pdu.type)
    if found is None:
        return None
    value = pdu.content.get(found[0])
    return (found[1], value) if isinstance(value, str) else None


def index_pdu_txn(conn: Connection, pdu: Pdu) -> None:
    """Index a stored event's text, if it has any."""
    entry = search_entry(pdu)
    if entry is not None:
        store_search.insert_search_entry(
            conn, event_id=pdu.event_id, room_id=pdu.room_id, key=entry[0], value=entry[1]
        )


def forget_redacted_txn(conn: Connection, rooms: RoomService, pdu: Pdu) -> None:
    """After `pdu` is stored with its state: drop from the index the event it redacts,
    or `pdu` itself when a redaction stored before it applies to it."""
    if pdu.type == "m.room.redaction" and pdu.redacts:
        if rooms.redacted_by_txn(conn, pdu.redacts) is not None:
            store_search.delete_search_entry(conn, pdu.redacts)
    elif pdu.type in INDEXED and rooms.redacted_by_txn(conn, pdu.event_id) is not None:
        store_search.delete_search_entry(conn, pdu.event_id)
