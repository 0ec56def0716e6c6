"""store.accounts: password hashing, users, devices, access tokens."""

from __future__ import annotations

import sqlite3

import pytest

from store import accounts, db
from store.errors import UserExists

ALICE = "@alice:kit.example"


@pytest.fixture
def alice(conn: sqlite3.Connection) -> str:
    with db.write(conn):
        accounts.create_user(conn, user_id=ALICE, password="hunter2", now_ms=1000)
    return ALICE


def test_create_and_get_user(conn: sqlite3.Connection, alice: str) -> None:
    user = accounts.get_user(conn, alice)
    assert user is not None
    assert user["user_id"] == alice
    assert user["is_admin"] is False
    assert user["deactivated"] is False
    assert user["created_ts"] == 1000
    assert accounts.verify_password("hunter2", user["password_hash"])
    assert accounts.get_user(conn, "@nobody:kit.example") is None
    assert accounts.count_users(conn) == 1


def test_create_user_twice_raises_user_exists(conn: sqlite3.Connection, alice: str) -> None:
    with db.write(conn):
        with pytest.raises(UserExists):
            accounts.create_user(conn, user_id=alice, password=None, now_ms=2)
        # the transaction is still usable after the conflict
        accounts.create_user(conn, user_id="@bob:kit.example", password=None, now_ms=2)
    assert accounts.count_users(conn) == 2


def test_user_without_password_cannot_log_in(conn: sqlite3.Connection) -> None:
    with db.write(conn):
        accounts.create_user(conn, user_id="@bot:kit.example", password=None, admin=True, now_ms=1)
    user = accounts.get_user(conn, "@bot:kit.example")
    assert user is not None and user["is_admin"] is True
    assert user["password_hash"] is None
    assert not accounts.verify_password("", user["password_hash"])


def test_create_user_with_prehashed_password(conn: sqlite3.Connection) -> None:
    encoded = accounts.hash_password("pw")
    with db.write(conn):
        accounts.create_user(
            conn, user_id="@c:kit.example", password=None, password_hash=encoded, now_ms=1
        )
    user = accounts.get_user(conn, "@c:kit.example")
    assert user is not None and user["password_hash"] == encoded


def test_set_password_replaces_hash(conn: sqlite3.Connection, alice: str) -> None:
    with db.write(conn):
        assert accounts.set_password(conn, alice, "new pw")
        assert not accounts.set_password(conn, "@nobody:kit.example", "x")
    user = accounts.get_user(conn, alice)
    assert user is not None
    assert accounts.verify_password("new pw", user["password_hash"])
    assert not accounts.verify_password("hunter2", user["password_hash"])


def test_set_profile_changes_only_given_fields(conn: sqlite3.Connection, alice: str) -> None:
    with db.write(conn):
        accounts.set_profile(conn, alice, displayname="Alice", avatar_url="mxc://k/a")
        accounts.set_profile(conn, alice, displayname="Al")
    user = accounts.get_user(conn, alice)
    assert user is not None
    assert (user["displayname"], user["avatar_url"]) == ("Al", "mxc://k/a")
    with db.write(conn):
        accounts.set_profile(conn, alice, avatar_url=None)
    user = accounts.get_user(conn, alice)
    assert user is not None and user["avatar_url"] is None


def test_devices_upsert_rename_list_delete(conn: sqlite3.Connection, alice: str) -> None:
    with db.write(conn):
        accounts.upsert_device(
            conn, user_id=alice, device_id="PHONE", display_name="Phone", now_ms=5, ip="10.0.0.2"
        )
        accounts.upsert_device(conn, user_id=alice, device_id="LAPTOP", now_ms=6)
        accounts.upsert_device(conn, user_id=alice, device_id="PHONE", now_ms=7)
    phone = accounts.get_device(conn, alice, "PHONE")
    assert phone == {
        "user_id": alice,
        "device_id": "PHONE",
        "display_name": "Phone",
        "last_seen_ts": 7,
        "last_seen_ip": "10.0.0.2",
    }
    with db.write(conn):
        assert accounts.rename_device(conn, alice, "LAPTOP", "Laptop")
        assert not accounts.rename_device(conn, alice, "NOPE", "x")
        accounts.touch_device(conn, alice, "LAPTOP", now_ms=9, ip="10.0.0.3")
    assert [d["device_id"] for d in accounts.list_devices(conn, alice)] == ["LAPTOP", "PHONE"]
    laptop = accounts.get_device(conn, alice, "LAPTOP")
    assert laptop is not None
    assert (laptop["display_name"], laptop["last_seen_ts"], laptop["last_seen_ip"]) == (
        "Laptop",
        9,
        "10.0.0.3",
    )
    with db.write(conn):
        assert accounts.delete_device(conn, alice, "PHONE")
        assert not accounts.delete_device(conn, alice, "PHONE")
    assert accounts.get_device(conn, alice, "PHONE") is None


def test_device_needs_an_existing_user(conn: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.IntegrityError), db.write(conn):
        accounts.upsert_device(conn, user_id="@ghost:kit.example", device_id="D", now_ms=1)


def _login(conn: sqlite3.Connection, user_id: str, device_id: str, token: str) -> None:
    with db.write(conn):
        accounts.upsert_device(conn, user_id=user_id, device_id=device_id, now_ms=1)
        accounts.add_access_token(conn, token=token, user_id=user_id, device_id=device_id, now_ms=1)


def test_tokens_are_not_stored_in_clear(conn: sqlite3.Connection, alice: str) -> None:
    token = "syt_YWxpY2U_secretSECRETsecret_1a2b3c"
    _login(conn, alice, "PHONE", token)
    for row in conn.execute("SELECT * FROM access_tokens"):
        for value in tuple(row):
            assert token not in str(value)
    dump = "\n".join(conn.iterdump())
    assert token not in dump
    assert accounts.token_hash(token) in dump
    assert len(accounts.token_hash(token)) == 64


def test_lookup_access_token(conn: sqlite3.Connection, alice: str) -> None:
    _login(conn, alice, "PHONE", "tok-1")
    assert accounts.lookup_access_token(conn, "tok-1") == (alice, "PHONE")
    assert accounts.lookup_access_token(conn, "tok-2") is None
    with db.write(conn):
        assert accounts.delete_access_token(conn, "tok-1")
        assert not accounts.delete_access_token(conn, "tok-1")
    assert accounts.lookup_access_token(conn, "tok-1") is None


def test_delete_device_deletes_its_tokens(conn: sqlite3.Connection, alice: str) -> None:
    _login(conn, alice, "PHONE", "tok-phone")
    _login(conn, alice, "LAPTOP", "tok-laptop")
    with db.write(conn):
        accounts.delete_device(conn, alice, "PHONE")
    assert accounts.lookup_access_token(conn, "tok-phone") is None
    assert accounts.lookup_access_token(conn, "tok-laptop") == (alice, "LAPTOP")


def test_delete_device_tokens_keeps_the_device(conn: sqlite3.Connection, alice: str) -> None:
    _login(conn, alice, "PHONE", "tok-old")
    _login(conn, alice, "PHONE", "tok-new-1")
    with db.write(conn):
        assert accounts.delete_device_tokens(conn, alice, "PHONE") == 2
    assert accounts.lookup_access_token(conn, "tok-old") is None
    assert accounts.get_device(conn, alice, "PHONE") is not None


def test_delete_all_tokens_can_keep_one_device(conn: sqlite3.Connection, alice: str) -> None:
    _login(conn, alice, "PHONE", "tok-phone")
    _login(conn, alice, "LAPTOP", "tok-laptop")
    _login(conn, alice, "TABLET", "tok-tablet")
    with db.write(conn):
        assert accounts.delete_all_tokens(conn, alice, except_device="LAPTOP") == 2
    assert accounts.lookup_access_token(conn, "tok-laptop") == (alice, "LAPTOP")
    assert accounts.lookup_access_token(conn, "tok-phone") is None
    with db.write(conn):
        assert accounts.delete_all_tokens(conn, alice) == 1
    assert accounts.lookup_access_token(conn, "tok-laptop") is None


def test_deactivate_user_removes_password_devices_and_tokens(
    conn: sqlite3.Connection, alice: str
) -> None:
    _login(conn, alice, "PHONE", "tok-phone")
    with db.write(conn):
        assert accounts.deactivate_user(conn, alice)
    user = accounts.get_user(conn, alice)
    assert user is not None and user["deactivated"] is True and user["password_hash"] is None
    assert accounts.list_devices(conn, alice) == []
    assert accounts.lookup_access_token(conn, "tok-phone") is None
    with pytest.raises(UserExists), db.write(conn):
        accounts.create_user(conn, user_id=alice, password=None, now_ms=1)
