"""A local user cannot set a server ACL that denies this server (Synapse: 400, "Can't create
an ACL event that denies the local server"): the room would be cut off from us. An ACL that
allows us is set as usual."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.client.conftest import SERVER_NAME, ClientApi
from tests.client.helpers import V3, create_room

ACL = f"{V3}/rooms/{{}}/state/m.room.server_acl/"


@pytest.mark.parametrize(
    "content",
    [
        {"allow": ["other.example"]},
        {"allow": ["*"], "deny": [SERVER_NAME]},
        {"allow": ["*"], "deny": ["*"]},
        {"deny": []},  # no allow list denies everyone
    ],
    ids=["allow-list-without-us", "deny-us", "deny-all", "no-allow"],
)
async def test_an_acl_denying_this_server_is_refused(api: ClientApi, content: dict) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    url = ACL.format(quote(room_id))
    r = await api.http.put(url, headers=alice, json={"allow": ["*"], "deny": ["evil.example"]})
    assert r.status_code == 200, r.text
    r = await api.http.put(url, headers=alice, json=content)
    assert (r.status_code, r.json()["errcode"]) == (400, "M_UNKNOWN"), r.text
    assert "denies the local server" in r.json()["error"]
    r = await api.http.get(url, headers=alice)
    assert r.json() == {"allow": ["*"], "deny": ["evil.example"]}
