"""Discovery endpoints through the real app: capabilities, well-known, TURN."""

from __future__ import annotations

from tests.client.conftest import ClientApi

V3 = "/_matrix/client/v3"


async def test_capabilities_state_what_the_relay_allows(api: ClientApi) -> None:
    alice = await api.login("alice")
    r = await api.http.get(f"{V3}/capabilities", headers=alice)
    assert r.status_code == 200
    caps = r.json()["capabilities"]
    assert caps["m.change_password"] == {"enabled": True}
    assert caps["m.room_versions"] == {
        "default": "12",
        "available": {str(v): "stable" for v in range(1, 13)},
    }
    assert caps["m.set_displayname"] == {"enabled": True}
    assert caps["m.set_avatar_url"] == {"enabled": True}
    assert caps["m.3pid_changes"] == {"enabled": False}


async def test_capabilities_need_a_token(api: ClientApi) -> None:
    r = await api.http.get(f"{V3}/capabilities")
    assert r.status_code == 401


async def test_well_known_names_the_base_url_at_the_root(api: ClientApi) -> None:
    r = await api.http.get("/.well-known/matrix/client")
    assert r.status_code == 200
    assert r.json() == {"m.homeserver": {"base_url": "http://relay.test"}}


async def test_turn_server_is_empty(api: ClientApi) -> None:
    alice = await api.login("alice")
    r = await api.http.get(f"{V3}/voip/turnServer", headers=alice)
    assert (r.status_code, r.json()) == (200, {})
