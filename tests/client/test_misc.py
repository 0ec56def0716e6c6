"""Discovery endpoints through the real app: capabilities, well-known, TURN."""

from __future__ import annotations

import pytest

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
    assert r.json() == {"m.homeserver": {"base_url": "http://relay.test/"}}


async def _handed_out(api: ClientApi, headers: dict[str, str]) -> tuple[str, str]:
    """The base URL of /.well-known/matrix/client and of /login's well_known."""
    known = (await api.http.get("/.well-known/matrix/client", headers=headers)).json()
    await api.add_user("bob")
    login = await api.http.post(
        f"{V3}/login",
        headers=headers,
        json={"type": "m.login.password", "user": "bob", "password": "pw"},
    )
    return known["m.homeserver"]["base_url"], login.json()["well_known"]["m.homeserver"]["base_url"]


FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "chat.kit.example"}


@pytest.mark.config({"listeners.public_baseurl": "https://chat.kit.example/matrix"})
async def test_public_baseurl_is_what_clients_are_told(api: ClientApi) -> None:
    """Behind a TLS proxy the request is plain http: the configured URL wins everywhere."""
    assert await _handed_out(api, {}) == ("https://chat.kit.example/matrix/",) * 2


async def test_forwarded_headers_of_a_stranger_are_ignored(api: ClientApi) -> None:
    assert await _handed_out(api, FORWARDED) == ("http://relay.test/",) * 2


@pytest.mark.config({"listeners.trusted_proxies": ["127.0.0.1"]})
async def test_forwarded_headers_of_a_trusted_proxy_are_believed(api: ClientApi) -> None:
    # httpx's in-process transport calls from 127.0.0.1.
    assert await _handed_out(api, FORWARDED) == ("https://chat.kit.example/",) * 2


async def test_turn_server_is_empty(api: ClientApi) -> None:
    alice = await api.login("alice")
    r = await api.http.get(f"{V3}/voip/turnServer", headers=alice)
    assert (r.status_code, r.json()) == (200, {})
