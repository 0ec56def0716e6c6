"""Password change through the real app: UIA with the old password, other devices die."""

from __future__ import annotations

from tests.client.conftest import ClientApi

V3 = "/_matrix/client/v3"


async def _login(api: ClientApi, password: str, device_id: str | None = None) -> int | dict:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "alice"},
        "password": password,
    }
    if device_id:
        body["device_id"] = device_id
    r = await api.http.post(f"{V3}/login", json=body)
    if r.status_code != 200:
        return r.status_code
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def _change(api: ClientApi, headers: dict, body: dict, old: str = "old") -> int:
    r = await api.http.post(f"{V3}/account/password", headers=headers, json=body)
    assert r.status_code == 401
    assert r.json()["flows"] == [{"stages": ["m.login.password"]}]
    body["auth"] = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "alice"},
        "password": old,
        "session": r.json()["session"],
    }
    r = await api.http.post(f"{V3}/account/password", headers=headers, json=body)
    return r.status_code


async def test_change_password_then_old_fails_and_other_devices_die(api: ClientApi) -> None:
    await api.add_user("alice", "old")
    phone = await _login(api, "old", "PHONE")
    laptop = await _login(api, "old", "LAPTOP")
    assert isinstance(phone, dict) and isinstance(laptop, dict)
    assert await _change(api, phone, {"new_password": "new"}) == 200
    assert await _login(api, "old") == 403
    assert isinstance(await _login(api, "new"), dict)
    assert (await api.http.get(f"{V3}/account/whoami", headers=phone)).status_code == 200
    assert (await api.http.get(f"{V3}/account/whoami", headers=laptop)).status_code == 401


async def test_change_password_can_keep_other_devices(api: ClientApi) -> None:
    await api.add_user("alice", "old")
    phone = await _login(api, "old", "PHONE")
    laptop = await _login(api, "old", "LAPTOP")
    assert isinstance(phone, dict) and isinstance(laptop, dict)
    body = {"new_password": "new", "logout_devices": False}
    assert await _change(api, phone, body) == 200
    assert (await api.http.get(f"{V3}/account/whoami", headers=laptop)).status_code == 200


async def test_change_password_with_wrong_old_password_is_refused(api: ClientApi) -> None:
    await api.add_user("alice", "old")
    phone = await _login(api, "old")
    assert isinstance(phone, dict)
    assert await _change(api, phone, {"new_password": "new"}, old="guess") == 401
    assert isinstance(await _login(api, "old"), dict)


async def test_change_password_needs_new_password(api: ClientApi) -> None:
    headers = await api.login("alice")
    r = await api.http.post(f"{V3}/account/password", headers=headers, json={})
    assert (r.status_code, r.json()["errcode"]) == (400, "M_MISSING_PARAM")
