"""Pushers (issue 14 item 3): `GET /pushers` and `POST /pushers/set` with Synapse's
errors, pushers going with their device (password change, logout, deletion,
deactivation), and delivery end to end: the relay's push service posts to a real test
push gateway (hypercorn on loopback, allowed by `push.allowed_gateways`), in order,
once per event, retried while the gateway fails; a gateway on an internal address that
the operator did not allow gets nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from relay.client.routes import client_app
from relay.node import build_services
from relay.runtime.database import open_database
from relay.runtime.identity import new_signing_key
from relay.web.metrics import scrape
from tests.client.conftest import ClientApi, make_config
from tests.client.helpers import V3, create_room, join, password_auth, send, sync, uid
from tests.support import free_port

NOTIFY = "/_matrix/push/v1/notify"


def _pusher(url: str, pushkey: str = "pk1", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "http",
        "app_id": "org.example.app",
        "app_display_name": "Example",
        "device_display_name": "Phone",
        "pushkey": pushkey,
        "lang": "en",
        "data": {"url": url},
    }
    body.update(extra)
    return body


async def _set(api: ClientApi, headers: dict[str, str], body: Any) -> httpx.Response:
    return await api.http.post(f"{V3}/pushers/set", headers=headers, json=body)


async def _pushers(api: ClientApi, headers: dict[str, str]) -> list[dict[str, Any]]:
    r = await api.http.get(f"{V3}/pushers", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["pushers"]


# -- the API -------------------------------------------------------------------------------


async def test_a_pusher_is_listed_updated_and_deleted(api: ClientApi) -> None:
    alice = await api.login("alice")
    url = "https://push.example.org/_matrix/push/v1/notify"
    assert (await _set(api, alice, _pusher(url, profile_tag="t1"))).status_code == 200
    assert await _pushers(api, alice) == [
        {
            "app_display_name": "Example",
            "app_id": "org.example.app",
            "data": {"url": url},
            "device_display_name": "Phone",
            "kind": "http",
            "lang": "en",
            "profile_tag": "t1",
            "pushkey": "pk1",
        }
    ]
    # The same app id and pushkey again: an update, not a second pusher.
    r = await _set(api, alice, _pusher(url, device_display_name="Tablet"))
    assert r.status_code == 200
    [listed] = await _pushers(api, alice)
    assert listed["device_display_name"] == "Tablet"
    # Another pushkey: a second pusher.
    assert (await _set(api, alice, _pusher(url, "pk2"))).status_code == 200
    assert [p["pushkey"] for p in await _pushers(api, alice)] == ["pk1", "pk2"]
    # kind null deletes (and deleting what is not there is fine too).
    deletion = {"app_id": "org.example.app", "pushkey": "pk1", "kind": None}
    assert (await _set(api, alice, deletion)).status_code == 200
    assert (await _set(api, alice, deletion)).status_code == 200
    assert [p["pushkey"] for p in await _pushers(api, alice)] == ["pk2"]


async def test_without_append_another_users_pusher_of_the_same_key_goes(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    url = "https://push.example.org/_matrix/push/v1/notify"
    assert (await _set(api, alice, _pusher(url))).status_code == 200
    assert (await _set(api, bob, _pusher(url, append=True))).status_code == 200
    assert len(await _pushers(api, alice)) == 1
    assert (await _set(api, bob, _pusher(url))).status_code == 200
    assert await _pushers(api, alice) == []
    assert len(await _pushers(api, bob)) == 1


BAD_BODIES: list[tuple[str, dict[str, Any], int, str]] = [
    ("no kind", {k: v for k, v in _pusher("x").items() if k != "kind"}, 400, "M_MISSING_PARAM"),
    ("no lang", {k: v for k, v in _pusher("x").items() if k != "lang"}, 400, "M_MISSING_PARAM"),
    ("no data", {k: v for k, v in _pusher("x").items() if k != "data"}, 400, "M_MISSING_PARAM"),
    ("kind null without pushkey", {"kind": None, "app_id": "a"}, 400, "M_MISSING_PARAM"),
    ("http without url", _pusher("x", data={}), 400, "M_MISSING_PARAM"),
    ("http with null data", _pusher("x", data=None), 400, "M_MISSING_PARAM"),
    ("url not a string", _pusher("x", data={"url": 5}), 400, "M_MISSING_PARAM"),
    ("url with another path", _pusher("https://push.example/notify"), 400, "M_MISSING_PARAM"),
    ("an email pusher", _pusher("x", kind="email", data={}), 400, "M_THREEPID_NOT_FOUND"),
    (
        "app_id not a string",
        _pusher(f"https://p.example{NOTIFY}", app_id=5),
        400,
        "M_INVALID_PARAM",
    ),
    (
        "app_id too long",
        _pusher(f"https://p.example{NOTIFY}", app_id="a" * 65),
        400,
        "M_INVALID_PARAM",
    ),
    ("pushkey too long", _pusher(f"https://p.example{NOTIFY}", "é" * 257), 400, "M_INVALID_PARAM"),
    ("data too large", _pusher("x", kind="other", data={"x": "y" * 5000}), 400, "M_INVALID_PARAM"),
    (
        "append not a boolean",
        _pusher(f"https://p.example{NOTIFY}", append="yes"),
        400,
        "M_INVALID_PARAM",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "status", "errcode"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES]
)
async def test_a_bad_pusher_is_refused_and_changes_nothing(
    api: ClientApi, case: str, body: dict[str, Any], status: int, errcode: str
) -> None:
    alice = await api.login("alice")
    r = await _set(api, alice, body)
    assert (r.status_code, r.json()["errcode"]) == (status, errcode), r.text
    assert await _pushers(api, alice) == []


async def test_a_body_that_is_not_json_is_refused(api: ClientApi) -> None:
    alice = await api.login("alice")
    r = await api.http.post(f"{V3}/pushers/set", headers=alice, content=b"{nope")
    assert r.status_code == 400 and r.json()["errcode"] == "M_NOT_JSON"


async def test_an_unknown_kind_is_kept_as_synapse_keeps_it(api: ClientApi) -> None:
    alice = await api.login("alice")
    assert (await _set(api, alice, _pusher("x", kind="carrier-pigeon", data={}))).status_code == 200
    assert [p["kind"] for p in await _pushers(api, alice)] == ["carrier-pigeon"]


async def test_a_user_has_a_bounded_number_of_pushers(api: ClientApi) -> None:
    from relay.push.pushers import MAX_PUSHERS

    alice = await api.login("alice")
    url = f"https://push.example{NOTIFY}"
    for n in range(MAX_PUSHERS):
        assert (await _set(api, alice, _pusher(url, f"k{n}"))).status_code == 200
    r = await _set(api, alice, _pusher(url, "one-too-many"))
    assert r.status_code == 400 and r.json()["errcode"] == "M_INVALID_PARAM"
    # Updating one of them is still fine.
    assert (await _set(api, alice, _pusher(url, "k0", lang="de"))).status_code == 200


async def _login_device(api: ClientApi, localpart: str, device_id: str) -> dict[str, str]:
    r = await api.http.post(
        f"{V3}/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": localpart},
            "password": "pw",
            "device_id": device_id,
        },
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def test_a_password_change_removes_the_other_devices_pushers(api: ClientApi) -> None:
    await api.add_user("alice")
    phone = await _login_device(api, "alice", "PHONE")
    laptop = await _login_device(api, "alice", "LAPTOP")
    url = f"https://push.example{NOTIFY}"
    assert (await _set(api, phone, _pusher(url, "phone-key"))).status_code == 200
    assert (await _set(api, laptop, _pusher(url, "laptop-key"))).status_code == 200
    body = {
        "new_password": "new-pw",
        "auth": password_auth(),
    }
    r = await api.http.post(f"{V3}/account/password", headers=laptop, json=body)
    assert r.status_code == 200, r.text
    assert [p["pushkey"] for p in await _pushers(api, laptop)] == ["laptop-key"]


async def test_a_password_change_keeping_devices_keeps_their_pushers(api: ClientApi) -> None:
    await api.add_user("alice")
    phone = await _login_device(api, "alice", "PHONE")
    laptop = await _login_device(api, "alice", "LAPTOP")
    url = f"https://push.example{NOTIFY}"
    assert (await _set(api, phone, _pusher(url, "phone-key"))).status_code == 200
    body = {
        "new_password": "new-pw",
        "logout_devices": False,
        "auth": password_auth(),
    }
    r = await api.http.post(f"{V3}/account/password", headers=laptop, json=body)
    assert r.status_code == 200, r.text
    assert [p["pushkey"] for p in await _pushers(api, laptop)] == ["phone-key"]


async def test_logout_and_deactivation_remove_pushers(api: ClientApi) -> None:
    await api.add_user("alice")
    phone = await _login_device(api, "alice", "PHONE")
    laptop = await _login_device(api, "alice", "LAPTOP")
    url = f"https://push.example{NOTIFY}"
    assert (await _set(api, phone, _pusher(url, "phone-key"))).status_code == 200
    assert (await _set(api, laptop, _pusher(url, "laptop-key"))).status_code == 200
    assert (await api.http.post(f"{V3}/logout", headers=phone)).status_code == 200
    assert [p["pushkey"] for p in await _pushers(api, laptop)] == ["laptop-key"]
    body = {"auth": password_auth()}
    r = await api.http.post(f"{V3}/account/deactivate", headers=laptop, json=body)
    assert r.status_code == 200, r.text
    from store import pushers as store_pushers

    left = await api.services.database.read(store_pushers.pushers_of_user, uid("alice"))
    assert left == []


# -- delivery to a real gateway --------------------------------------------------------------


@dataclass
class Gateway:
    """A push gateway on loopback: records each notification; `answers` decides the
    status and body of each request (default 200 `{"rejected": []}`)."""

    port: int
    received: list[dict[str, Any]] = field(default_factory=list)
    answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    arrived: trio.Event = field(default_factory=trio.Event)
    requests: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{NOTIFY}"

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.requests += 1
        status, answer = self.answers.pop(0) if self.answers else (200, {"rejected": []})
        if status == 200 and scope["path"] == NOTIFY:
            self.received.append(json.loads(body)["notification"])
        payload = json.dumps(answer).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})
        self.arrived.set()
        self.arrived = trio.Event()

    async def wait_for(self, count: int) -> None:
        with trio.fail_after(30):
            while len(self.received) < count:
                await self.arrived.wait()


@dataclass
class Pushing:
    api: ClientApi
    gateway: Gateway


async def _serve_gateway(gateway: Gateway, nursery: trio.Nursery) -> None:
    config = HypercornConfig()
    config.bind = [f"127.0.0.1:{gateway.port}"]
    config.accesslog = None
    await nursery.start(serve, gateway, config)


@asynccontextmanager
async def running_relay(
    tmp_path: Path, gateway: Gateway, *, allowed: bool = True
) -> AsyncIterator[ClientApi]:
    """A relay (in-process, its push delivery running as node.py runs it, retrying
    quickly) whose operator allowed the test gateway, unless `allowed` is false."""
    gateways = [f"http://127.0.0.1:{gateway.port}"] if allowed else []
    config = make_config(tmp_path, **{"push.allowed_gateways": gateways})
    async with open_database(config.database_path, synchronous="NORMAL") as database:
        services = await build_services(config, database, new_signing_key())
        services.push_delivery.retry_min_s = 0.05
        services.push_delivery.retry_max_s = 0.2
        async with trio.open_nursery() as nursery:
            await nursery.start(services.push_delivery.serve)
            transport = httpx.ASGITransport(app=client_app(services))
            async with httpx.AsyncClient(transport=transport, base_url="http://relay.test") as http:
                yield ClientApi(services, http)
            nursery.cancel_scope.cancel()


@pytest.fixture
async def pushing(tmp_path: Path) -> AsyncIterator[Pushing]:
    """A running relay that may push to a running test gateway."""
    gateway = Gateway(free_port())
    async with trio.open_nursery() as nursery:
        await _serve_gateway(gateway, nursery)
        async with running_relay(tmp_path, gateway) as api:
            yield Pushing(api, gateway)
        nursery.cancel_scope.cancel()


async def _room_of_two(api: ClientApi) -> tuple[dict[str, str], dict[str, str], str]:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat", name="Ops")
    await join(api, bob, room_id)
    return alice, bob, room_id


async def test_messages_reach_the_gateway_in_order_once_each(pushing: Pushing) -> None:
    api, gateway = pushing.api, pushing.gateway
    alice, bob, room_id = await _room_of_two(api)
    body = _pusher(gateway.url)
    body["data"]["extra"] = "kept"
    assert (await _set(api, alice, body)).status_code == 200
    await send(api, alice, room_id, "my own message")  # never pushed to its sender
    first = await send(api, bob, room_id, "hello")
    mention = await send(
        api, bob, room_id, "hi alice", **{"m.mentions": {"user_ids": [uid("alice")]}}
    )
    await gateway.wait_for(2)
    n1, n2 = gateway.received
    assert [n1["event_id"], n2["event_id"]] == [first, mention]
    assert n1["room_id"] == room_id and n1["type"] == "m.room.message"
    assert n1["sender"] == uid("bob") and n1["content"]["body"] == "hello"
    assert n1["room_name"] == "Ops"
    assert n1["counts"] == {"unread": 1, "missed_calls": 0}
    assert n2["counts"] == {"unread": 2, "missed_calls": 0}
    # A room of two is one-to-one: its messages sound (the default rule), so go high.
    assert n1["prio"] == "high" and n2["prio"] == "high"
    [device] = n1["devices"]
    assert device["app_id"] == "org.example.app" and device["pushkey"] == "pk1"
    assert device["data"] == {"extra": "kept"}  # the url is not sent on
    assert isinstance(device["pushkey_ts"], int)
    assert device["tweaks"] == {"sound": "default"}
    assert n2["devices"][0]["tweaks"] == {"sound": "default", "highlight": True}
    # Nothing more: the own message and the past are not pushed again.
    await send(api, bob, room_id, "third")
    await gateway.wait_for(3)
    assert [n["content"]["body"] for n in gateway.received] == ["hello", "hi alice", "third"]


async def test_event_id_only_sends_no_content(pushing: Pushing) -> None:
    api, gateway = pushing.api, pushing.gateway
    alice, bob, room_id = await _room_of_two(api)
    body = _pusher(gateway.url)
    body["data"]["format"] = "event_id_only"
    assert (await _set(api, alice, body)).status_code == 200
    event_id = await send(api, bob, room_id, "secret")
    await gateway.wait_for(1)
    [n] = gateway.received
    assert set(n) == {"event_id", "room_id", "prio", "counts", "devices"}
    assert n["event_id"] == event_id
    assert "tweaks" not in n["devices"][0]
    assert n["devices"][0]["data"] == {"format": "event_id_only"}


async def test_a_muted_room_is_not_pushed(pushing: Pushing) -> None:
    api, gateway = pushing.api, pushing.gateway
    alice, bob, room_id = await _room_of_two(api)
    quiet = await create_room(api, alice, preset="public_chat")
    await join(api, bob, quiet)
    mute = {
        "actions": [],
        "conditions": [{"kind": "event_match", "key": "room_id", "pattern": quiet}],
    }
    r = await api.http.put(f"{V3}/pushrules/global/override/{quiet}", json=mute, headers=alice)
    assert r.status_code == 200
    assert (await _set(api, alice, _pusher(gateway.url))).status_code == 200
    await send(api, bob, quiet, "shh")
    loud = await send(api, bob, room_id, "loud")
    await gateway.wait_for(1)
    assert [n["event_id"] for n in gateway.received] == [loud]


async def test_a_failing_gateway_is_retried_and_each_event_arrives_once(pushing: Pushing) -> None:
    api, gateway = pushing.api, pushing.gateway
    alice, bob, room_id = await _room_of_two(api)
    gateway.answers = [(503, {}), (500, {}), (503, {})]
    assert (await _set(api, alice, _pusher(gateway.url))).status_code == 200
    ids = [await send(api, bob, room_id, f"m{n}") for n in range(3)]
    await gateway.wait_for(3)
    assert [n["event_id"] for n in gateway.received] == ids
    assert gateway.requests == 6  # three failures, then each event once
    assert api.services.push_delivery.statistics()["retried"] == 3
    exposition = await scrape(api.services, api.services.metrics)
    assert 'relay_push_notifications_total{outcome="retried"} 3' in exposition
    assert 'relay_push_notifications_total{outcome="pushed"} 3' in exposition
    assert "relay_pushers_served 1" in exposition


async def test_a_rejected_pushkey_deletes_the_pusher(pushing: Pushing) -> None:
    api, gateway = pushing.api, pushing.gateway
    alice, bob, room_id = await _room_of_two(api)
    gateway.answers = [(200, {"rejected": ["pk1"]})]
    assert (await _set(api, alice, _pusher(gateway.url))).status_code == 200
    await send(api, bob, room_id, "hello")
    await gateway.wait_for(1)
    with trio.fail_after(30):
        while await _pushers(api, alice):
            await trio.sleep(0.02)


async def test_a_gateway_on_an_internal_address_is_refused(tmp_path: Path) -> None:
    """The same loopback gateway, not allowed by the operator: nothing reaches it, over
    https (the address is refused) nor over http (the scheme is). Its allowed twin is
    every other delivery test here."""
    gateway = Gateway(free_port())
    async with trio.open_nursery() as nursery:
        await _serve_gateway(gateway, nursery)
        async with running_relay(tmp_path, gateway, allowed=False) as api:
            alice, bob, room_id = await _room_of_two(api)
            https = gateway.url.replace("http://", "https://")
            assert (await _set(api, alice, _pusher(https, "over-https"))).status_code == 200
            assert (await _set(api, alice, _pusher(gateway.url, "over-http"))).status_code == 200
            await send(api, bob, room_id, "hello")
            stats = api.services.push_delivery.gateways.statistics
            with trio.fail_after(30):
                while stats()["dropped"] < 2:
                    await trio.sleep(0.02)
            assert gateway.requests == 0
            assert stats()["pushed"] == 0
        nursery.cancel_scope.cancel()


async def test_an_unreachable_gateway_is_retried_until_it_answers(tmp_path: Path) -> None:
    """Nothing listens at the gateway's port at first (connection refused): the push waits
    and arrives once the gateway starts; its counts are those /sync gives."""
    gateway = Gateway(free_port())
    async with trio.open_nursery() as nursery:
        async with running_relay(tmp_path, gateway) as api:
            alice, bob, room_id = await _room_of_two(api)
            assert (await _set(api, alice, _pusher(gateway.url))).status_code == 200
            event_id = await send(api, bob, room_id, "are you there")
            stats = api.services.push_delivery.gateways.statistics
            with trio.fail_after(30):
                while stats()["retried"] < 2:
                    await trio.sleep(0.02)
            await _serve_gateway(gateway, nursery)
            await gateway.wait_for(1)
            assert [n["event_id"] for n in gateway.received] == [event_id]
            body = await sync(api, alice)
            unread = body["rooms"]["join"][room_id]["unread_notifications"]
            assert gateway.received[0]["counts"]["unread"] == unread["notification_count"]
        nursery.cancel_scope.cancel()


async def test_an_invite_is_pushed_to_the_invitee(pushing: Pushing) -> None:
    api, gateway = pushing.api, pushing.gateway
    alice = await api.login("alice")
    bob = await api.login("bob")
    assert (await _set(api, alice, _pusher(gateway.url))).status_code == 200
    room_id = await create_room(api, bob, preset="private_chat")
    r = await api.http.post(
        f"{V3}/rooms/{room_id}/invite", headers=bob, json={"user_id": uid("alice")}
    )
    assert r.status_code == 200, r.text
    await send(api, bob, room_id, "not for alice yet")
    await gateway.wait_for(1)
    [n] = gateway.received
    assert n["type"] == "m.room.member" and n["room_id"] == room_id
    assert n["membership"] == "invite" and n["user_is_target"] is True
    # Joined, the room's messages are pushed too (the one before the join is not).
    await join(api, alice, room_id)
    later = await send(api, bob, room_id, "welcome")
    await gateway.wait_for(2)
    assert gateway.received[1]["event_id"] == later


async def test_a_pusher_far_behind_pushes_only_the_newest(
    pushing: Pushing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backlog is bounded: a pusher more than MAX_BACKLOG events behind (here its row
    is written straight into the store at an old position) skips to the newest ones."""
    from relay.push import delivery
    from store import events as store_events
    from store import pushers as store_pushers

    monkeypatch.setattr(delivery, "MAX_BACKLOG", 2)
    api, gateway = pushing.api, pushing.gateway
    alice, bob, room_id = await _room_of_two(api)
    start = await api.services.database.read(store_events.max_stream_ordering)
    ids = [await send(api, bob, room_id, f"m{n}") for n in range(5)]
    device_id = (await api.http.get(f"{V3}/account/whoami", headers=alice)).json()["device_id"]

    def txn(conn: Any) -> None:
        store_pushers.set_pusher(
            conn,
            user_id=uid("alice"),
            app_id="org.example.app",
            pushkey="pk1",
            device_id=device_id,
            kind="http",
            app_display_name="Example",
            device_display_name="Phone",
            profile_tag="",
            lang="en",
            data={"url": gateway.url},
            now_ms=0,
            stream_ordering=start,
        )

    await api.services.database.write(txn)
    api.services.push_delivery.wake()
    await gateway.wait_for(2)
    await send(api, bob, room_id, "m5")
    await gateway.wait_for(3)
    assert [n["event_id"] for n in gateway.received][:2] == ids[3:]
    assert [n["content"]["body"] for n in gateway.received] == ["m3", "m4", "m5"]
