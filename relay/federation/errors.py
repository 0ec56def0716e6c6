"""What can go wrong when we call another server, and what a client may learn of it.

    Exception
    ├── PeerUnreachable(destination, reason)   no answer: resolution, connect, TLS,
    │   │                                      timeout, broken connection. Back off, retry.
    │   └── RequestTimedOut(destination,       the whole request ran out of time (on a slow
    │                       seconds)           link: too big for it; send less per request).
    └── RemoteError(destination, status,      the peer answered with an error (or with
        │           errcode, message)          something that is not JSON). Retrying the same
        │                                      request blindly gets the same answer, except
        │                                      for `retryable` ones (5xx, 429).
        └── ResponseTooLarge(destination,      the answer's body passed the cap for what it
                             status, limit)    can be (`client.py`); the rest was not read.

Neither is a `MatrixError`: a remote server's error is not ours to hand to a client.
`client_error` turns one into the error a client may see: the errcodes that mean the
same to it (`M_FORBIDDEN`, `M_NOT_FOUND`, `M_UNSUPPORTED_ROOM_VERSION`) pass through,
a peer's `M_INCOMPATIBLE_ROOM_VERSION` (its make_join or invite answer: it lacks the
room's version) reaches the client as `M_UNSUPPORTED_ROOM_VERSION`,
anything else becomes our 502 `M_UNKNOWN` "request to X failed" (a remote 500 "does not
make sense to a client", as Synapse's `SynapseError` says; tuwunel's `is_relayable`).

Joining a room is the exception (`join_refusal`): a resident server's 4xx answer to our
`make_join`/`send_join` is its decision about this user's join (not invited, banned, a room
version we lack, a rule of its own), so the client gets it as the remote said it: its status,
errcode, message and `room_version`, as Synapse passes it on (`ProxiedRequestError`). Except
what means "ask another server" (404 `M_NOT_FOUND`, `M_UNABLE_TO_AUTHORISE_JOIN`,
`M_UNABLE_TO_GRANT_JOIN`: Synapse's failover errcodes), an endpoint the remote does not
serve (`M_UNRECOGNIZED`: Synapse would try the deprecated v1 send_join there, which we do not
speak; a client would take it for our own endpoint missing), an error that is no Matrix error
(no errcode), a 401 (the remote could not authenticate *us*: a client would take it for its
own token) and our own refusal to contact a server (`DestinationRefused`): those move on to
the next server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from relay.errors import Forbidden, MatrixError, NotFound, Unknown, UnsupportedRoomVersion


class PeerUnreachable(Exception):
    """We got no answer from `destination` (nothing was said, so retrying may help)."""

    def __init__(self, destination: str, reason: str) -> None:
        super().__init__(f"{destination} unreachable: {reason}")
        self.destination = destination
        self.reason = reason


class RequestTimedOut(PeerUnreachable):
    """No complete answer from `destination` within `seconds` (connect to last byte)."""

    def __init__(self, destination: str, seconds: float) -> None:
        super().__init__(destination, f"no answer within {seconds:g} s")
        self.seconds = seconds


class RemoteError(Exception):
    """`destination` answered with HTTP `status` (and a Matrix `errcode`, when it sent one)."""

    def __init__(
        self,
        destination: str,
        status: int,
        errcode: str | None,
        message: str,
        *,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{destination} answered {status} {errcode or ''}: {message}".strip())
        self.destination = destination
        self.status = status
        self.errcode = errcode
        self.message = message
        #: The error's JSON object as the peer sent it (its other fields: `room_version`).
        self.body: Mapping[str, Any] = body or {}

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later (server errors, rate limits)."""
        return self.status >= 500 or self.status == 429


class ResponseTooLarge(RemoteError):
    """`destination` answered a body over `limit` bytes; we stopped reading at the cap."""

    def __init__(self, destination: str, status: int, limit: int) -> None:
        super().__init__(destination, status, None, f"response larger than {limit} bytes")
        self.limit = limit


class DestinationRefused(RemoteError):
    """We did not contact `destination`: `mesh.policy` is `pinned` and it is not a server we
    federate with (relay/federation/peer_policy.py). Nothing was sent. A RemoteError so that
    every caller treats it as a refusal (403 `M_FORBIDDEN`, which a client sees as is);
    the sender keeps the outbox rows, for the day the server is pinned."""

    def __init__(self, destination: str) -> None:
        super().__init__(
            destination, 403, "M_FORBIDDEN", f"{destination} is not a server we federate with"
        )


#: Remote errcodes a client may see as they are: they mean the same coming from us.
RELAYABLE: dict[str, type[MatrixError]] = {
    "M_FORBIDDEN": Forbidden,
    "M_NOT_FOUND": NotFound,
    "M_UNSUPPORTED_ROOM_VERSION": UnsupportedRoomVersion,
    # Server-to-server only; to a client it is a version the room's servers cannot use.
    "M_INCOMPATIBLE_ROOM_VERSION": UnsupportedRoomVersion,
}


def client_error(exc: RemoteError | PeerUnreachable) -> MatrixError:
    """The `MatrixError` a client sees for a failed call to another server."""
    if isinstance(exc, RemoteError) and exc.errcode in RELAYABLE:
        return RELAYABLE[exc.errcode](exc.message)
    return Unknown(f"request to {exc.destination} failed", status=502)


class RelayedError(MatrixError):
    """A remote server's refusal passed on to a client as it was said: the remote's status
    and errcode (`join_refusal`)."""

    def __init__(self, message: str, *, status: int, errcode: str, **extra: Any) -> None:
        super().__init__(message, status=status, **extra)
        self.errcode = errcode  # type: ignore[misc]


#: make_join/send_join errcodes that send a join on to the next server (Synapse's failover).
JOIN_FAILOVER_ERRCODES = frozenset(
    {"M_NOT_FOUND", "M_UNABLE_TO_AUTHORISE_JOIN", "M_UNABLE_TO_GRANT_JOIN"}
)
#: What of a remote's errcode and message a client may get: an errcode's shape, bounded.
_ERRCODE = re.compile(r"[A-Z][A-Z0-9_.]{0,63}")
_MAX_MESSAGE = 500


def join_refusal(exc: RemoteError) -> MatrixError | None:
    """The remote's refusal of our join as the client is to see it; None when the join
    should be tried through the next server (the module docstring says which)."""
    if isinstance(exc, DestinationRefused) or not 400 <= exc.status < 500 or exc.status == 401:
        return None
    if exc.errcode is None or exc.errcode in JOIN_FAILOVER_ERRCODES | {"M_UNRECOGNIZED"}:
        return None
    errcode = exc.errcode if _ERRCODE.fullmatch(exc.errcode) else "M_UNKNOWN"
    extra = {}
    room_version = exc.body.get("room_version")
    if errcode == "M_INCOMPATIBLE_ROOM_VERSION" and isinstance(room_version, str):
        extra["room_version"] = room_version[:_MAX_MESSAGE]
    return RelayedError(exc.message[:_MAX_MESSAGE], status=exc.status, errcode=errcode, **extra)
