"""Stream tokens handed to clients: `next_batch`/`since` of /sync and `from`/`to`/
`prev_batch`/`start`/`end` of /messages.

A token `s<N>` is the position just after the event (or account data, or receipt)
with stream_ordering N on the store's one stream. Sync tokens carry the typing
serial too: `s<N>_<typing>`; every endpoint accepts either form, so a client may
paginate /messages from its sync token, as the spec allows.
"""

from __future__ import annotations

from dataclasses import dataclass

from relay.errors import InvalidParam

#: Positions are SQLite integers; a bigger number is no position we ever handed out.
MAX_POSITION = 2**63 - 1


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
