"""Helpers for tests where the test process speaks federation as one running relay (A) to
another (B): signed requests through `open_side`, PDUs built and signed by hand with A's key
on B's view of a room, and polling B's client API."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from relay.events.auth import auth_types_for_event
from relay.events.pdu import Pdu, finalize_event
from relay.events.room_versions import room_version
from relay.runtime.identity import SigningKey, read_signing_key
from store import events as store_events
from store import rooms as store_rooms
from store import state as store_state
from tests.integration.conftest import RelayProcess
from tests.integration.matrix_client import V3, MatrixUser

V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"


def signing_key_of(relay: RelayProcess) -> SigningKey:
    return read_signing_key(relay.data_dir / "signing.key")


def build_event(
    conn: Any,
    room_id: str,
    *,
    server: str,
    key: SigningKey,
    sender: str,
    type_: str,
    content: dict[str, Any],
    state_key: str | None = None,
    prev_events: list[str] | None = None,
    origin_server_ts: int | None = None,
) -> Pdu:
    """An event `server` signs, built on `conn`'s view of the room (a relay's database):
    on the given prev events (default: the forward extremities), with auth events chosen
    from the state after the first of them."""
    rv = room_version(store_rooms.get_room_version(conn, room_id) or "")
    assert rv is not None, f"unknown room {room_id}"
    prevs = prev_events or store_events.get_forward_extremities(conn, room_id)
    state = store_state.get_state_after(conn, prevs[0]) or {}
    depth = max(store_events.get_depths(conn, prevs).values()) + 1
    partial: dict[str, Any] = {
        "room_id": room_id,
        "sender": sender,
        "type": type_,
        "content": content,
        "origin_server_ts": origin_server_ts or int(time.time() * 1000),
        "prev_events": prevs,
        "depth": depth,
    }
    if state_key is not None:
        partial["state_key"] = state_key
    if not rv.updated_redaction_rules:
        partial["origin"] = server
    partial["auth_events"] = sorted(
        {state[k] for k in auth_types_for_event(partial, rv) if k in state}
    )
    return finalize_event(partial, rv, server, key.key_id, key.key)


def transaction(origin: str, pdus: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "origin": origin,
        "origin_server_ts": int(time.time() * 1000),
        "pdus": pdus,
        **extra,
    }


def new_txn_id() -> str:
    return uuid.uuid4().hex


def membership_of(user: MatrixUser, room_id: str, member: str) -> str | None:
    r = user.http.get(f"{V3}/rooms/{room_id}/state/m.room.member/{member}")
    return r.json().get("membership") if r.status_code == 200 else None


def send_many(user: MatrixUser, room_id: str, bodies: list[str]) -> list[str]:
    """Send each body, waiting out rate limiting; the event ids in order."""
    ids = []
    for body in bodies:
        while True:
            r = user.http.put(
                f"{V3}/rooms/{room_id}/send/m.room.message/{uuid.uuid4().hex}",
                json={"msgtype": "m.text", "body": body},
            )
            if r.status_code != 429:
                break
            time.sleep(r.json().get("retry_after_ms", 200) / 1000)
        assert r.status_code == 200, r.text
        ids.append(r.json()["event_id"])
    return ids


def unsigned_client() -> httpx.Client:
    return httpx.Client(verify=False, timeout=30)
