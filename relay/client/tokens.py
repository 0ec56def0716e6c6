"""Tokens handed to clients: `next_batch`/`since` of /sync and `from`/`to`/
`prev_batch`/`start`/`end` of /messages and /context.

- `s<N>` is the position just after the event (or account data, or receipt) with
  stream_ordering N on the store's one stream. Sync tokens carry the typing serial
  too: `s<N>_<typing>`. Every endpoint accepts either form, so a client may paginate
  /messages from its sync token, as the spec allows.
- `t<depth>-<stream>` is a position in a room's topological order (Synapse's form),
  handed out by /messages and /context (relay/rooms/reads.py). A page that began at a
  stream position carries that position's side of the stream: `u<N>` (stored up to N)
  or `a<N>` (stored after N), e.g. `t12-340u345`. Stream orderings of backfilled
  events are negative, so `t12--7` is a position too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from relay.errors import InvalidParam
from relay.rooms.reads import Position, StreamPosition, TopoPosition

#: Positions are SQLite integers; a bigger number is no position we ever handed out.
MAX_POSITION = 2**63 - 1

_TOPO = re.compile(r"t(-?[0-9]{1,19})-(-?[0-9]{1,19})(?:u([0-9]{1,19}))?(?:a([0-9]{1,19}))?")


def _is_position(text: str) -> bool:
    # str.isdigit() alone accepts "²" and Arabic-Indic digits, which int() may reject.
    return text.isascii() and text.isdigit() and int(text) <= MAX_POSITION


@dataclass(frozen=True, slots=True)
class StreamToken:
    stream: int
    typing: int = 0

    def sync_token(self) -> str:
        return f"s{self.stream}_{self.typing}"

    def pagination_token(self) -> str:
        return f"s{self.stream}"


def parse_token(token: str, what: str = "token") -> StreamToken:
    """`s<N>` or `s<N>_<typing>` -> StreamToken; M_INVALID_PARAM otherwise."""
    if not token.startswith("s"):
        raise InvalidParam(f"Invalid {what}")
    head, _, typing = token[1:].partition("_")
    if not _is_position(head) or (typing and not _is_position(typing)):
        raise InvalidParam(f"Invalid {what}")
    return StreamToken(int(head), int(typing) if typing else 0)


def parse_position(token: str, what: str = "token") -> Position:
    """A stream token (either form) or a topological one -> the room position it names;
    M_INVALID_PARAM otherwise."""
    if not token.startswith("t"):
        return StreamPosition(parse_token(token, what).stream)
    match = _TOPO.fullmatch(token)
    if match is None:
        raise InvalidParam(f"Invalid {what}")
    numbers = [int(g) if g is not None else None for g in match.groups()]
    if any(n is not None and abs(n) > MAX_POSITION for n in numbers):
        raise InvalidParam(f"Invalid {what}")
    depth, stream, ceiling, floor = numbers
    assert depth is not None and stream is not None
    return TopoPosition(depth, stream, ceiling, floor)


def position_token(position: Position) -> str:
    """The token for a room position (the inverse of `parse_position`)."""
    if isinstance(position, StreamPosition):
        return f"s{position.stream}"
    token = f"t{position.depth}-{position.stream}"
    if position.ceiling is not None:
        token += f"u{position.ceiling}"
    if position.floor is not None:
        token += f"a{position.floor}"
    return token
