"""Device management through the real app: list, rename, and deletion behind UIA."""

from __future__ import annotations

from tests.client.conftest import SERVER_NAME, ClientApi
from tests.client.helpers import password_auth

V3 = "/_matrix/client/v3"


async def _login_device(api: ClientApi, localpart: str, device_id: str) -> dict[str, str]:
    r = await api.http.post(
        f"{V3}/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": localpart},
            "password": "pw",
            "device_id": device_id,
            "initial_device_display_name": f"{device_id} name",
        },
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def test_devices_list_get_and_rename(api: ClientApi) -> None:
    await api.add_user("alice")
    phone = await _login_device(api, "alice", "PHONE")
    await _login_device(api, "alice", "LAPTOP")
    r = await api.http.get(f"{V3}/devices", headers=phone)
    assert r.status_code == 200
    devices = r.json()["devices"]
    assert [(d["device_id"], d["display_name"]) for d in devices] == [
        ("LAPTOP", "LAPTOP name"),
        ("PHONE", "PHONE name"),
    ]
    assert all(isinstance(d["last_seen_ts"], int) for d in devices)
    r = await api.http.put(f"{V3}/devices/LAPTOP", headers=phone, json={"display_name": "Work"})
    assert r.status_code == 200
    r = await api.http.get(f"{V3}/devices/LAPTOP", headers=phone)
    assert r.json()["display_name"] == "Work"


async def test_unknown_or_foreign_device_is_not_found(api: ClientApi) -> None:
    alice = await api.login("alice")
    await api.add_user("bob")
    await _login_device(api, "bob", "BOBPHONE")
    for path in (f"{V3}/devices/NOPE", f"{V3}/devices/BOBPHONE"):
        r = await api.http.get(path, headers=alice)
        assert (r.status_code, r.json()["errcode"]) == (404, "M_NOT_FOUND")
    r = await api.http.put(f"{V3}/devices/BOBPHONE", headers=alice, json={"display_name": "x"})
    assert r.status_code == 404


async def test_delete_device_needs_uia_and_kills_its_token(api: ClientApi) -> None:
    await api.add_user("alice")
    phone = await _login_device(api, "alice", "PHONE")
    laptop = await _login_device(api, "alice", "LAPTOP")
    r = await api.http.request("DELETE", f"{V3}/devices/LAPTOP", headers=phone)
    assert r.status_code == 401
    challenge = r.json()
    assert challenge["flows"] == [{"stages": ["m.login.password"]}]
    assert challenge["session"]
    assert (await api.http.get(f"{V3}/account/whoami", headers=laptop)).status_code == 200

    wrong = {"auth": password_auth(challenge["session"], "nope")}
    r = await api.http.request("DELETE", f"{V3}/devices/LAPTOP", headers=phone, json=wrong)
    assert (r.status_code, r.json()["errcode"]) == (401, "M_FORBIDDEN")
    assert r.json()["session"] == challenge["session"]

    right = {"auth": password_auth(challenge["session"])}
    r = await api.http.request("DELETE", f"{V3}/devices/LAPTOP", headers=phone, json=right)
    assert r.status_code == 200, r.text
    r = await api.http.get(f"{V3}/account/whoami", headers=laptop)
    assert (r.status_code, r.json()["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    r = await api.http.get(f"{V3}/devices", headers=phone)
    assert [d["device_id"] for d in r.json()["devices"]] == ["PHONE"]


async def test_uia_session_is_bound_to_the_devices_it_was_started_for(api: ClientApi) -> None:
    await api.add_user("alice")
    phone = await _login_device(api, "alice", "PHONE")
    await _login_device(api, "alice", "LAPTOP")
    r = await api.http.request("DELETE", f"{V3}/devices/LAPTOP", headers=phone)
    session = r.json()["session"]
    r = await api.http.request(
        "DELETE", f"{V3}/devices/PHONE", headers=phone, json={"auth": password_auth(session)}
    )
    assert r.status_code == 400


async def test_uia_password_must_be_the_requesters(api: ClientApi) -> None:
    await api.add_user("alice")
    await api.add_user("bob", "bobpw")
    phone = await _login_device(api, "alice", "PHONE")
    r = await api.http.post(f"{V3}/delete_devices", headers=phone, json={"devices": ["PHONE"]})
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": f"@bob:{SERVER_NAME}"},
        "password": "bobpw",
        "session": r.json()["session"],
    }
    r = await api.http.post(
        f"{V3}/delete_devices", headers=phone, json={"devices": ["PHONE"], "auth": auth}
    )
    assert (r.status_code, r.json()["errcode"]) == (401, "M_FORBIDDEN")


async def test_delete_devices_in_bulk(api: ClientApi) -> None:
    await api.add_user("alice")
    phone = await _login_device(api, "alice", "PHONE")
    tablet = await _login_device(api, "alice", "TABLET")
    await _login_device(api, "alice", "LAPTOP")
    body = {"devices": ["TABLET", "LAPTOP", "NEVER_EXISTED"]}
    r = await api.http.post(f"{V3}/delete_devices", headers=phone, json=body)
    assert r.status_code == 401
    body["auth"] = password_auth(r.json()["session"])
    r = await api.http.post(f"{V3}/delete_devices", headers=phone, json=body)
    assert r.status_code == 200, r.text
    assert (await api.http.get(f"{V3}/account/whoami", headers=tablet)).status_code == 401
    r = await api.http.get(f"{V3}/devices", headers=phone)
    assert [d["device_id"] for d in r.json()["devices"]] == ["PHONE"]
