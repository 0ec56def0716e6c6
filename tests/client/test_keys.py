"""/keys/upload, /keys/query, /keys/claim, /keys/changes and cross-signing, in-process."""

from __future__ import annotations

import nacl.signing

from tests.client.conftest import ClientApi
from tests.client.e2ee_helpers import cross_signing_key, device_keys, public, sign

K = "/_matrix/client/v3/keys"


async def _login(api: ClientApi, name: str) -> tuple[dict[str, str], str, str]:
    headers = await api.login(name)
    who = (await api.http.get("/_matrix/client/v3/account/whoami", headers=headers)).json()
    return headers, who["user_id"], who["device_id"]


async def _upload_device(api: ClientApi, name: str) -> tuple[dict[str, str], str, str, dict]:
    headers, user_id, device_id = await _login(api, name)
    keys = device_keys(user_id, device_id, nacl.signing.SigningKey.generate())
    r = await api.http.post(f"{K}/upload", json={"device_keys": keys}, headers=headers)
    assert r.status_code == 200, r.text
    return headers, user_id, device_id, keys


async def test_upload_then_query_returns_the_signed_device_keys(api: ClientApi) -> None:
    headers, user_id, device_id, keys = await _upload_device(api, "alice")
    r = await api.http.post(f"{K}/query", json={"device_keys": {user_id: []}}, headers=headers)
    assert r.status_code == 200, r.text
    got = r.json()["device_keys"][user_id][device_id]
    assert got["keys"] == keys["keys"] and got["signatures"] == keys["signatures"]
    assert r.json()["failures"] == {}


async def test_upload_keeps_keys_whatever_their_self_signature(api: ClientApi) -> None:
    """As Synapse: the server stores well-formed keys; the clients that download them
    verify the self-signature."""
    headers, user_id, device_id = await _login(api, "alice")
    keys = device_keys(user_id, device_id, nacl.signing.SigningKey.generate())
    keys["keys"][f"curve25519:{device_id}"] = "tampered"
    r = await api.http.post(f"{K}/upload", json={"device_keys": keys}, headers=headers)
    assert r.status_code == 200, r.text
    r = await api.http.post(f"{K}/query", json={"device_keys": {user_id: []}}, headers=headers)
    assert r.json()["device_keys"][user_id][device_id]["keys"] == keys["keys"]


async def test_upload_refuses_keys_of_another_device(api: ClientApi) -> None:
    headers, user_id, _ = await _login(api, "alice")
    keys = device_keys(user_id, "OTHER", nacl.signing.SigningKey.generate())
    r = await api.http.post(f"{K}/upload", json={"device_keys": keys}, headers=headers)
    assert r.status_code == 400 and r.json()["errcode"] == "M_BAD_JSON"
    keys = device_keys("@bob:relay.test", "OTHER", nacl.signing.SigningKey.generate())
    r = await api.http.post(f"{K}/upload", json={"device_keys": keys}, headers=headers)
    assert r.status_code == 400 and r.json()["errcode"] == "M_BAD_JSON"


async def test_one_time_keys_are_counted_claimed_once_then_fallback(api: ClientApi) -> None:
    headers, user_id, device_id, _ = await _upload_device(api, "alice")
    body = {
        "one_time_keys": {
            "signed_curve25519:AAA": {"key": "k1", "signatures": {}},
            "signed_curve25519:BBB": {"key": "k2", "signatures": {}},
        },
        "fallback_keys": {
            "signed_curve25519:FFF": {"key": "f", "fallback": True, "signatures": {}}
        },
    }
    r = await api.http.post(f"{K}/upload", json=body, headers=headers)
    assert r.json()["one_time_key_counts"] == {"signed_curve25519": 2}
    sync = (await api.http.get("/_matrix/client/v3/sync", headers=headers)).json()
    assert sync["device_one_time_keys_count"] == {"signed_curve25519": 2}
    assert sync["device_unused_fallback_key_types"] == ["signed_curve25519"]
    bob = await api.login("bob")
    claim = {"one_time_keys": {user_id: {device_id: "signed_curve25519"}}}
    got = []
    for _ in range(3):
        r = await api.http.post(f"{K}/claim", json=claim, headers=bob)
        assert r.status_code == 200, r.text
        got.append(r.json()["one_time_keys"][user_id][device_id])
    assert [next(iter(g)) for g in got] == [
        "signed_curve25519:AAA",
        "signed_curve25519:BBB",
        "signed_curve25519:FFF",
    ]
    sync = (await api.http.get("/_matrix/client/v3/sync", headers=headers)).json()
    assert sync["device_one_time_keys_count"] == {"signed_curve25519": 0}
    assert sync["device_unused_fallback_key_types"] == []


async def test_same_one_time_key_id_with_other_content_is_refused(api: ClientApi) -> None:
    headers, *_ = await _upload_device(api, "alice")
    first = {"one_time_keys": {"signed_curve25519:AAA": {"key": "k1", "signatures": {}}}}
    assert (await api.http.post(f"{K}/upload", json=first, headers=headers)).status_code == 200
    assert (await api.http.post(f"{K}/upload", json=first, headers=headers)).status_code == 200
    # The same key with other signatures is the same key (Synapse compares them so).
    resigned = {"one_time_keys": {"signed_curve25519:AAA": {"key": "k1", "signatures": {"x": {}}}}}
    r = await api.http.post(f"{K}/upload", json=resigned, headers=headers)
    assert r.status_code == 200 and r.json()["one_time_key_counts"]["signed_curve25519"] == 1
    other = {"one_time_keys": {"signed_curve25519:AAA": {"key": "k2", "signatures": {}}}}
    r = await api.http.post(f"{K}/upload", json=other, headers=headers)
    # Synapse's answer: 400 M_UNKNOWN (the spec names no errcode for it).
    assert r.status_code == 400 and r.json()["errcode"] == "M_UNKNOWN"


async def test_query_and_claim_reject_malformed_bodies(api: ClientApi) -> None:
    headers = await api.login("alice")
    for path, body in (
        ("query", {"device_keys": []}),
        ("query", {"device_keys": {"@a:relay.test": "x"}}),
        ("claim", {"one_time_keys": {"@a:relay.test": ["x"]}}),
    ):
        r = await api.http.post(f"{K}/{path}", json=body, headers=headers)
        assert r.status_code == 400 and r.json()["errcode"] == "M_INVALID_PARAM", (path, r.text)


async def test_device_list_change_reaches_a_room_mate_in_sync_and_changes(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room = (await api.http.post("/_matrix/client/v3/createRoom", json={}, headers=alice)).json()
    room_id = room["room_id"]
    await api.http.post(
        f"/_matrix/client/v3/rooms/{room_id}/invite",
        json={"user_id": "@bob:relay.test"},
        headers=alice,
    )
    await api.http.post(f"/_matrix/client/v3/join/{room_id}", json={}, headers=bob)
    since = (await api.http.get("/_matrix/client/v3/sync", headers=bob)).json()["next_batch"]
    await _upload_device_for(api, alice, "@alice:relay.test")
    sync = (
        await api.http.get(f"/_matrix/client/v3/sync?since={since}&timeout=1000", headers=bob)
    ).json()
    assert sync["device_lists"]["changed"] == ["@alice:relay.test"]
    r = await api.http.get(
        f"{K}/changes", params={"from": since, "to": sync["next_batch"]}, headers=bob
    )
    assert r.json() == {"changed": ["@alice:relay.test"], "left": []}
    await api.http.post(f"/_matrix/client/v3/rooms/{room_id}/leave", json={}, headers=alice)
    sync2 = (
        await api.http.get(f"/_matrix/client/v3/sync?since={sync['next_batch']}", headers=bob)
    ).json()
    assert sync2["device_lists"]["left"] == ["@alice:relay.test"]


async def _upload_device_for(api: ClientApi, headers: dict[str, str], user_id: str) -> None:
    who = (await api.http.get("/_matrix/client/v3/account/whoami", headers=headers)).json()
    keys = device_keys(user_id, who["device_id"], nacl.signing.SigningKey.generate())
    r = await api.http.post(f"{K}/upload", json={"device_keys": keys}, headers=headers)
    assert r.status_code == 200, r.text


async def test_keys_changes_needs_both_tokens(api: ClientApi) -> None:
    headers = await api.login("alice")
    r = await api.http.get(f"{K}/changes", params={"from": "s0"}, headers=headers)
    assert r.status_code == 400 and r.json()["errcode"] == "M_MISSING_PARAM"
    r = await api.http.get(f"{K}/changes", params={"from": "x", "to": "s1"}, headers=headers)
    assert r.status_code == 400 and r.json()["errcode"] == "M_INVALID_PARAM"


async def test_cross_signing_upload_query_and_signatures(api: ClientApi) -> None:
    headers, user_id, device_id, keys = await _upload_device(api, "alice")
    master, ssk, usk = (nacl.signing.SigningKey.generate() for _ in range(3))
    body = {
        "master_key": cross_signing_key(user_id, "master", master, None),
        "self_signing_key": cross_signing_key(user_id, "self_signing", ssk, master),
        "user_signing_key": cross_signing_key(user_id, "user_signing", usk, master),
    }
    r = await api.http.post(f"{K}/device_signing/upload", json=body, headers=headers)
    assert r.status_code == 200, r.text
    # The device, signed by the self-signing key.
    signed = sign(keys, user_id, f"ed25519:{public(ssk)}", ssk)
    r = await api.http.post(
        f"{K}/signatures/upload", json={user_id: {device_id: signed}}, headers=headers
    )
    assert r.json() == {"failures": {}}
    bad = sign(keys, user_id, f"ed25519:{public(ssk)}", nacl.signing.SigningKey.generate())
    r = await api.http.post(
        f"{K}/signatures/upload", json={user_id: {device_id: bad}}, headers=headers
    )
    assert r.json()["failures"][user_id][device_id]["errcode"] == "M_INVALID_SIGNATURE"
    r = await api.http.post(f"{K}/query", json={"device_keys": {user_id: []}}, headers=headers)
    got = r.json()
    assert got["master_keys"][user_id]["keys"] == body["master_key"]["keys"]
    assert user_id in got["self_signing_keys"] and user_id in got["user_signing_keys"]
    assert f"ed25519:{public(ssk)}" in got["device_keys"][user_id][device_id]["signatures"][user_id]
    # Another user sees no user-signing key.
    bob = await api.login("bob")
    r = await api.http.post(f"{K}/query", json={"device_keys": {user_id: []}}, headers=bob)
    assert r.json()["user_signing_keys"] == {} and user_id in r.json()["master_keys"]


async def test_replacing_the_master_key_needs_the_password(api: ClientApi) -> None:
    headers, user_id, _, _ = await _upload_device(api, "alice")
    first = {
        "master_key": cross_signing_key(user_id, "master", nacl.signing.SigningKey.generate(), None)
    }
    r = await api.http.post(f"{K}/device_signing/upload", json=first, headers=headers)
    assert r.status_code == 200, r.text
    second = {
        "master_key": cross_signing_key(user_id, "master", nacl.signing.SigningKey.generate(), None)
    }
    r = await api.http.post(f"{K}/device_signing/upload", json=second, headers=headers)
    assert r.status_code == 401 and r.json()["flows"] == [{"stages": ["m.login.password"]}]
    auth = {
        "type": "m.login.password",
        "session": r.json()["session"],
        "identifier": {"type": "m.id.user", "user": "alice"},
        "password": "wrong",
    }
    r = await api.http.post(
        f"{K}/device_signing/upload", json={**second, "auth": auth}, headers=headers
    )
    assert r.status_code == 401 and r.json()["errcode"] == "M_FORBIDDEN"
    auth["password"] = "pw"
    r = await api.http.post(
        f"{K}/device_signing/upload", json={**second, "auth": auth}, headers=headers
    )
    assert r.status_code == 200, r.text


async def test_self_signing_key_must_be_signed_by_the_master(api: ClientApi) -> None:
    headers, user_id, _, _ = await _upload_device(api, "alice")
    master = nacl.signing.SigningKey.generate()
    body = {
        "master_key": cross_signing_key(user_id, "master", master, None),
        "self_signing_key": cross_signing_key(
            user_id, "self_signing", nacl.signing.SigningKey.generate(), None
        ),
    }
    r = await api.http.post(f"{K}/device_signing/upload", json=body, headers=headers)
    assert r.status_code == 400 and r.json()["errcode"] == "M_INVALID_SIGNATURE"
    body["self_signing_key"]["usage"] = ["master"]
    r = await api.http.post(f"{K}/device_signing/upload", json=body, headers=headers)
    assert r.status_code == 400 and r.json()["errcode"] == "M_INVALID_PARAM"


async def test_deleting_a_device_removes_its_keys(api: ClientApi) -> None:
    headers, user_id, device_id, _ = await _upload_device(api, "alice")
    other = await api.login("alice")
    r = await api.http.post("/_matrix/client/v3/logout", headers=headers)
    assert r.status_code == 200
    r = await api.http.post(f"{K}/query", json={"device_keys": {user_id: []}}, headers=other)
    assert device_id not in r.json()["device_keys"][user_id]
