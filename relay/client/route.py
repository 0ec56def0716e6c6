"""A row of the client listener's route table (see routes.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

V3 = ("/_matrix/client/v3", "/_matrix/client/r0")


@dataclass(frozen=True)
class ClientRoute:
    #: Relative to each prefix, e.g. "/rooms/{room_id}/send/{event_type}/{txn_id}".
    path: str
    handler: Callable[..., Any]
    methods: tuple[str, ...]
    #: The handler takes (request, requester) and needs an access token.
    auth: bool = True
    prefixes: tuple[str, ...] = V3
    #: Match on the raw path (`relay.runtime.http.RawPathRoute`): a parameter may hold `%2F`.
    raw_path: bool = False
