"""Our users knocking on rooms of other servers (relay/federation/remote_membership.py),
against a scripted resident server (an httpx MockTransport behind the relay's real
federation client): the knock is signed from the `make_knock` template and stored with
the `knock_room_state` the server answered, stripped for the client; an answer the relay
cannot use changes nothing; rescinding leaves the room here even when nobody answers; an
invite that answers the knock (HQ's signed /v2/invite) takes its place in /sync and is
declined through HQ."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from relay.config import config_from_dict
from relay.events.pdu import finalize_event
from relay.events.room_versions import room_version
from relay.federation.client import FederationClient
from relay.runtime.identity import new_signing_key
from store import remote_memberships as store_remote_memberships
from tests.client.conftest import SERVER_NAME, ClientApi
from tests.client.conftest import api as api  # the in-process relay
from tests.client.helpers import V3, sync, uid
from tests.federation.inprocess import V2, SignedPeer, federation_http, trust_key
from tests.federation.test_served_redactions import _Here

HQ = "hq.test"
HQ_KEY = new_signing_key()
ROOM = f"!door:{HQ}"
CREATE = {
    "type": "m.room.create",
    "state_key": "",
    "sender": f"@boss:{HQ}",
    "content": {"room_version": "10", "creator": f"@boss:{HQ}"},
    "room_id": ROOM,
    "event_id": "$create",
    "signatures": {HQ: {"ed25519:x": "sig"}},
    "depth": 1,
}
JOIN_RULES = {
    "type": "m.room.join_rules",
    "state_key": "",
    "sender": f"@boss:{HQ}",
    "content": {"join_rule": "knock"},
}

Answer = Callable[[httpx.Request], httpx.Response]


def _template(user: str, version: str = "10") -> dict[str, Any]:
    return {
        "room_version": version,
        "event": {
            "type": "m.room.member",
            "room_id": ROOM,
            "sender": user,
            "state_key": user,
            "content": {"membership": "knock"},
            "origin_server_ts": 1,
            "depth": 7,
            "prev_events": ["$prev"],
            "auth_events": ["$create", "$rules"],
        },
    }


def _resident(
    api: ClientApi, tmp_path: Path, make_knock: Answer, send_knock: Answer
) -> list[httpx.Request]:
    """Point the relay's federation client at a scripted HQ; the requests it got."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if "/make_knock/" in request.url.path:
            return make_knock(request)
        if "/send_knock/" in request.url.path:
            return send_knock(request)
        return httpx.Response(404, json={"errcode": "M_NOT_FOUND", "error": "no"})

    api.services.federation_client = FederationClient(
        config_from_dict({"server_name": "relay.test"}, tmp_path / "fed"),
        api.services.signing_key,
        resolver=_Here(),  # type: ignore[arg-type]
        transport=httpx.MockTransport(handler),
    )
    return seen


async def _knock(api: ClientApi, headers: dict[str, str]) -> httpx.Response:
    return await api.http.post(
        f"{V3}/knock/{quote(ROOM, safe='')}",
        headers=headers,
        params={"via": HQ},
        json={"reason": "field team"},
    )


async def test_remote_knock_is_signed_stored_and_rescinded(api: ClientApi, tmp_path: Path) -> None:
    bob = await api.login("bob")
    sent: list[dict[str, Any]] = []

    def send_knock(request: httpx.Request) -> httpx.Response:
        sent.append(httpx.Response(200, content=request.content).json())
        state = [CREATE, JOIN_RULES, "junk", {"type": "m.room.name", "content": "no key"}]
        return httpx.Response(200, json={"knock_room_state": state})

    seen = _resident(
        api, tmp_path, lambda _r: httpx.Response(200, json=_template(uid("bob"))), send_knock
    )
    since = (await sync(api, bob))["next_batch"]
    r = await _knock(api, bob)
    assert (r.status_code, r.json()) == (200, {"room_id": ROOM}), r.text
    assert "ver=10" in str(seen[0].url) and "ver=12" in str(seen[0].url)
    [knock] = sent
    assert knock["content"] == {"membership": "knock", "reason": "field team"}
    assert SERVER_NAME in knock["signatures"] and knock["sender"] == uid("bob")

    body = await sync(api, bob, since)
    events = body["rooms"]["knock"][ROOM]["knock_state"]["events"]
    assert all(set(e) == {"type", "state_key", "content", "sender"} for e in events)
    assert [e["type"] for e in events] == ["m.room.create", "m.room.join_rules", "m.room.member"]
    assert events[-1]["content"]["membership"] == "knock"

    # Rescinding: HQ does not answer make_leave; the knock is left here all the same.
    r = await api.http.post(f"{V3}/rooms/{quote(ROOM, safe='')}/leave", headers=bob, json={})
    assert r.status_code == 200, r.text
    body = await sync(api, bob, body["next_batch"])
    assert ROOM in body["rooms"]["leave"] and not body["rooms"]["knock"]
    assert any("/make_leave/" in request.url.path for request in seen)


@pytest.mark.parametrize(
    ("case", "make_knock", "send_knock", "answer"),
    [
        (
            "a room version without knocking",
            lambda user: httpx.Response(200, json=_template(user, "6")),
            None,
            (403, "M_FORBIDDEN"),
        ),
        (
            "a template for another user",
            lambda user: httpx.Response(200, json=_template(f"@eve:{HQ}")),
            None,
            (502, "M_UNKNOWN"),
        ),
        (
            "a template for another room",
            lambda user: httpx.Response(
                200,
                json={
                    **_template(user),
                    "event": {**_template(user)["event"], "room_id": f"!elsewhere:{HQ}"},
                },
            ),
            None,
            (502, "M_UNKNOWN"),
        ),
        (
            "the resident refuses",
            lambda user: httpx.Response(403, json={"errcode": "M_FORBIDDEN", "error": "no"}),
            None,
            (403, "M_FORBIDDEN"),
        ),
        (
            "send_knock answers no knock_room_state",
            lambda user: httpx.Response(200, json=_template(user)),
            httpx.Response(200, json={}),
            (502, "M_UNKNOWN"),
        ),
    ],
)
async def test_a_remote_knock_the_relay_cannot_use_changes_nothing(
    api: ClientApi,
    tmp_path: Path,
    case: str,
    make_knock: Callable[[str], httpx.Response],
    send_knock: httpx.Response | None,
    answer: tuple[int, str],
) -> None:
    bob = await api.login("bob")
    seen = _resident(
        api,
        tmp_path,
        lambda _r: make_knock(uid("bob")),
        lambda _r: send_knock or httpx.Response(500, json={"errcode": "M_UNKNOWN"}),
    )
    r = await _knock(api, bob)
    assert (r.status_code, r.json()["errcode"]) == answer, case
    if send_knock is None:
        assert not any("/send_knock/" in request.url.path for request in seen), case
    body = await sync(api, bob)
    assert not body["rooms"]["knock"] and ROOM not in body["rooms"]["leave"], case
    r = await api.http.post(f"{V3}/rooms/{quote(ROOM, safe='')}/leave", headers=bob, json={})
    assert (r.status_code, r.json()["errcode"]) == (404, "M_NOT_FOUND"), case


async def _sliding_stripped_state(api: ClientApi, headers: dict[str, str]) -> list[Any]:
    """(type, content) of what simplified sliding sync carries in the room's invite_state."""
    r = await api.http.post(
        "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync",
        headers=headers,
        params={"timeout": 0},
        json={"lists": {"all": {"ranges": [[0, 9]], "required_state": [], "timeline_limit": 5}}},
    )
    assert r.status_code == 200, r.text
    return [(e["type"], e["content"]) for e in r.json()["rooms"][ROOM]["invite_state"]]


async def test_an_invite_answering_a_remote_knock_replaces_it_and_is_declined_through_hq(
    api: ClientApi, tmp_path: Path
) -> None:
    bob = await api.login("bob")
    knock_state = {"knock_room_state": [CREATE, JOIN_RULES]}
    seen = _resident(
        api,
        tmp_path,
        lambda _r: httpx.Response(200, json=_template(uid("bob"))),
        lambda _r: httpx.Response(200, json=knock_state),
    )
    r = await _knock(api, bob)
    assert r.status_code == 200, r.text
    body = await sync(api, bob)
    assert ROOM in body["rooms"]["knock"] and not body["rooms"]["invite"]
    assert await _sliding_stripped_state(api, bob) == [
        ("m.room.create", CREATE["content"]),
        ("m.room.join_rules", {"join_rule": "knock"}),
        ("m.room.member", {"membership": "knock", "reason": "field team"}),
    ]

    # HQ lets Bob in: its invite reaches us over federation, signed by HQ.
    await trust_key(api, HQ, HQ_KEY)
    partial = {
        **_template(uid("bob"))["event"],
        "sender": f"@boss:{HQ}",
        "content": {"membership": "invite"},
        "depth": 8,
    }
    invite = finalize_event(partial, room_version("10"), HQ, HQ_KEY.key_id, HQ_KEY.key)
    name = {"type": "m.room.name", "state_key": "", "sender": f"@boss:{HQ}"}
    name["content"] = {"name": "The door"}
    async with federation_http(api) as fed:
        r = await SignedPeer(HQ, HQ_KEY, fed).request(
            "PUT",
            f"{V2}/invite/{quote(ROOM, safe='')}/{quote(invite.event_id, safe='')}",
            json_body={
                "room_version": "10",
                "event": invite.as_dict(),
                "invite_room_state": [name],
            },
        )
    assert r.status_code == 200, r.text
    body = await sync(api, bob, body["next_batch"])
    assert ROOM not in body["rooms"]["knock"]
    events = body["rooms"]["invite"][ROOM]["invite_state"]["events"]
    assert [(e["type"], e["content"]) for e in events] == [
        ("m.room.name", {"name": "The door"}),
        ("m.room.member", {"membership": "invite"}),
    ]
    assert await _sliding_stripped_state(api, bob) == [
        ("m.room.name", {"name": "The door"}),
        ("m.room.member", {"membership": "invite"}),
    ]

    # Declining asks HQ (the inviter's server) for a leave; nobody answers: left here.
    r = await api.http.post(f"{V3}/rooms/{quote(ROOM, safe='')}/leave", headers=bob, json={})
    assert r.status_code == 200, r.text
    assert any("/make_leave/" in q.url.path and q.url.host == HQ for q in seen)
    body = await sync(api, bob, body["next_batch"])
    assert ROOM in body["rooms"]["leave"] and not body["rooms"]["invite"]
    stored = await api.services.database.read(
        store_remote_memberships.get_remote_membership, ROOM, uid("bob")
    )
    assert stored is None
