"""relay/sync/shared.py: a sync built with the reads shared across builds is the sync
built from scratch, on random room histories (joins, leaves, invites, bans, history
visibility changes, renames, messages), with the shared cache kept warm from one
checkpoint to the next, so a stale entry would show as a difference."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import strategies as st

from relay.client.sync import render_sync
from relay.rooms.filters import DEFAULT_FILTER
from relay.sync.builder import SyncParams, SyncService
from relay.sync.shared import SharedReads
from tests.client.conftest import SERVER_NAME, ClientApi
from tests.support import draw_examples

V3 = "/_matrix/client/v3"
USERS = ("bob", "carol", "dave")
VISIBILITIES = ("shared", "invited", "joined", "world_readable")

OPS = st.lists(
    st.one_of(
        st.tuples(
            st.sampled_from(["join", "leave", "invite", "ban", "unban", "msg", "read"]),
            st.sampled_from(USERS),
        ),
        st.tuples(st.just("visibility"), st.sampled_from(VISIBILITIES)),
        st.tuples(st.just("name"), st.sampled_from(["a", "b"])),
        st.tuples(st.just("alice"), st.just("msg")),
        st.tuples(st.just("check"), st.just("")),
    ),
    min_size=4,
    max_size=25,
)


async def _builds(
    api: ClientApi, fresh: SyncService, user: str, since: int | None
) -> tuple[dict[str, Any], dict[str, Any], int]:
    shared = api.services.sync
    typing = shared.typing.snapshot(0)
    params = SyncParams(user_id=f"@{user}:{SERVER_NAME}", device_id="D", since=since)
    database = api.services.database
    with_cache, _ = await database.read(shared._build_txn, params, typing, {}, 0)
    scratch, _ = await database.read(fresh._build_txn, params, typing, {}, 0)
    return (
        render_sync(with_cache, DEFAULT_FILTER, 0),
        render_sync(scratch, DEFAULT_FILTER, 0),
        with_cache.stream,
    )


@pytest.mark.config({"limits.login_per_second": 0, "limits.send_per_second": 0})
async def test_shared_reads_answer_as_a_fresh_build(api: ClientApi) -> None:
    sync = api.services.sync
    assert isinstance(sync.shared, SharedReads)  # what node.py wires
    fresh = SyncService(
        sync.database, sync.rooms, sync.notifier, sync.typing, sync.presence, sync.devices
    )
    alice = await api.login("alice")
    heads = {u: await api.login(u) for u in USERS}
    compared = 0
    for n, ops in enumerate(draw_examples(OPS, 12)):
        r = await api.http.post(f"{V3}/createRoom", headers=alice, json={"preset": "public_chat"})
        room = r.json()["room_id"]
        since: dict[str, int | None] = {u: None for u in ("alice", *USERS)}
        # Two watchers joined and synced first, so the ops land on builds already cached.
        start = [("join", "bob"), ("join", "carol"), ("check", "")]
        for step, (op, arg) in enumerate([*start, *ops, ("check", "")]):
            if op == "check":
                for user in since:
                    cached, scratch, stream = await _builds(api, fresh, user, since[user])
                    assert cached == scratch, (n, step, user, ops)
                    since[user] = stream
                    compared += 1
                continue
            if op == "alice":
                path, body, who = f"send/m.room.message/t{n}-{step}", {"body": "x"}, alice
            elif op == "visibility":
                path, body, who = (
                    "state/m.room.history_visibility",
                    {"history_visibility": arg},
                    alice,
                )
            elif op == "name":
                path, body, who = "state/m.room.name", {"name": arg}, alice
            elif op == "msg":
                path, body, who = f"send/m.room.message/t{n}-{step}", {"body": arg}, heads[arg]
            elif op == "read":  # `arg` reads up to the newest event
                r = await api.http.get(
                    f"{V3}/rooms/{room}/messages",
                    headers=heads[arg],
                    params={"dir": "b", "limit": 1},
                )
                if r.status_code == 200 and r.json()["chunk"]:
                    newest = r.json()["chunk"][0]["event_id"]
                    await api.http.post(
                        f"{V3}/rooms/{room}/receipt/m.read/{newest}", headers=heads[arg], json={}
                    )
                continue
            elif op in ("join", "leave"):
                r = await api.http.post(f"{V3}/rooms/{room}/{op}", headers=heads[arg], json={})
                continue
            else:  # invite, ban, unban: alice does it to `arg`
                r = await api.http.post(
                    f"{V3}/rooms/{room}/{op}",
                    headers=alice,
                    json={"user_id": f"@{arg}:{SERVER_NAME}"},
                )
                continue
            method = api.http.put
            await method(f"{V3}/rooms/{room}/{path}", headers=who, json=body)
    assert compared >= 12 * 4
