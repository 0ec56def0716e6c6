"""Errors the store raises: conflicts a caller can act on, and a schema it must not touch.

    StoreError
    ├── SchemaTooNew     the database was written by a newer relay: refuse to start
    ├── UserExists       create_user on a user_id that is taken
    ├── RoomExists       create_room on a room_id that is taken
    ├── AliasExists      create_alias on an alias that is taken
    ├── EventExists      insert_event on an event_id already stored
    └── TokenExists      create_token on a registration token that exists

Rules kept: these carry primitives only (ids, versions), never HTTP status or Matrix
errcodes; the layers above map them (``UserExists`` → ``M_USER_IN_USE`` and so on).
Any other ``sqlite3.Error`` is a bug or a broken disk and propagates unchanged.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class for the store's own errors."""


class SchemaTooNew(StoreError):
    """The database's ``user_version`` is newer than the newest migration we ship."""

    def __init__(self, found: int, known: int) -> None:
        self.found = found
        self.known = known
        super().__init__(
            f"database schema version {found} is newer than this relay understands "
            f"({known}); upgrade the relay"
        )


class UserExists(StoreError):
    """A user with this user_id is already registered."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        super().__init__(f"user {user_id} already exists")


class RoomExists(StoreError):
    """A room with this room_id is already stored."""

    def __init__(self, room_id: str) -> None:
        self.room_id = room_id
        super().__init__(f"room {room_id} already exists")


class AliasExists(StoreError):
    """This room alias already points at a room."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        super().__init__(f"alias {alias} already exists")


class EventExists(StoreError):
    """An event with this event_id is already stored."""

    def __init__(self, event_id: str) -> None:
        self.event_id = event_id
        super().__init__(f"event {event_id} already stored")


class TokenExists(StoreError):
    """This registration token already exists (the token itself is not kept here)."""

    def __init__(self) -> None:
        super().__init__("registration token already exists")
