"""Identifiers: event ids, v12 room ids, and the grammar of user ids, server
names, room aliases and room ids.

- An event id is, by room version: v1/v2 ``$opaque:domain``, minted by the
  server that built the event and carried in it (``event_id``); v3 ``$`` +
  standard unpadded base64 of the reference hash; v4+ the same in URL-safe
  base64. From v3 on it is never stored inside the event.
- Events reference others (``prev_events``, ``auth_events``) by id (v3+) or by
  ``[event_id, {hashes}]`` pairs (v1/v2); ``referenced_ids`` reads both.
- In room v12 the room id is the create event's id with ``!`` for ``$``.
- User ids: new local users get the strict localpart grammar
  (``a-z 0-9 . _ = - / +``); ids of remote users are checked with the
  historical grammar (anything but ``:`` and NUL), as the spec requires servers
  to accept. Every id is at most 255 bytes including sigil and domain.
- What a local client names (room ids, user ids, event types, state keys,
  transaction ids) never holds a control character (``has_control_character``):
  the historical grammar tolerates them in remote ids, our own users get none.

Spec: https://spec.matrix.org/v1.16/appendices/#identifier-grammar
https://spec.matrix.org/v1.16/rooms/v1/#event-ids,
https://spec.matrix.org/v1.16/rooms/v3/#event-ids
and https://spec.matrix.org/v1.16/rooms/v4/#event-ids
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from typing import Any

from relay.events.hashes import reference_hash
from relay.events.room_versions import RoomVersion
from relay.events.unpadded_base64 import decode_base64, encode_base64

__all__ = [
    "MAX_ID_BYTES",
    "decode_base64",
    "encode_base64",
    "event_id",
    "has_control_character",
    "is_valid_event_id",
    "is_valid_localpart",
    "is_valid_room_alias",
    "is_valid_room_id",
    "is_valid_server_name",
    "is_valid_user_id",
    "localpart_of",
    "mint_event_id",
    "parse_user_id",
    "referenced_ids",
    "room_id_from_create_event",
    "server_of",
]

#: Longest user id, room id, alias or event id, in UTF-8 bytes.
MAX_ID_BYTES = 255

_STRICT_LOCALPART = re.compile(r"[a-z0-9._=\-/+]+")
_PORT = re.compile(r"[0-9]{1,5}")
_DNS_NAME = re.compile(r"[A-Za-z0-9.\-]{1,255}")
_IPV4_SHAPE = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
_IPV6_CHARS = re.compile(r"[0-9A-Fa-f:.]{2,45}")
#: C0 controls (NUL included), DEL and C1 controls: Unicode category Cc.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: 32 bytes of SHA-256 in unpadded URL-safe base64 are 43 characters.
_HASH_ID = re.compile(r"[A-Za-z0-9_\-]{43}")
#: The same in the standard alphabet (room v3 event ids).
_STD_HASH_ID = re.compile(r"[A-Za-z0-9+/]{43}")


def event_id(event: dict[str, Any], room_version: RoomVersion) -> str:
    """The event id of ``event``: the ``event_id`` it carries (v1/v2, "" if none), else
    ``$`` + unpadded base64 of its reference hash (URL-safe from v4)."""
    if room_version.event_id_in_event:
        carried = event.get("event_id")
        return carried if isinstance(carried, str) else ""
    urlsafe = room_version.urlsafe_event_ids
    return "$" + encode_base64(reference_hash(event, room_version), urlsafe=urlsafe)


def mint_event_id(server_name: str) -> str:
    """A fresh v1/v2 event id ``$opaque:server_name`` (the opaque part is random)."""
    return f"${secrets.token_urlsafe(12)}:{server_name}"


def referenced_ids(value: object) -> list[str]:
    """The event ids of a ``prev_events``/``auth_events`` value: plain ids (v3+) or the
    first element of ``[event_id, {hashes}]`` pairs (v1/v2); malformed entries skipped."""
    if not isinstance(value, list):
        return []
    ids: list[str] = []
    for entry in value:
        if isinstance(entry, str):
            ids.append(entry)
        elif isinstance(entry, list) and entry and isinstance(entry[0], str):
            ids.append(entry[0])
    return ids


def room_id_from_create_event(create_event: dict[str, Any], room_version: RoomVersion) -> str:
    """The v12 room id a create event makes: its event id with the ``!`` sigil.

    Raises:
        ValueError: the room version has domain room ids, or the event is not a create.
    """
    if not room_version.room_id_is_create_event_hash:
        raise ValueError(f"room version {room_version.identifier} does not hash room ids")
    if create_event.get("type") != "m.room.create":
        raise ValueError("not an m.room.create event")
    return room_id_of_create(event_id(create_event, room_version))


def room_id_of_create(create_event_id: str) -> str:
    """A v12 room's id, from its create event's id: the same hash with the ``!`` sigil."""
    return "!" + create_event_id[1:]


def create_event_id_of(room_id: str) -> str:
    """A v12 room's create event id, from the room id: the same hash with the ``$`` sigil."""
    return "$" + room_id[1:]


def _fits(identifier: str) -> bool:
    return len(identifier.encode("utf-8", "surrogatepass")) <= MAX_ID_BYTES


def _is_historical_opaque(text: str) -> bool:
    """Any non-surrogate code points except ``:`` and NUL (may be empty)."""
    return ":" not in text and "\x00" not in text and not _has_surrogate(text)


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def has_control_character(text: str) -> bool:
    """Whether ``text`` holds a control character (U+0000-U+001F, U+007F-U+009F)."""
    return _CONTROL.search(text) is not None


def server_of(identifier: str) -> str:
    """The server part of a user id, room alias or other ``sigil localpart:server``
    identifier (port included); "" when it has none. No validation."""
    return identifier.partition(":")[2]


def localpart_of(identifier: str) -> str:
    """The part between the sigil and the first colon of a user id or room alias.
    No validation."""
    return identifier[1:].partition(":")[0]


def is_valid_localpart(localpart: str, *, historical: bool = False) -> bool:
    """Whether ``localpart`` is a valid user id localpart.

    ``historical=False`` (registering local users): non-empty, ``a-z 0-9 . _ = - / +``.
    ``historical=True`` (remote senders): non-empty, anything but ``:``, NUL and surrogates.
    """
    if historical:
        # The spec's grammar is `1*user_id_char` for the historical set too: never empty.
        return bool(localpart) and _is_historical_opaque(localpart)
    return _STRICT_LOCALPART.fullmatch(localpart) is not None


def is_valid_server_name(server_name: str) -> bool:
    """Whether ``server_name`` matches ``hostname [":" port]`` of the spec."""
    if server_name.startswith("["):
        end = server_name.find("]")
        if end == -1:
            return False
        host, rest = server_name[1:end], server_name[end + 1 :]
        if not _IPV6_CHARS.fullmatch(host):
            return False
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
    else:
        host, sep, port = server_name.partition(":")
        rest = sep + port
        if not _DNS_NAME.fullmatch(host):
            return False
        if _IPV4_SHAPE.fullmatch(host) and any(int(p) > 255 for p in host.split(".")):
            return False
    if rest:
        return rest.startswith(":") and _PORT.fullmatch(rest[1:]) is not None
    return True


def parse_user_id(user_id: str, *, historical: bool = True) -> tuple[str, str]:
    """Split ``@localpart:server_name`` into ``(localpart, server_name)``.

    ``historical=True`` (default) accepts the historical localparts other
    servers may send; pass ``historical=False`` for ids we mint.

    Raises:
        ValueError: not a valid user id.
    """
    if not user_id.startswith("@") or not _fits(user_id):
        raise ValueError(f"invalid user id: {user_id!r}")
    localpart, sep, server_name = user_id[1:].partition(":")
    if (
        not sep
        or not is_valid_localpart(localpart, historical=historical)
        or not is_valid_server_name(server_name)
    ):
        raise ValueError(f"invalid user id: {user_id!r}")
    return localpart, server_name


def is_valid_user_id(user_id: str, *, historical: bool = True) -> bool:
    """Whether ``parse_user_id`` accepts ``user_id``."""
    try:
        parse_user_id(user_id, historical=historical)
    except ValueError:
        return False
    return True


def _is_sigil_opaque_domain(identifier: str, sigil: str) -> bool:
    if not identifier.startswith(sigil) or not _fits(identifier):
        return False
    opaque, sep, server_name = identifier[1:].partition(":")
    return bool(sep) and _is_historical_opaque(opaque) and is_valid_server_name(server_name)


def is_valid_room_alias(alias: str) -> bool:
    """Whether ``alias`` is ``#localpart:server_name`` within 255 bytes."""
    return _is_sigil_opaque_domain(alias, "#")


def is_valid_room_id(room_id: str, room_version: RoomVersion) -> bool:
    """Whether ``room_id`` has the form ``room_version`` uses.

    v12: ``!`` + 43 URL-safe base64 characters (a reference hash);
    earlier: ``!opaque:server_name``.
    """
    if room_version.room_id_is_create_event_hash:
        return room_id.startswith("!") and _is_hash_id(room_id[1:])
    return _is_sigil_opaque_domain(room_id, "!")


def is_valid_room_id_of_any_version(room_id: str) -> bool:
    """Whether ``room_id`` has a form some room version uses (where the version is not
    known: a filter's ``rooms``)."""
    return (room_id.startswith("!") and _is_hash_id(room_id[1:])) or _is_sigil_opaque_domain(
        room_id, "!"
    )


def is_valid_event_id(event_id_: str, room_version: RoomVersion | None = None) -> bool:
    """Whether ``event_id_`` has the form ``room_version`` uses: ``$opaque:domain`` (v1/v2),
    ``$`` + a standard (v3) or URL-safe (v4+, the default) base64 SHA-256."""
    if not event_id_.startswith("$"):
        return False
    if room_version is not None and room_version.event_id_in_event:
        return _is_sigil_opaque_domain(event_id_, "$")
    urlsafe = room_version is None or room_version.urlsafe_event_ids
    return _is_hash_id(event_id_[1:], urlsafe=urlsafe)


def _is_hash_id(text: str, *, urlsafe: bool = True) -> bool:
    if not (_HASH_ID if urlsafe else _STD_HASH_ID).fullmatch(text):
        return False
    try:
        return len(decode_base64(text, urlsafe=urlsafe)) == 32
    except ValueError:
        return False
