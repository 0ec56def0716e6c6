"""/sendToDevice and the /sync to_device section, in-process."""

from __future__ import annotations

import trio

from tests.client.conftest import ClientApi

SEND = "/_matrix/client/v3/sendToDevice"


async def _device(api: ClientApi, headers: dict[str, str]) -> str:
    r = await api.http.get("/_matrix/client/v3/account/whoami", headers=headers)
    return r.json()["device_id"]


async def _sync(api: ClientApi, headers: dict[str, str], since: str | None = None, timeout=0):
    params = {"timeout": str(timeout)}
    if since:
        params["since"] = since
    r = await api.http.get("/_matrix/client/v3/sync", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_message_is_delivered_until_acknowledged_then_gone(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    bob_device = await _device(api, bob)
    first = await _sync(api, bob)
    body = {"messages": {"@bob:relay.test": {bob_device: {"hello": 1}}}}
    r = await api.http.put(f"{SEND}/m.test/t1", json=body, headers=alice)
    assert r.status_code == 200 and r.json() == {}
    expected = [{"sender": "@alice:relay.test", "type": "m.test", "content": {"hello": 1}}]
    got = await _sync(api, bob, first["next_batch"])
    assert got["to_device"]["events"] == expected
    # Not acknowledged yet (same since again): delivered again.
    again = await _sync(api, bob, first["next_batch"])
    assert again["to_device"]["events"] == expected
    # Syncing from the token that carried it acknowledges it.
    after = await _sync(api, bob, again["next_batch"])
    assert after["to_device"]["events"] == []


async def test_same_txn_id_is_delivered_once_and_star_reaches_every_device(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob1 = await api.login("bob")
    bob2 = await api.login("bob")
    body = {"messages": {"@bob:relay.test": {"*": {"n": 1}}}}
    for _ in range(2):
        r = await api.http.put(f"{SEND}/m.test/same", json=body, headers=alice)
        assert r.status_code == 200
    for headers in (bob1, bob2):
        events = (await _sync(api, headers))["to_device"]["events"]
        assert [e["content"] for e in events] == [{"n": 1}]


async def test_a_message_wakes_a_long_poll(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    bob_device = await _device(api, bob)
    since = (await _sync(api, bob))["next_batch"]
    got: dict = {}

    async def poll() -> None:
        got.update(await _sync(api, bob, since, timeout=20_000))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(poll)
        await trio.sleep(0.2)
        body = {"messages": {"@bob:relay.test": {bob_device: {"wake": True}}}}
        await api.http.put(f"{SEND}/m.test/w", json=body, headers=alice)
    assert [e["content"] for e in got["to_device"]["events"]] == [{"wake": True}]


async def test_malformed_messages_are_refused(api: ClientApi) -> None:
    alice = await api.login("alice")
    for body in ({}, {"messages": []}, {"messages": {"bob": {}}}, {"messages": {"@b:x": {"D": 1}}}):
        r = await api.http.put(f"{SEND}/m.test/bad", json=body, headers=alice)
        assert r.status_code == 400 and r.json()["errcode"] == "M_INVALID_PARAM", body
