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
"""

from __future__ import annotations

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

    def __init__(self, destination: str, status: int, errcode: str | None, message: str) -> None:
        super().__init__(f"{destination} answered {status} {errcode or ''}: {message}".strip())
        self.destination = destination
        self.status = status
        self.errcode = errcode
        self.message = message

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
