"""Redactions that other servers wrote (received, or backfilled): stored as events, and
applied only as *handling redactions* says (relay/events/auth.py `redaction_allowed`):
same room, accepted, the sender able to redact or on the target sender's server; a
redaction that arrives before its target waits for it."""

from __future__ import annotations

import pytest

from relay.rooms.service import RoomConfig
from store import events as store_events
from tests.client.conftest import ClientApi
from tests.rooms.remote_rooms import (
    ALICE,
    CAROL,
    DAVE,
    ERIN,
    HANDLED_REDACTIONS,
    REMOTE,
    VERSIONS,
    accept,
    build,
    local_message,
    redacted_by,
    redaction,
    set_power,
    shared_room,
)


@VERSIONS
async def test_remote_redaction_without_power_of_another_servers_event_is_not_applied(
    api: ClientApi, version: str
) -> None:
    room_id = await shared_room(api, version)
    alice_msg = await local_message(api, room_id, "alice's")
    forged = await redaction(api, room_id, CAROL, alice_msg)
    # v3+: accepted as an event (the auth rules only ask events_default), never applied.
    # v1/v2: the redact level (or the same server minting both event ids) is an auth rule.
    expected = "rejected" if version in ("1", "2") else "accepted"
    assert await accept(api, forged) == expected
    assert await redacted_by(api, alice_msg) is None
    # The twins: her own server's event, and any event once she holds the redact level.
    dave_msg = await build(
        api, room_id, sender=DAVE, type_="m.room.message", content={"body": "dave's"}
    )
    assert await accept(api, dave_msg) == "accepted"
    own_server = await redaction(api, room_id, CAROL, dave_msg.event_id)
    assert await accept(api, own_server) == "accepted"
    assert await redacted_by(api, dave_msg.event_id) == own_server.event_id
    await set_power(api, room_id, CAROL, 50)
    moderator = await redaction(api, room_id, CAROL, alice_msg)
    assert await accept(api, moderator) == "accepted"
    assert await redacted_by(api, alice_msg) == moderator.event_id


@VERSIONS
async def test_remote_redaction_from_another_room_is_never_applied(
    api: ClientApi, version: str
) -> None:
    public = await shared_room(api, version)
    private = await api.services.rooms.create_room(
        RoomConfig(creator=ALICE, room_version=version, preset="private_chat")
    )
    secret = await local_message(api, private, "secret")
    # Carol moderates the public room and redacts from it the private room's event.
    await set_power(api, public, CAROL, 100)
    across = await redaction(api, public, CAROL, secret)
    assert await accept(api, across) == "accepted"
    assert await redacted_by(api, secret) is None
    # The twin: Alice's own redaction in the private room applies.
    await api.services.rooms.send_event(
        ALICE, None, private, "m.room.redaction", {}, redacts=secret
    )
    assert await redacted_by(api, secret) is not None
    assert await redacted_by(api, secret) != across.event_id


@HANDLED_REDACTIONS
async def test_redaction_before_its_target_is_held_then_judged_by_the_rule(
    api: ClientApi, version: str
) -> None:
    room_id = await shared_room(api, version)
    tips = await api.services.database.read(store_events.get_forward_extremities, room_id)
    # Dave's message, and two redactions of it built beside it (they cannot cite it).
    dave_msg = await build(
        api, room_id, sender=DAVE, type_="m.room.message", content={"body": "late"}
    )
    own_server = await redaction(api, room_id, CAROL, dave_msg.event_id, prev_events=tips)
    assert await accept(api, own_server) == "accepted"
    assert await redacted_by(api, dave_msg.event_id) is None  # nothing to apply it to
    assert await accept(api, dave_msg) == "accepted"
    assert await redacted_by(api, dave_msg.event_id) == own_server.event_id
    # The twin: held, then not applied, when the late target is another server's event.
    tips = await api.services.database.read(store_events.get_forward_extremities, room_id)
    erin_msg = await build(
        api, room_id, sender=ERIN, type_="m.room.message", content={"body": "erin's"}
    )
    forged = await redaction(api, room_id, CAROL, erin_msg.event_id, prev_events=tips)
    assert await accept(api, forged) == "accepted"
    assert await accept(api, erin_msg) == "accepted"
    assert await redacted_by(api, erin_msg.event_id) is None


@VERSIONS
async def test_soft_failed_redaction_is_never_applied(api: ClientApi, version: str) -> None:
    room_id = await shared_room(api, version)
    dave_msg = await build(
        api, room_id, sender=DAVE, type_="m.room.message", content={"body": "dave's"}
    )
    assert await accept(api, dave_msg) == "accepted"
    before_ban = await api.services.database.read(store_events.get_forward_extremities, room_id)
    await api.services.rooms.update_membership(ALICE, room_id, CAROL, "ban")
    # Carol's server had not seen the ban: her redaction of her server's event soft-fails.
    stale = await redaction(api, room_id, CAROL, dave_msg.event_id, prev_events=before_ban)
    assert await accept(api, stale) == "soft_failed"
    assert await redacted_by(api, dave_msg.event_id) is None
    # A rejected one neither (Frank never joined); Dave's own redaction applies.
    rejected = await redaction(api, room_id, f"@frank:{REMOTE}", dave_msg.event_id)
    assert await accept(api, rejected) == "rejected"
    assert await redacted_by(api, dave_msg.event_id) is None
    own = await redaction(api, room_id, DAVE, dave_msg.event_id)
    assert await accept(api, own) == "accepted"
    assert await redacted_by(api, dave_msg.event_id) == own.event_id


@HANDLED_REDACTIONS
async def test_redact_level_is_the_one_in_force_before_theredaction(
    api: ClientApi, version: str
) -> None:
    room_id = await shared_room(api, version)
    alice_msg = await local_message(api, room_id, "alice's")
    await set_power(api, room_id, CAROL, 50)
    promoted_at = await api.services.database.read(store_events.get_forward_extremities, room_id)
    await set_power(api, room_id, CAROL, 0)
    # Carol cites the power levels that made her a moderator, on top of her demotion.
    stale = await redaction(api, room_id, CAROL, alice_msg, auth_from=promoted_at)
    assert await accept(api, stale) == "accepted"
    assert await redacted_by(api, alice_msg) is None
    # The twin: the same, while she still held the level, applies.
    await set_power(api, room_id, CAROL, 50)
    fresh = await redaction(api, room_id, CAROL, alice_msg)
    assert await accept(api, fresh) == "accepted"
    assert await redacted_by(api, alice_msg) == fresh.event_id


@HANDLED_REDACTIONS
async def test_backfilled_redaction_follows_the_same_rule(api: ClientApi, version: str) -> None:
    room_id = await shared_room(api, version)
    alice_msg = await local_message(api, room_id, "alice's")
    dave_msg = await build(
        api, room_id, sender=DAVE, type_="m.room.message", content={"body": "dave's"}
    )
    assert await accept(api, dave_msg) == "accepted"
    tips = [dave_msg.event_id]
    forged = await redaction(api, room_id, CAROL, alice_msg, prev_events=tips)
    own_server = await redaction(api, room_id, CAROL, dave_msg.event_id, prev_events=tips)
    await local_message(api, room_id, "newer")
    assert await accept(api, forged, backfilled=True) == "accepted"
    assert await accept(api, own_server, backfilled=True) == "accepted"
    assert await redacted_by(api, alice_msg) is None
    assert await redacted_by(api, dave_msg.event_id) == own_server.event_id


@pytest.mark.parametrize("version", ["1", "2"])
async def test_v1_v2_redaction_is_an_auth_rule_on_event_id_servers(
    api: ClientApi, version: str
) -> None:
    """Rooms v1/v2, rule 11: a redaction passes the auth rules only with the redact level,
    or when the server that minted its event id minted the target's too."""
    room_id = await shared_room(api, version)
    alice_msg = await local_message(api, room_id, "alice's")
    forged = await redaction(api, room_id, CAROL, alice_msg)
    assert forged.event_id.endswith(f":{REMOTE}")
    assert await accept(api, forged) == "rejected"
    assert await redacted_by(api, alice_msg) is None
    # The twins: her server's event (ids minted by REMOTE), and with the redact level.
    dave_msg = await build(
        api, room_id, sender=DAVE, type_="m.room.message", content={"body": "dave's"}
    )
    assert await accept(api, dave_msg) == "accepted"
    own_server = await redaction(api, room_id, CAROL, dave_msg.event_id)
    assert await accept(api, own_server) == "accepted"
    assert await redacted_by(api, dave_msg.event_id) == own_server.event_id
    await set_power(api, room_id, CAROL, 50)
    moderator = await redaction(api, room_id, CAROL, alice_msg)
    assert await accept(api, moderator) == "accepted"
    assert await redacted_by(api, alice_msg) == moderator.event_id
