"""The access token of every request is looked up on the trio thread (relay/accounts.py
`authenticate`, relay/runtime/database.py `read_now`): never a cached answer, so a token
revoked by any path is refused by the very next request, a long-poller's included."""

from __future__ import annotations

import trio

from relay.operator import actions as operator
from store import db as store_db
from tests.client.conftest import ClientApi
from tests.client.helpers import V3, sync


async def _whoami(api: ClientApi, headers: dict[str, str]) -> tuple[int, str | None]:
    r = await api.http.get(f"{V3}/account/whoami", headers=headers)
    return r.status_code, r.json().get("errcode")


async def test_a_logged_out_token_is_refused_by_the_next_request(api: ClientApi) -> None:
    alice = await api.login("alice")
    since = (await sync(api, alice))["next_batch"]
    assert await _whoami(api, alice) == (200, None)
    assert (await api.http.post(f"{V3}/logout", headers=alice)).status_code == 200
    assert await _whoami(api, alice) == (401, "M_UNKNOWN_TOKEN")
    r = await api.http.get(f"{V3}/sync", headers=alice, params={"since": since, "timeout": 0})
    assert (r.status_code, r.json()["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_a_token_revoked_by_another_process_is_refused_at_once(api: ClientApi) -> None:
    """`relay user deactivate` writes the database from its own process; the running
    relay hears nothing of it, and must still refuse the token."""
    alice = await api.login("alice")
    assert await _whoami(api, alice) == (200, None)

    def deactivate_elsewhere() -> None:
        conn = store_db.connect(api.services.database.path, synchronous="NORMAL")
        try:
            with store_db.write(conn):
                operator.deactivate_user_txn(conn, "@alice:relay.test")
        finally:
            conn.close()

    await trio.to_thread.run_sync(deactivate_elsewhere)
    assert await _whoami(api, alice) == (401, "M_UNKNOWN_TOKEN")


async def test_many_requests_at_once_each_see_their_own_token(api: ClientApi) -> None:
    """The trio-thread connection is shared by every request; interleaved requests of
    different users must each get their own user."""
    heads = {name: await api.login(name) for name in ("alice", "bob", "carol")}
    seen: dict[str, str] = {}

    async def ask(name: str) -> None:
        r = await api.http.get(f"{V3}/account/whoami", headers=heads[name])
        seen[name] = r.json()["user_id"]

    async with trio.open_nursery() as nursery:
        for name in heads:
            nursery.start_soon(ask, name)
    assert seen == {name: f"@{name}:relay.test" for name in heads}
