"""Reporting content (an event, a room, a user) and the operator reading and dismissing
the reports through Synapse's admin API (the operator page: tests/web/test_admin_page.py)."""

from __future__ import annotations

from typing import Any

from relay.client.reports import MAX_PER_REPORTER
from store import accounts as store_accounts
from store import reports as store_reports
from tests.client.conftest import SERVER_NAME, ClientApi
from tests.client.helpers import V3, create_room, join, send, uid

ADMIN = "/_synapse/admin/v1/event_reports"


async def _post(api: ClientApi, headers: dict[str, str], path: str, body: Any) -> tuple[int, Any]:
    r = await api.http.post(f"{V3}{path}", headers=headers, json=body)
    return r.status_code, r.json()


async def _stored(api: ClientApi) -> list[dict[str, Any]]:
    return await api.services.database.read(lambda conn: store_reports.list_reports(conn))


async def test_an_event_is_reported_only_by_someone_who_can_see_it(api: ClientApi) -> None:
    alice, bob, eve = await api.login("alice"), await api.login("bob"), await api.login("eve")
    room = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room)
    event = await send(api, alice, room, "something nasty")

    assert await _post(
        api, bob, f"/rooms/{room}/report/{event}", {"reason": "spam", "score": -100}
    ) == (200, {})
    for who, target, body, expected in (
        (eve, event, {"reason": "x"}, (404, "M_NOT_FOUND")),  # not in the room
        (bob, "$nope", {"reason": "x"}, (404, "M_NOT_FOUND")),
        (bob, event, {"reason": 5}, (400, "M_BAD_JSON")),
        (bob, event, {"score": "high"}, (400, "M_BAD_JSON")),
        (bob, event, {"reason": "x" * 1001}, (400, "M_BAD_JSON")),
    ):
        status, answer = await _post(api, who, f"/rooms/{room}/report/{target}", body)
        assert (status, answer["errcode"]) == expected, body
    [report] = await _stored(api)
    assert (
        report["kind"],
        report["reporter"],
        report["event_id"],
        report["reason"],
        report["score"],
    ) == (
        "event",
        uid("bob"),
        event,
        "spam",
        -100,
    )


async def test_rooms_and_users_are_reported_without_telling_who_exists(api: ClientApi) -> None:
    alice, bob = await api.login("alice"), await api.login("bob")
    room = await create_room(api, alice)
    assert await _post(api, bob, f"/rooms/{room}/report", {"reason": "hate"}) == (200, {})
    status, answer = await _post(api, bob, "/rooms/!nope:relay.test/report", {"reason": "x"})
    assert (status, answer["errcode"]) == (404, "M_NOT_FOUND")
    status, answer = await _post(api, bob, f"/rooms/{room}/report", {})
    assert (status, answer["errcode"]) == (400, "M_MISSING_PARAM")
    assert await _post(api, bob, f"/users/{uid('alice')}/report", {"reason": "harassment"}) == (
        200,
        {},
    )
    # Someone who does not exist, or of another server: 200, nothing kept.
    for target in (uid("nobody"), "@someone:elsewhere.example"):
        assert await _post(api, bob, f"/users/{target}/report", {"reason": "x"}) == (200, {})
    kinds = [(r["kind"], r["room_id"], r["target_user_id"]) for r in await _stored(api)]
    assert kinds == [("user", None, uid("alice")), ("room", room, None)]


async def test_one_user_keeps_a_bounded_number_of_reports(api: ClientApi) -> None:
    alice, bob = await api.login("alice"), await api.login("bob")
    room = await create_room(api, alice)
    await api.services.database.write(
        lambda conn: [
            store_reports.add_report(
                conn, kind="room", reporter=uid("bob"), reason="x", room_id=room, received_ts=0
            )
            for _ in range(MAX_PER_REPORTER)
        ]
    )
    status, answer = await _post(api, bob, f"/rooms/{room}/report", {"reason": "one more"})
    assert (status, answer["errcode"]) == (429, "M_LIMIT_EXCEEDED")
    assert await _post(api, alice, f"/rooms/{room}/report", {"reason": "mine"}) == (200, {})


async def test_the_operator_reads_and_dismisses_event_reports(api: ClientApi) -> None:
    alice, bob = await api.login("alice"), await api.login("bob")
    op = await api.login("op")
    await api.services.database.write(store_accounts.set_admin, f"@op:{SERVER_NAME}", True)
    room = await create_room(api, alice, preset="public_chat", name="Ops")
    await join(api, bob, room)
    events = [await send(api, alice, room, f"message {n}") for n in range(3)]
    for event in events:
        assert (await _post(api, bob, f"/rooms/{room}/report/{event}", {"reason": "spam"}))[
            0
        ] == 200
    assert (await _post(api, bob, f"/rooms/{room}/report", {"reason": "room"}))[0] == 200

    r = await api.http.get(ADMIN, headers=bob)
    assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN")
    r = await api.http.get(ADMIN, headers=op, params={"limit": 2})
    page = r.json()
    assert page["total"] == 3 and page["next_token"] == 2
    newest = page["event_reports"][0]
    assert newest["event_id"] == events[-1] and newest["name"] == "Ops"
    assert (newest["user_id"], newest["sender"], newest["reason"]) == (
        uid("bob"),
        uid("alice"),
        "spam",
    )
    r = await api.http.get(ADMIN, headers=op, params={"from": 2})
    assert [e["event_id"] for e in r.json()["event_reports"]] == [events[0]]
    assert "next_token" not in r.json()

    r = await api.http.get(f"{ADMIN}/{newest['id']}", headers=op)
    assert r.json()["event_json"]["content"]["body"] == "message 2"
    r = await api.http.delete(f"{ADMIN}/{newest['id']}", headers=op)
    assert r.status_code == 200
    r = await api.http.get(f"{ADMIN}/{newest['id']}", headers=op)
    assert (r.status_code, r.json()["errcode"]) == (404, "M_NOT_FOUND")
    r = await api.http.get(f"{ADMIN}/abc", headers=op)
    assert (r.status_code, r.json()["errcode"]) == (400, "M_INVALID_PARAM")
    assert (await api.http.get(ADMIN, headers=op)).json()["total"] == 2
