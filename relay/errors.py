"""Matrix errors: one exception per spec errcode, mapped to JSON once, at the HTTP edge.

Handlers and services raise these; nothing else builds ``{"errcode": ...}`` bodies.

    MatrixError                      (status, errcode)
    ├── BadJson / NotJson / MissingParam / InvalidParam / InvalidUsername   400
    ├── DuplicateAnnotation / UnknownPos / ThreepidNotFound                  400
    ├── UserInUse / RoomInUse / UnsupportedRoomVersion / BadState / BadAlias /
    │   InvalidRoomState / Exclusive / InvalidUsername /
    │   IncompatibleRoomVersion(room_version)                                400
    ├── MissingToken / UnknownToken / Unauthorized                           401
    ├── Forbidden / GuestAccessForbidden / UserDeactivated                   403
    ├── NotFound / Unrecognized                                              404 (405)
    ├── CannotOverwriteMedia                                                 409
    ├── TooLarge                                                             413 (502)
    ├── LimitExceeded                                                        429
    ├── Unknown                                                              500
    └── NotYetUploaded                                                       504

Spec: https://spec.matrix.org/v1.16/client-server-api/#standard-error-response
"""

from __future__ import annotations

from typing import Any, ClassVar


class MatrixError(Exception):
    """An error a Matrix client or server is meant to see."""

    status: ClassVar[int] = 500
    errcode: ClassVar[str] = "M_UNKNOWN"

    def __init__(self, message: str = "", *, status: int | None = None, **extra: Any) -> None:
        super().__init__(message or self.errcode)
        self.message = message or self.errcode
        if status is not None:
            self.status = status  # type: ignore[misc]
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        return {"errcode": self.errcode, "error": self.message, **self.extra}


class Unknown(MatrixError):
    status = 500
    errcode = "M_UNKNOWN"


class NotHostedHere(MatrixError):
    """Another server asked us about a user, alias or invitee of a third server. The spec
    names no errcode; Synapse answers 400 `M_UNKNOWN`, and so do we."""

    status = 400
    errcode = "M_UNKNOWN"


class BadJson(MatrixError):
    status = 400
    errcode = "M_BAD_JSON"


class NotJson(MatrixError):
    status = 400
    errcode = "M_NOT_JSON"


class MissingParam(MatrixError):
    status = 400
    errcode = "M_MISSING_PARAM"


class InvalidParam(MatrixError):
    status = 400
    errcode = "M_INVALID_PARAM"


class ThreepidNotFound(MatrixError):
    """A third-party identifier (an email pusher's address) that is not the user's."""

    status = 400
    errcode = "M_THREEPID_NOT_FOUND"


class InvalidUsername(MatrixError):
    status = 400
    errcode = "M_INVALID_USERNAME"


class UserInUse(MatrixError):
    status = 400
    errcode = "M_USER_IN_USE"


class RoomInUse(MatrixError):
    status = 400
    errcode = "M_ROOM_IN_USE"


class UnsupportedRoomVersion(MatrixError):
    status = 400
    errcode = "M_UNSUPPORTED_ROOM_VERSION"


class IncompatibleRoomVersion(MatrixError):
    """Federation: the asking server does not support the room's version (make_join and
    make_knock's `ver`, an invite in a version we do not know). Carries `room_version`."""

    status = 400
    errcode = "M_INCOMPATIBLE_ROOM_VERSION"

    def __init__(self, message: str, *, room_version: str) -> None:
        super().__init__(message, room_version=room_version)


class BadAlias(MatrixError):
    status = 400
    errcode = "M_BAD_ALIAS"


class BadState(MatrixError):
    status = 400
    errcode = "M_BAD_STATE"


class InvalidRoomState(MatrixError):
    status = 400
    errcode = "M_INVALID_ROOM_STATE"


class MissingToken(MatrixError):
    status = 401
    errcode = "M_MISSING_TOKEN"


class UnknownToken(MatrixError):
    status = 401
    errcode = "M_UNKNOWN_TOKEN"

    def __init__(self, message: str = "Unknown access token", *, soft_logout: bool = False) -> None:
        super().__init__(message, soft_logout=soft_logout)


class Unauthorized(MatrixError):
    status = 401
    errcode = "M_UNAUTHORIZED"


class Forbidden(MatrixError):
    status = 403
    errcode = "M_FORBIDDEN"


class GuestAccessForbidden(MatrixError):
    status = 403
    errcode = "M_GUEST_ACCESS_FORBIDDEN"


class NotFound(MatrixError):
    status = 404
    errcode = "M_NOT_FOUND"


class Unrecognized(MatrixError):
    """Unknown endpoint (404) or known endpoint with the wrong method (405)."""

    status = 404
    errcode = "M_UNRECOGNIZED"


class CannotOverwriteMedia(MatrixError):
    status = 409
    errcode = "M_CANNOT_OVERWRITE_MEDIA"


class TooLarge(MatrixError):
    status = 413
    errcode = "M_TOO_LARGE"


class UnknownPos(MatrixError):
    """A sliding sync `pos` this server did not hand out (or no longer knows)."""

    status = 400
    errcode = "M_UNKNOWN_POS"


class DuplicateAnnotation(MatrixError):
    """The same reaction (sender, event type, key) on the same event, twice."""

    status = 400
    errcode = "M_DUPLICATE_ANNOTATION"


class NotYetUploaded(MatrixError):
    status = 504
    errcode = "M_NOT_YET_UPLOADED"


class LimitExceeded(MatrixError):
    status = 429
    errcode = "M_LIMIT_EXCEEDED"

    def __init__(self, message: str = "Too many requests", *, retry_after_ms: int) -> None:
        super().__init__(message, retry_after_ms=retry_after_ms)
        self.retry_after_ms = retry_after_ms


class InvalidSignature(MatrixError):
    status = 400
    errcode = "M_INVALID_SIGNATURE"


class WrongRoomKeysVersion(MatrixError):
    """A key backup request named a version that is not the current one."""

    status = 403
    errcode = "M_WRONG_ROOM_KEYS_VERSION"
