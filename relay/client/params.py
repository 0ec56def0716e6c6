"""What the client API accepts in the ids a client names, in the path or in a body.

Rules kept here (every client route calls `check_path_params` through `build_routes`;
bodies naming a user ask `is_client_user_id`):

- No path parameter holds a control character (`has_control_character`: NUL, C0, DEL,
  C1): 400 `M_INVALID_PARAM` naming the parameter. That covers room ids, user ids,
  event types, state keys and transaction ids wherever they are in the path.
- A transaction id is at most 255 UTF-8 bytes (`MAX_ID_BYTES`), as every other id:
  400 `M_INVALID_PARAM`.
- A user id in a body is `is_valid_user_id` and holds no control character:
  400 `M_INVALID_PARAM`.

Event types and state keys in bodies (`initial_state`) reach
`relay.rooms.service.check_local_content`, which every local event passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request

from relay.errors import InvalidParam
from relay.events.ids import MAX_ID_BYTES, has_control_character, is_valid_user_id


def check_path_params(params: Mapping[str, Any]) -> None:
    """Raises InvalidParam for a path parameter a client may not send."""
    for name, value in params.items():
        if not isinstance(value, str):
            continue
        if has_control_character(value):
            raise InvalidParam(f"{name} must not contain control characters")
        if name == "txn_id" and len(value.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
            raise InvalidParam(f"txn_id must be at most {MAX_ID_BYTES} bytes")


def is_client_user_id(value: Any) -> bool:
    """Whether a client may name `value` as a user: a valid id with no control character."""
    return isinstance(value, str) and is_valid_user_id(value) and not has_control_character(value)


def int_query(request: Request, name: str, default: int) -> int:
    """A non-negative integer query parameter (Synapse's `parse_integer`)."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 15:
        raise InvalidParam(f"Query parameter {name!r} must be a non-negative integer.")
    return int(raw)


def bool_query(request: Request, name: str, default: bool | None) -> bool | None:
    """`true`/`false` (Synapse's `parse_boolean`); `default` when absent."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if raw not in ("true", "false"):
        raise InvalidParam(f"Boolean query parameter {name!r} must be one of ['true', 'false']")
    return raw == "true"
