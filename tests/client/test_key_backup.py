"""Server-side key backup (/room_keys/version, /room_keys/keys), in-process."""

from __future__ import annotations

from tests.client.conftest import ClientApi

V = "/_matrix/client/v3/room_keys/version"
KEYS = "/_matrix/client/v3/room_keys/keys"
ALG = "m.megolm_backup.v1.curve25519-aes-sha2"


def _key(index: int, verified: bool = False, forwarded: int = 0) -> dict:
    return {
        "first_message_index": index,
        "forwarded_count": forwarded,
        "is_verified": verified,
        "session_data": {"ciphertext": f"c{index}{verified}{forwarded}"},
    }


async def test_versions_create_read_update_delete(api: ClientApi) -> None:
    h = await api.login("alice")
    r = await api.http.get(V, headers=h)
    assert r.status_code == 404 and r.json()["errcode"] == "M_NOT_FOUND"
    r = await api.http.post(V, json={"algorithm": ALG, "auth_data": {"public_key": "p"}}, headers=h)
    assert r.json() == {"version": "1"}
    r = await api.http.get(V, headers=h)
    assert r.json() == {
        "algorithm": ALG,
        "auth_data": {"public_key": "p"},
        "version": "1",
        "etag": "0",
        "count": 0,
    }
    r = await api.http.put(
        f"{V}/1",
        json={"algorithm": ALG, "auth_data": {"public_key": "q"}, "version": "1"},
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert (await api.http.get(f"{V}/1", headers=h)).json()["auth_data"] == {"public_key": "q"}
    r = await api.http.put(
        f"{V}/1", json={"algorithm": ALG, "auth_data": {}, "version": "2"}, headers=h
    )
    assert r.json()["errcode"] == "M_INVALID_PARAM"
    assert (await api.http.delete(f"{V}/1", headers=h)).status_code == 200
    assert (await api.http.get(f"{V}/1", headers=h)).status_code == 404
    assert (await api.http.delete(f"{V}/1", headers=h)).status_code == 404
    r = await api.http.post(V, json={"algorithm": ALG, "auth_data": {}}, headers=h)
    assert r.json() == {"version": "2"}  # numbers are never reused


async def test_bad_algorithm_is_refused(api: ClientApi) -> None:
    h = await api.login("alice")
    r = await api.http.post(V, json={"algorithm": "m.other", "auth_data": {}}, headers=h)
    assert r.status_code == 400 and r.json()["errcode"] == "M_INVALID_PARAM"


async def test_keys_at_three_levels_with_etag_count_and_better_key_rule(api: ClientApi) -> None:
    h = await api.login("alice")
    await api.http.post(V, json={"algorithm": ALG, "auth_data": {}}, headers=h)
    r = await api.http.put(
        KEYS,
        params={"version": "1"},
        json={"rooms": {"!r:x": {"sessions": {"s1": _key(5), "s2": _key(0)}}}},
        headers=h,
    )
    assert r.json() == {"etag": "1", "count": 2}
    r = await api.http.put(
        f"{KEYS}/!r:x", params={"version": "1"}, json={"sessions": {"s3": _key(1)}}, headers=h
    )
    assert r.json()["count"] == 3
    # A worse key (higher index) does not replace; a better one does.
    r = await api.http.put(f"{KEYS}/!r:x/s1", params={"version": "1"}, json=_key(9), headers=h)
    assert r.json() == {"etag": "2", "count": 3}
    got = await api.http.get(f"{KEYS}/!r:x/s1", params={"version": "1"}, headers=h)
    assert got.json()["first_message_index"] == 5
    await api.http.put(f"{KEYS}/!r:x/s1", params={"version": "1"}, json=_key(2), headers=h)
    got = await api.http.get(f"{KEYS}/!r:x/s1", params={"version": "1"}, headers=h)
    assert got.json() == _key(2)
    everything = (await api.http.get(KEYS, params={"version": "1"}, headers=h)).json()
    assert set(everything["rooms"]["!r:x"]["sessions"]) == {"s1", "s2", "s3"}
    room = (await api.http.get(f"{KEYS}/!r:x", params={"version": "1"}, headers=h)).json()
    assert set(room["sessions"]) == {"s1", "s2", "s3"}
    empty = (await api.http.get(f"{KEYS}/!none:x", params={"version": "1"}, headers=h)).json()
    assert empty == {"sessions": {}}
    r = await api.http.get(f"{KEYS}/!r:x/nope", params={"version": "1"}, headers=h)
    assert r.status_code == 404 and r.json()["errcode"] == "M_NOT_FOUND"
    r = await api.http.delete(f"{KEYS}/!r:x/s1", params={"version": "1"}, headers=h)
    assert r.json()["count"] == 2
    r = await api.http.delete(KEYS, params={"version": "1"}, headers=h)
    assert r.json()["count"] == 0


async def test_upload_to_an_old_version_is_wrong_room_keys_version(api: ClientApi) -> None:
    h = await api.login("alice")
    await api.http.post(V, json={"algorithm": ALG, "auth_data": {}}, headers=h)
    await api.http.post(V, json={"algorithm": ALG, "auth_data": {}}, headers=h)
    r = await api.http.put(f"{KEYS}/!r:x/s", params={"version": "1"}, json=_key(0), headers=h)
    assert r.status_code == 403
    assert r.json()["errcode"] == "M_WRONG_ROOM_KEYS_VERSION" and r.json()["current_version"] == "2"
    r = await api.http.put(f"{KEYS}/!r:x/s", params={"version": "7"}, json=_key(0), headers=h)
    assert r.status_code == 404
    r = await api.http.put(f"{KEYS}/!r:x/s", json=_key(0), headers=h)
    assert r.status_code == 400 and r.json()["errcode"] == "M_MISSING_PARAM"
    r = await api.http.put(f"{KEYS}/!r:x/s", params={"version": "2"}, json={"x": 1}, headers=h)
    assert r.status_code == 400 and r.json()["errcode"] == "M_INVALID_PARAM"


async def test_more_than_ten_versions_count_as_numbers(api: ClientApi) -> None:
    """Versions are numbers: the twelfth is newer than the ninth (not "9" > "12")."""
    h = await api.login("alice")
    for n in range(1, 13):
        r = await api.http.post(V, json={"algorithm": ALG, "auth_data": {"n": n}}, headers=h)
        assert r.status_code == 200 and r.json() == {"version": str(n)}
    current = (await api.http.get(V, headers=h)).json()
    assert current["version"] == "12" and current["auth_data"] == {"n": 12}
    r = await api.http.put(
        f"{KEYS}/!r:relay.test/s", params={"version": "12"}, json=_key(1), headers=h
    )
    assert r.status_code == 200 and r.json()["count"] == 1
    r = await api.http.put(
        f"{V}/11", json={"algorithm": ALG, "auth_data": {"n": "eleven"}}, headers=h
    )
    assert r.status_code == 200 and r.json() == {}
    assert (await api.http.get(f"{V}/11", headers=h)).json()["auth_data"] == {"n": "eleven"}
    assert (await api.http.delete(f"{V}/12", headers=h)).status_code == 200
    current = (await api.http.get(V, headers=h)).json()
    assert current["version"] == "11" and current["count"] == 0
    r = await api.http.post(V, json={"algorithm": ALG, "auth_data": {}}, headers=h)
    assert r.json() == {"version": "13"}


async def test_version_errors(api: ClientApi) -> None:
    h = await api.login("alice")
    r = await api.http.post(V, json={"algorithm": ALG, "auth_data": {}}, headers=h)
    assert r.json() == {"version": "1"}
    for method, path, body, status, errcode in (
        ("POST", V, {"auth_data": {}}, 400, "M_MISSING_PARAM"),
        ("POST", V, {"algorithm": ALG}, 400, "M_MISSING_PARAM"),
        ("POST", V, {"algorithm": ALG, "auth_data": "x"}, 400, "M_INVALID_PARAM"),
        ("PUT", f"{V}/1", {"algorithm": "m.other", "auth_data": {}}, 400, "M_INVALID_PARAM"),
        ("PUT", f"{V}/1", {"algorithm": ALG, "auth_data": {}, "version": "2"}, 400, None),
        ("PUT", f"{V}/7", {"algorithm": ALG, "auth_data": {}}, 404, "M_NOT_FOUND"),
        ("PUT", f"{V}/abc", {"algorithm": ALG, "auth_data": {}}, 404, "M_NOT_FOUND"),
        ("GET", f"{V}/abc", None, 404, "M_NOT_FOUND"),
        ("GET", f"{V}/99999999999999999999999", None, 404, "M_NOT_FOUND"),
        ("DELETE", f"{V}/7", None, 404, "M_NOT_FOUND"),
    ):
        r = await api.http.request(method, path, json=body, headers=h)
        assert r.status_code == status, (method, path, body, r.text)
        assert r.json()["errcode"] == (errcode or "M_INVALID_PARAM"), (method, path, r.text)
    # Nothing above changed version 1.
    assert (await api.http.get(V, headers=h)).json()["auth_data"] == {}
    # Another user's versions are not ours.
    bob = await api.login("bob")
    assert (await api.http.get(f"{V}/1", headers=bob)).status_code == 404
