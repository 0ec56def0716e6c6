"""End-to-end keys to the letter (issue 14 item 7): what `/keys/upload` refuses and with
which errcode (Synapse 1.163.2's answers, the spec naming none), new devices and key
changes in `device_lists.changed`, `left` only for real leaves, `/keys/changes` between
two tokens, and UIA on every cross-signing change once cross-signing is set up."""

from __future__ import annotations

from typing import Any

import nacl.signing
import pytest

from tests.client.conftest import ClientApi
from tests.client.e2ee_helpers import cross_signing_key, device_keys
from tests.client.helpers import V3, create_room, join, sync, uid

K = f"{V3}/keys"


async def _device(api: ClientApi, name: str) -> tuple[dict[str, str], str]:
    headers = await api.login(name)
    who = (await api.http.get(f"{V3}/account/whoami", headers=headers)).json()
    return headers, who["device_id"]


def _good_keys(device_id: str) -> dict[str, Any]:
    return device_keys(uid("alice"), device_id, nacl.signing.SigningKey.generate())


def _without(obj: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != key}


BAD_UPLOADS: list[tuple[str, Any, str]] = [
    ("null device_keys", lambda d: {"device_keys": None}, "M_INVALID_PARAM"),
    ("device_keys not an object", lambda d: {"device_keys": "x"}, "M_BAD_JSON"),
    (
        "no signatures",
        lambda d: {"device_keys": _without(_good_keys(d), "signatures")},
        "M_MISSING_PARAM",
    ),
    (
        "no algorithms",
        lambda d: {"device_keys": _without(_good_keys(d), "algorithms")},
        "M_MISSING_PARAM",
    ),
    (
        "algorithms not a list",
        lambda d: {"device_keys": {**_good_keys(d), "algorithms": "m.megolm.v1.aes-sha2"}},
        "M_BAD_JSON",
    ),
    (
        "a key that is not a string",
        lambda d: {"device_keys": {**_good_keys(d), "keys": {f"ed25519:{d}": 5}}},
        "M_BAD_JSON",
    ),
    (
        "signatures not nested",
        lambda d: {"device_keys": {**_good_keys(d), "signatures": {uid("alice"): "x"}}},
        "M_BAD_JSON",
    ),
    (
        "one-time key id without a colon",
        lambda d: {"one_time_keys": {"nocolon": "k"}},
        "M_BAD_JSON",
    ),
    ("one-time key id with two colons", lambda d: {"one_time_keys": {"a:b:c": "k"}}, "M_BAD_JSON"),
    ("one-time key a number", lambda d: {"one_time_keys": {"curve25519:A": 5}}, "M_BAD_JSON"),
    (
        "signed one-time key without signatures",
        lambda d: {"one_time_keys": {"signed_curve25519:A": {"key": "k"}}},
        "M_BAD_JSON",
    ),
    ("fallback_keys a list", lambda d: {"fallback_keys": []}, "M_BAD_JSON"),
    ("fallback key id without a colon", lambda d: {"fallback_keys": {"f": "k"}}, "M_BAD_JSON"),
]


@pytest.mark.parametrize(("case", "body", "errcode"), BAD_UPLOADS, ids=[c[0] for c in BAD_UPLOADS])
async def test_upload_refuses_what_synapse_refuses_and_changes_nothing(
    api: ClientApi, case: str, body: Any, errcode: str
) -> None:
    headers, device_id = await _device(api, "alice")
    r = await api.http.post(f"{K}/upload", json=body(device_id), headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["errcode"] == errcode and isinstance(r.json()["error"], str)
    r = await api.http.post(f"{K}/query", json={"device_keys": {uid("alice"): []}}, headers=headers)
    assert r.json()["device_keys"][uid("alice")] == {}
    counts = (await sync(api, headers))["device_one_time_keys_count"]
    assert counts == {"signed_curve25519": 0}


async def test_upload_accepts_plain_and_signed_keys_and_an_empty_body(api: ClientApi) -> None:
    headers, device_id = await _device(api, "alice")
    body = {
        "device_keys": _good_keys(device_id),
        "one_time_keys": {
            "curve25519:A": "plainkey",
            "signed_curve25519:B": {"key": "k", "signatures": {uid("alice"): {"ed25519:X": "s"}}},
        },
        "fallback_keys": {"signed_curve25519:F": {"key": "f", "fallback": True, "signatures": {}}},
        "unknown_field": 1,
    }
    r = await api.http.post(f"{K}/upload", json=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"one_time_key_counts": {"curve25519": 1, "signed_curve25519": 1}}
    r = await api.http.post(f"{K}/upload", json={}, headers=headers)
    assert r.status_code == 200
    assert r.json()["one_time_key_counts"] == {"curve25519": 1, "signed_curve25519": 1}


async def test_a_new_device_is_news_to_room_mates_and_own_devices(api: ClientApi) -> None:
    alice, _ = await _device(api, "alice")
    bob, _ = await _device(api, "bob")
    room_id = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room_id)
    bob_since = (await sync(api, bob))["next_batch"]
    alice_since = (await sync(api, alice))["next_batch"]
    await api.login("alice")  # a second device, no keys uploaded yet
    assert (await sync(api, bob, bob_since))["device_lists"]["changed"] == [uid("alice")]
    assert (await sync(api, alice, alice_since))["device_lists"]["changed"] == [uid("alice")]


async def test_a_key_upload_is_news_to_the_users_other_devices(api: ClientApi) -> None:
    first, _ = await _device(api, "alice")
    second, second_id = await _device(api, "alice")
    since = (await sync(api, first))["next_batch"]
    keys = device_keys(uid("alice"), second_id, nacl.signing.SigningKey.generate())
    r = await api.http.post(f"{K}/upload", json={"device_keys": keys}, headers=second)
    assert r.status_code == 200, r.text
    assert (await sync(api, first, since))["device_lists"]["changed"] == [uid("alice")]


async def test_an_invite_is_not_a_leave_in_device_lists(api: ClientApi) -> None:
    alice, _ = await _device(api, "alice")
    bob, _ = await _device(api, "bob")
    carol, _ = await _device(api, "carol")
    room_id = await create_room(api, alice)
    alice_since = (await sync(api, alice))["next_batch"]
    carol_since = (await sync(api, carol))["next_batch"]
    for invitee in ("bob", "carol"):
        r = await api.http.post(
            f"{V3}/rooms/{room_id}/invite", json={"user_id": uid(invitee)}, headers=alice
        )
        assert r.status_code == 200, r.text
    body = await sync(api, alice, alice_since)
    assert body["device_lists"] == {"changed": [], "left": []}
    assert (await sync(api, carol, carol_since))["device_lists"]["left"] == []
    # Bob joins (news), then really leaves (a leave).
    await join(api, bob, room_id)
    body = await sync(api, alice, body["next_batch"])
    assert body["device_lists"] == {"changed": [uid("bob")], "left": []}
    r = await api.http.post(f"{V3}/rooms/{room_id}/leave", json={}, headers=bob)
    assert r.status_code == 200
    body = await sync(api, alice, body["next_batch"])
    assert body["device_lists"] == {"changed": [], "left": [uid("bob")]}


async def test_keys_changes_lists_only_what_moved_between_the_tokens(api: ClientApi) -> None:
    alice, _ = await _device(api, "alice")
    bob, bob_device = await _device(api, "bob")
    carol, carol_device = await _device(api, "carol")
    room_id = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room_id)
    await join(api, carol, room_id)
    keys = device_keys(uid("bob"), bob_device, nacl.signing.SigningKey.generate())
    assert (await api.http.post(f"{K}/upload", json={"device_keys": keys}, headers=bob)).is_success
    start = (await sync(api, alice))["next_batch"]
    keys = device_keys(uid("carol"), carol_device, nacl.signing.SigningKey.generate())
    r = await api.http.post(f"{K}/upload", json={"device_keys": keys}, headers=carol)
    assert r.status_code == 200
    middle = (await sync(api, alice, start))["next_batch"]
    keys = device_keys(uid("bob"), bob_device, nacl.signing.SigningKey.generate())
    assert (await api.http.post(f"{K}/upload", json={"device_keys": keys}, headers=bob)).is_success
    end = (await sync(api, alice, middle))["next_batch"]
    for since, to, changed in (
        (start, middle, [uid("carol")]),
        (middle, end, [uid("bob")]),
        (start, end, [uid("bob"), uid("carol")]),
    ):
        r = await api.http.get(f"{K}/changes", params={"from": since, "to": to}, headers=alice)
        assert r.status_code == 200, r.text
        assert r.json() == {"changed": changed, "left": []}


async def _uia_upload(api: ClientApi, headers: dict[str, str], body: dict[str, Any]) -> Any:
    r = await api.http.post(f"{K}/device_signing/upload", json=body, headers=headers)
    if r.status_code != 401:
        return r
    auth = {
        "type": "m.login.password",
        "session": r.json()["session"],
        "identifier": {"type": "m.id.user", "user": "alice"},
        "password": "pw",
    }
    return await api.http.post(
        f"{K}/device_signing/upload", json={**body, "auth": auth}, headers=headers
    )


async def test_any_cross_signing_change_after_setup_needs_uia(api: ClientApi) -> None:
    headers, _ = await _device(api, "alice")
    master = nacl.signing.SigningKey.generate()
    first = {"master_key": cross_signing_key(uid("alice"), "master", master, None)}
    r = await api.http.post(f"{K}/device_signing/upload", json=first, headers=headers)
    assert r.status_code == 200, r.text
    # The same keys again: nothing changes, nothing is asked.
    r = await api.http.post(f"{K}/device_signing/upload", json=first, headers=headers)
    assert r.status_code == 200 and r.json() == {}
    for usage in ("self_signing", "user_signing"):
        key = cross_signing_key(uid("alice"), usage, nacl.signing.SigningKey.generate(), master)
        body = {f"{usage}_key": key}
        r = await api.http.post(f"{K}/device_signing/upload", json=body, headers=headers)
        assert r.status_code == 401, (usage, r.text)
        assert r.json()["flows"] == [{"stages": ["m.login.password"]}]
        r = await _uia_upload(api, headers, body)
        assert r.status_code == 200, (usage, r.text)
    r = await api.http.post(f"{K}/query", json={"device_keys": {uid("alice"): []}}, headers=headers)
    assert uid("alice") in r.json()["self_signing_keys"]
    assert uid("alice") in r.json()["user_signing_keys"]


async def test_first_cross_signing_setup_needs_no_uia(api: ClientApi) -> None:
    headers, _ = await _device(api, "alice")
    master = nacl.signing.SigningKey.generate()
    body = {
        "master_key": cross_signing_key(uid("alice"), "master", master, None),
        "self_signing_key": cross_signing_key(
            uid("alice"), "self_signing", nacl.signing.SigningKey.generate(), master
        ),
        "user_signing_key": cross_signing_key(
            uid("alice"), "user_signing", nacl.signing.SigningKey.generate(), master
        ),
    }
    r = await api.http.post(f"{K}/device_signing/upload", json=body, headers=headers)
    assert r.status_code == 200 and r.json() == {}
