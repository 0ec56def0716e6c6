"""Registration through the real app: each registration mode, the UIA dance, username
rules, and Synapse's shared-secret endpoint."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from relay.runtime.clock import now_ms
from store import registration_tokens as store_tokens
from tests.client.conftest import SERVER_NAME, ClientApi

V3 = "/_matrix/client/v3"
V1 = "/_matrix/client/v1"
ADMIN = "/_synapse/admin/v1/register"
SECRET = "s3cret-for-tests"


async def _add_token(api: ClientApi, token: str, uses: int | None = None) -> None:
    await api.services.database.write(
        lambda conn: store_tokens.create_token(conn, token=token, uses_allowed=uses)
    )


async def _token_row(api: ClientApi, token: str) -> dict[str, Any] | None:
    return await api.services.database.read(store_tokens.get_token, token)


async def _whoami(api: ClientApi, token: str) -> int:
    r = await api.http.get(f"{V3}/account/whoami", headers={"Authorization": f"Bearer {token}"})
    return r.status_code


# Closed (the default) ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["user", "guest"])
async def test_closed_registration_is_forbidden_for_every_kind(api: ClientApi, kind: str) -> None:
    r = await api.http.post(
        f"{V3}/register?kind={kind}",
        json={"username": "alice", "password": "pw", "auth": {"type": "m.login.dummy"}},
    )
    assert r.status_code == 403
    assert r.json()["errcode"] == "M_FORBIDDEN"


async def test_closed_registration_refuses_token_validity(api: ClientApi) -> None:
    r = await api.http.get(f"{V1}/register/m.login.registration_token/validity?token=x")
    assert r.status_code == 403


# Open -----------------------------------------------------------------------------------


@pytest.mark.config({"registration.mode": "open"})
async def test_open_registration_dummy_flow(api: ClientApi) -> None:
    body = {"username": "alice", "password": "pw", "initial_device_display_name": "Phone"}
    r = await api.http.post(f"{V3}/register", json=body)
    assert r.status_code == 401
    challenge = r.json()
    assert challenge["flows"] == [{"stages": ["m.login.dummy"]}]
    assert challenge["completed"] == []
    assert "errcode" not in challenge
    auth = {"type": "m.login.dummy", "session": challenge["session"]}
    r = await api.http.post(f"{V3}/register", json={**body, "auth": auth})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["user_id"] == f"@alice:{SERVER_NAME}"
    assert await _whoami(api, out["access_token"]) == 200
    devices = await api.services.accounts.devices(out["user_id"])
    assert [(d["device_id"], d["display_name"]) for d in devices] == [(out["device_id"], "Phone")]
    # The session was spent by the registration.
    r = await api.http.post(f"{V3}/register", json={**body, "username": "bob", "auth": auth})
    assert r.status_code == 400


@pytest.mark.config({"registration.mode": "open"})
async def test_open_registration_in_one_request_without_session(api: ClientApi) -> None:
    # matrix-nio sends the dummy stage with its first request.
    r = await api.http.post(
        f"{V3}/register",
        json={
            "username": "nio",
            "password": "pw",
            "device_id": "NIODEVICE",
            "auth": {"type": "m.login.dummy"},
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["device_id"] == "NIODEVICE"
    # and the password works for login
    r = await api.http.post(
        f"{V3}/login",
        json={"type": "m.login.password", "user": "nio", "password": "pw"},
    )
    assert r.status_code == 200


@pytest.mark.config({"registration.mode": "open"})
async def test_inhibit_login_returns_no_token(api: ClientApi) -> None:
    r = await api.http.post(
        f"{V3}/register",
        json={
            "username": "svc",
            "password": "pw",
            "inhibit_login": True,
            "auth": {"type": "m.login.dummy"},
        },
    )
    assert r.status_code == 200
    assert "access_token" not in r.json() and "device_id" not in r.json()
    assert await api.services.accounts.devices(f"@svc:{SERVER_NAME}") == []


@pytest.mark.config({"registration.mode": "open"})
async def test_guest_registration_is_refused(api: ClientApi) -> None:
    r = await api.http.post(f"{V3}/register?kind=guest", json={})
    assert r.status_code == 403
    assert r.json()["errcode"] == "M_FORBIDDEN"


@pytest.mark.config({"registration.mode": "open"})
@pytest.mark.parametrize("username", ["al ice", "al:ice", "", "x" * 300, "Ålice", "ALİCE"])
async def test_invalid_username_is_refused_before_uia(api: ClientApi, username: str) -> None:
    r = await api.http.post(f"{V3}/register", json={"username": username, "password": "pw"})
    assert r.status_code == 400
    assert r.json()["errcode"] == "M_INVALID_USERNAME"


@pytest.mark.config({"registration.mode": "open"})
async def test_taken_username_is_refused_before_uia(api: ClientApi) -> None:
    await api.add_user("alice")
    r = await api.http.post(f"{V3}/register", json={"username": "alice", "password": "pw"})
    assert r.status_code == 400
    assert r.json()["errcode"] == "M_USER_IN_USE"


@pytest.mark.config({"registration.mode": "open"})
async def test_missing_password_is_refused(api: ClientApi) -> None:
    r = await api.http.post(
        f"{V3}/register", json={"username": "alice", "auth": {"type": "m.login.dummy"}}
    )
    assert r.status_code == 400
    assert r.json()["errcode"] == "M_MISSING_PARAM"


@pytest.mark.config({"registration.mode": "open", "limits.register_burst": 2})
async def test_registration_is_rate_limited_per_address(api: ClientApi) -> None:
    codes = [(await api.http.post(f"{V3}/register", json={})).status_code for _ in range(3)]
    assert codes == [401, 401, 429]


# Availability ----------------------------------------------------------------------------


async def test_username_availability_works_in_any_mode(api: ClientApi) -> None:
    await api.add_user("taken")
    r = await api.http.get(f"{V3}/register/available", params={"username": "free"})
    assert (r.status_code, r.json()) == (200, {"available": True})
    r = await api.http.get(f"{V3}/register/available", params={"username": "taken"})
    assert (r.status_code, r.json()["errcode"]) == (400, "M_USER_IN_USE")
    r = await api.http.get(f"{V3}/register/available", params={"username": "NOT valid"})
    assert (r.status_code, r.json()["errcode"]) == (400, "M_INVALID_USERNAME")


# Token ------------------------------------------------------------------------------------


@pytest.mark.config({"registration.mode": "token"})
async def test_token_registration_full_uia_dance(api: ClientApi) -> None:
    await _add_token(api, "letmein", uses=1)
    r = await api.http.get(f"{V1}/register/m.login.registration_token/validity?token=letmein")
    assert r.json() == {"valid": True}
    body = {"username": "carol", "password": "pw"}
    r = await api.http.post(f"{V3}/register", json=body)
    assert r.status_code == 401
    session = r.json()["session"]
    assert r.json()["flows"] == [{"stages": ["m.login.registration_token"]}]

    bad = {"type": "m.login.registration_token", "token": "wrong", "session": session}
    r = await api.http.post(f"{V3}/register", json={**body, "auth": bad})
    assert r.status_code == 401
    assert r.json()["errcode"] == "M_UNAUTHORIZED"
    assert r.json()["session"] == session and r.json()["completed"] == []

    good = {"type": "m.login.registration_token", "token": "letmein", "session": session}
    r = await api.http.post(f"{V3}/register", json={**body, "auth": good})
    assert r.status_code == 200, r.text
    assert r.json()["user_id"] == f"@carol:{SERVER_NAME}"
    row = await _token_row(api, "letmein")
    assert row is not None and "letmein" not in row.values()  # stored hashed
    assert {k: v for k, v in row.items() if k not in ("token_hash", "hint")} == {
        "uses_allowed": 1,
        "pending": 0,
        "completed": 1,
        "expiry_time": None,
    }
    r = await api.http.get(f"{V1}/register/m.login.registration_token/validity?token=letmein")
    assert r.json() == {"valid": False}


@pytest.mark.config({"registration.mode": "token"})
async def test_token_mode_refuses_dummy_stage(api: ClientApi) -> None:
    r = await api.http.post(
        f"{V3}/register",
        json={"username": "dan", "password": "pw", "auth": {"type": "m.login.dummy"}},
    )
    assert r.status_code == 401
    assert r.json()["errcode"] == "M_UNRECOGNIZED"


@pytest.mark.config({"registration.mode": "token"})
async def test_token_last_use_is_reserved_by_a_pending_registration(api: ClientApi) -> None:
    await _add_token(api, "once", uses=1)
    auth = {"type": "m.login.registration_token", "token": "once"}
    # The first registration passes the token stage, then stalls (no password yet).
    r = await api.http.post(f"{V3}/register", json={"username": "erin", "auth": auth})
    assert r.json()["errcode"] == "M_MISSING_PARAM"
    r = await api.http.post(
        f"{V3}/register", json={"username": "gus", "password": "pw", "auth": auth}
    )
    assert r.status_code == 401
    assert r.json()["errcode"] == "M_UNAUTHORIZED"


@pytest.mark.config({"registration.mode": "token"})
async def test_expired_session_gives_its_token_use_back(api: ClientApi) -> None:
    await _add_token(api, "t", uses=1)
    r = await api.http.post(f"{V3}/register", json={"username": "fay"})  # no password yet
    session = r.json()["session"]
    auth = {"type": "m.login.registration_token", "token": "t", "session": session}
    r = await api.http.post(f"{V3}/register", json={"username": "fay", "auth": auth})
    assert r.json()["errcode"] == "M_MISSING_PARAM"
    assert (await _token_row(api, "t"))["pending"] == 1
    sessions = api.services.uia_register
    sessions.clock = lambda: float("inf")
    await sessions.sweep()
    assert (await _token_row(api, "t"))["pending"] == 0
    assert await api.services.database.read(
        lambda conn: store_tokens.token_valid(conn, "t", now_ms=now_ms())
    )


# Shared secret ------------------------------------------------------------------------------


def _mac(nonce: str, user: str, password: str, admin: bool, secret: str = SECRET) -> str:
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
    mac.update(nonce.encode() + b"\x00" + user.encode() + b"\x00" + password.encode() + b"\x00")
    mac.update(b"admin" if admin else b"notadmin")
    return mac.hexdigest()


async def _nonce(api: ClientApi) -> str:
    r = await api.http.get(ADMIN)
    assert r.status_code == 200, r.text
    return r.json()["nonce"]


@pytest.mark.config({"registration.shared_secret": SECRET})
async def test_shared_secret_registration_with_correct_mac(api: ClientApi) -> None:
    nonce = await _nonce(api)
    body = {
        "nonce": nonce,
        "username": "admin",
        "password": "pw",
        "admin": True,
        "displayname": "The Admin",
        "mac": _mac(nonce, "admin", "pw", True),
    }
    r = await api.http.post(ADMIN, json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["user_id"] == f"@admin:{SERVER_NAME}" and out["home_server"] == SERVER_NAME
    assert out["device_id"]
    assert await _whoami(api, out["access_token"]) == 200
    r = await api.http.get(f"{V3}/profile/@admin:{SERVER_NAME}/displayname")
    assert r.json() == {"displayname": "The Admin"}
    # A nonce is single-use.
    r = await api.http.post(ADMIN, json={**body, "username": "admin2"})
    assert r.status_code == 400


@pytest.mark.config({"registration.shared_secret": SECRET})
async def test_shared_secret_registration_with_wrong_mac(api: ClientApi) -> None:
    nonce = await _nonce(api)
    wrong = _mac(nonce, "mallory", "pw", False, secret="not-the-secret")
    body = {"nonce": nonce, "username": "mallory", "password": "pw", "admin": False, "mac": wrong}
    r = await api.http.post(ADMIN, json=body)
    assert r.status_code == 403
    # The nonce is spent even by a failed attempt.
    body["mac"] = _mac(nonce, "mallory", "pw", False)
    r = await api.http.post(ADMIN, json=body)
    assert r.status_code == 400
    assert r.json()["error"] == "unrecognised nonce"


@pytest.mark.config({"registration.shared_secret": SECRET})
async def test_shared_secret_admin_flag_is_covered_by_mac(api: ClientApi) -> None:
    nonce = await _nonce(api)
    body = {
        "nonce": nonce,
        "username": "sneaky",
        "password": "pw",
        "admin": True,
        "mac": _mac(nonce, "sneaky", "pw", False),
    }
    assert (await api.http.post(ADMIN, json=body)).status_code == 403


@pytest.mark.config({"registration.shared_secret": SECRET})
async def test_shared_secret_nonce_expires(api: ClientApi) -> None:
    nonce = await _nonce(api)
    api.services.shared_secret_nonces.clock = lambda: float("inf")
    body = {
        "nonce": nonce,
        "username": "late",
        "password": "pw",
        "admin": False,
        "mac": _mac(nonce, "late", "pw", False),
    }
    assert (await api.http.post(ADMIN, json=body)).status_code == 400


async def test_shared_secret_registration_disabled_without_secret(api: ClientApi) -> None:
    r = await api.http.post(ADMIN, json={"nonce": "x"})
    assert r.status_code == 400
    assert r.json()["error"] == "Shared secret registration is not enabled"


@pytest.mark.config({"registration.mode": "open"})
async def test_register_downcases_the_username_as_synapse(api: ClientApi) -> None:
    body = {"username": "User-UPPER", "password": "pw", "auth": {"type": "m.login.dummy"}}
    r = await api.http.post(f"{V3}/register", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["user_id"] == f"@user-upper:{SERVER_NAME}"
    # The same name in any case is now taken, and logging in in any case works.
    r = await api.http.post(f"{V3}/register", json={**body, "username": "USER-upper"})
    assert (r.status_code, r.json()["errcode"]) == (400, "M_USER_IN_USE")
    login = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "User-Upper"},
        "password": "pw",
    }
    r = await api.http.post(f"{V3}/login", json=login)
    assert r.json()["user_id"] == f"@user-upper:{SERVER_NAME}"


@pytest.mark.config({"registration.mode": "open"})
async def test_register_available_does_not_fold_case(api: ClientApi) -> None:
    r = await api.http.get(f"{V3}/register/available", params={"username": "Alice"})
    assert (r.status_code, r.json()["errcode"]) == (400, "M_INVALID_USERNAME")
