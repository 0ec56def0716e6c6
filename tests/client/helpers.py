"""Small helpers shared by the sync-side tests (sync, filters, typing, receipts)."""

from __future__ import annotations

import json
from typing import Any

from tests.client.conftest import SERVER_NAME, ClientApi

V3 = "/_matrix/client/v3"


def uid(localpart: str) -> str:
    return f"@{localpart}:{SERVER_NAME}"


def password_auth(
    session: str | None = None, password: str = "pw", user: str = "alice"
) -> dict[str, Any]:
    """The `auth` of a user-interactive request answered with the user's password."""
    auth: dict[str, Any] = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
    }
    if session is not None:
        auth["session"] = session
    return auth


async def create_room(api: ClientApi, headers: dict[str, str], **body: Any) -> str:
    r = await api.http.post(f"{V3}/createRoom", headers=headers, json=body)
    assert r.status_code == 200, r.text
    return r.json()["room_id"]


async def join(api: ClientApi, headers: dict[str, str], room_id: str) -> None:
    r = await api.http.post(f"{V3}/rooms/{room_id}/join", headers=headers, json={})
    assert r.status_code == 200, r.text


async def send(
    api: ClientApi,
    headers: dict[str, str],
    room_id: str,
    body: str,
    txn: str | None = None,
    *,
    type: str = "m.room.message",
    **content: Any,
) -> str:
    """Send a text message `body` (plus `content`) and return its event id."""
    txn = txn or f"t-{body}"
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/send/{type}/{txn}",
        headers=headers,
        json={"msgtype": "m.text", "body": body, **content},
    )
    assert r.status_code == 200, r.text
    return r.json()["event_id"]


async def sync(
    api: ClientApi,
    headers: dict[str, str],
    since: str | None = None,
    *,
    filter: dict[str, Any] | str | None = None,
    **params: Any,
) -> dict[str, Any]:
    query: dict[str, Any] = {"set_presence": "offline", **params}
    if since is not None:
        query["since"] = since
    if filter is not None:
        query["filter"] = filter if isinstance(filter, str) else json.dumps(filter)
    r = await api.http.get(f"{V3}/sync", headers=headers, params=query)
    assert r.status_code == 200, r.text
    return r.json()


def timeline(body: dict[str, Any], room_id: str, section: str = "join") -> list[dict[str, Any]]:
    return body["rooms"][section][room_id]["timeline"]["events"]


def bodies(events: list[dict[str, Any]]) -> list[str]:
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


def ephemeral(body: dict[str, Any], room_id: str, type_: str) -> dict[str, Any] | None:
    room = body["rooms"]["join"].get(room_id)
    if room is None:
        return None
    found = [e for e in room["ephemeral"]["events"] if e["type"] == type_]
    return found[0]["content"] if found else None
