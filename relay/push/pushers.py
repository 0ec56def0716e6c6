"""Pushers: `POST /pushers/set` checked and stored, `GET /pushers` listed.

Rules kept (https://spec.matrix.org/v1.16/client-server-api/#post_matrixclientv3pushersset,
Synapse 1.163.2 as the tie-breaker for the errors, synapse/rest/client/pusher.py and
synapse/push/httppusher.py):

- `kind: null` with `app_id` and `pushkey` deletes the user's pusher (200 whether or not
  there was one). Otherwise `kind`, `app_id`, `app_display_name`, `device_display_name`,
  `pushkey`, `lang` and `data` are required: 400 M_MISSING_PARAM naming the absent ones.
- `http`: `data` must hold `url`, a string whose path is exactly `/_matrix/push/v1/notify`
  (Synapse does not require https at set time; delivery does, unless the operator allowed
  the gateway: relay/push/gateway.py); else 400 M_MISSING_PARAM "Config Error: ...".
- `email`: the address must be a verified email of the user's; the relay keeps no
  third-party identifiers, so it never is: 400 M_THREEPID_NOT_FOUND, as Synapse answers.
- Any other kind is stored and never delivered, as Synapse does.
- Beyond Synapse, what we store is bounded and typed: the identifiers are strings
  (`app_id` at most 64 characters and `pushkey` at most 512 bytes, the spec's limits),
  `data` an object of at most `MAX_DATA_BYTES`, at most `MAX_PUSHERS` per user: else 400
  M_INVALID_PARAM. A refused request changes nothing.
- Without `append: true`, pushers of other users with the same app_id and pushkey are
  deleted (one phone's pushkey pushes for one account). A pusher belongs to the device
  that set it and goes with it (store/pushers.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from relay.accounts import Requester
from relay.errors import InvalidParam, MissingParam, ThreepidNotFound
from relay.runtime.clock import now_ms
from relay.runtime.database import Database
from store import Connection
from store import events as store_events
from store import pushers as store_pushers

REQUIRED = (
    "kind",
    "app_id",
    "app_display_name",
    "device_display_name",
    "pushkey",
    "lang",
    "data",
)
NOTIFY_PATH = "/_matrix/push/v1/notify"
MAX_APP_ID = 64
MAX_PUSHKEY_BYTES = 512
MAX_NAME = 256
MAX_DATA_BYTES = 4096
MAX_PUSHERS = 32


def _config_error(why: str) -> MissingParam:
    # Synapse answers every PusherConfigException so.
    return MissingParam(f"Config Error: {why}")


def check_http_data(data: Any) -> str:
    """The gateway URL of an http pusher's `data`, or the error Synapse gives."""
    if data is None:
        raise _config_error("'data' key can not be null for HTTP pusher")
    if not isinstance(data, dict) or "url" not in data:
        raise _config_error("'url' required in data for HTTP pusher")
    url = data["url"]
    if not isinstance(url, str):
        raise _config_error("'url' must be a string")
    if urlsplit(url).path != NOTIFY_PATH:
        raise _config_error(f"'url' must have a path of '{NOTIFY_PATH}'")
    return url


def _string(body: dict[str, Any], key: str, limit: int, *, optional: bool = False) -> None:
    value = body.get(key)
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise InvalidParam(f"{key} must be a string")
    if len(value) > limit:
        raise InvalidParam(f"{key} is longer than {limit} characters")


def check_pusher(body: dict[str, Any]) -> None:
    """A `/pushers/set` body that is not a deletion, checked (see the module docstring)."""
    absent = [key for key in REQUIRED if key not in body]
    if absent:
        raise MissingParam(f"Missing params: {absent!r}")
    _string(body, "kind", MAX_NAME)
    _string(body, "app_id", MAX_APP_ID)
    _string(body, "pushkey", MAX_PUSHKEY_BYTES)
    if len(body["pushkey"].encode("utf-8")) > MAX_PUSHKEY_BYTES:
        raise InvalidParam(f"pushkey is longer than {MAX_PUSHKEY_BYTES} bytes")
    _string(body, "app_display_name", MAX_NAME)
    _string(body, "device_display_name", MAX_NAME)
    _string(body, "lang", MAX_NAME, optional=True)
    if not isinstance(body.get("profile_tag", ""), str):
        raise InvalidParam("profile_tag must be a string")
    if not isinstance(body.get("append", False), bool):
        raise InvalidParam("append must be true or false")
    if body["kind"] == "http":
        check_http_data(body["data"])
    if not isinstance(body["data"], dict):
        raise InvalidParam("data must be an object")
    if len(json.dumps(body["data"]).encode("utf-8")) > MAX_DATA_BYTES:
        raise InvalidParam(f"data is larger than {MAX_DATA_BYTES} bytes")
    if body["kind"] == "email":
        raise ThreepidNotFound("Email not found")


def as_client_dict(pusher: store_pushers.Pusher) -> dict[str, Any]:
    """A pusher as `GET /pushers` lists it."""
    return {
        "app_display_name": pusher.app_display_name,
        "app_id": pusher.app_id,
        "data": pusher.data,
        "device_display_name": pusher.device_display_name,
        "kind": pusher.kind,
        "lang": pusher.lang,
        "profile_tag": pusher.profile_tag,
        "pushkey": pusher.pushkey,
    }


class Pushers:
    """The users' pushers; `on_change` wakes the delivery (relay/push/delivery.py)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.on_change: Callable[[], None] | None = None

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    async def list(self, user_id: str) -> list[dict[str, Any]]:
        found = await self.database.read(store_pushers.pushers_of_user, user_id)
        return [as_client_dict(p) for p in found]

    async def set(self, requester: Requester, body: dict[str, Any]) -> None:
        """`POST /pushers/set`: add, update or (`kind: null`) delete a pusher."""
        user_id = requester.user_id
        if "pushkey" in body and "app_id" in body and "kind" in body and body["kind"] is None:
            app_id, pushkey = body["app_id"], body["pushkey"]
            if isinstance(app_id, str) and isinstance(pushkey, str):
                await self.database.write(store_pushers.delete_pusher, user_id, app_id, pushkey)
                self._changed()
            return
        check_pusher(body)

        def txn(conn: Connection) -> None:
            if not body.get("append", False):
                store_pushers.delete_pushers_of_other_users(
                    conn, body["app_id"], body["pushkey"], user_id
                )
            mine = store_pushers.pushers_of_user(conn, user_id)
            known = any(p.app_id == body["app_id"] and p.pushkey == body["pushkey"] for p in mine)
            if not known and len(mine) >= MAX_PUSHERS:
                raise InvalidParam(f"A user has at most {MAX_PUSHERS} pushers")
            store_pushers.set_pusher(
                conn,
                user_id=user_id,
                app_id=body["app_id"],
                pushkey=body["pushkey"],
                device_id=requester.device_id,
                kind=body["kind"],
                app_display_name=body["app_display_name"],
                device_display_name=body["device_display_name"],
                profile_tag=body.get("profile_tag", ""),
                lang=body["lang"],
                data=body["data"],
                now_ms=now_ms(),
                # A new pusher pushes what happens from now on.
                stream_ordering=store_events.max_stream_ordering(conn),
            )

        await self.database.write(txn)
        self._changed()
