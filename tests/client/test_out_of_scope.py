"""What is out of scope by design (issue 14 item 9; README "What is served"): the legacy
`/events`, `/events/{eventId}`, `/initialSync` and `/rooms/{roomId}/initialSync`, and
guest access. They answer as the spec has a server answer an endpoint it does not
support (404 `M_UNRECOGNIZED`), and a guest registration as the spec answers a kind of
account that is not allowed (403 `M_FORBIDDEN`), whatever the registration mode."""

from __future__ import annotations

import pytest

from tests.client.conftest import ClientApi
from tests.client.helpers import V3, create_room


@pytest.mark.parametrize("version", ["v3", "r0"])
async def test_legacy_endpoints_are_unrecognized(api: ClientApi, version: str) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    base = f"/_matrix/client/{version}"
    for path in (
        "/events",
        "/events?from=s1&timeout=0",
        "/initialSync",
        "/initialSync?limit=1",
        f"/rooms/{room_id}/initialSync",
        "/events/$nosuchevent",
    ):
        for headers in (alice, {}):
            r = await api.http.get(base + path, headers=headers)
            assert r.status_code == 404, (path, r.text)
            assert r.json()["errcode"] == "M_UNRECOGNIZED", (path, r.text)


async def _guest_registration_is_forbidden(api: ClientApi) -> None:
    for body in ({}, {"initial_device_display_name": "guest"}):
        r = await api.http.post(f"{V3}/register", params={"kind": "guest"}, json=body)
        assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN", r.text


async def test_guest_registration_is_forbidden_when_registration_is_closed(
    api: ClientApi,
) -> None:
    await _guest_registration_is_forbidden(api)


@pytest.mark.config({"registration.mode": "token"})
async def test_guest_registration_is_forbidden_with_tokens(api: ClientApi) -> None:
    await _guest_registration_is_forbidden(api)


@pytest.mark.config({"registration.mode": "open"})
async def test_guest_registration_is_forbidden_when_registration_is_open(api: ClientApi) -> None:
    await _guest_registration_is_forbidden(api)
