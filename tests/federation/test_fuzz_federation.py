"""Random input at the federation endpoints, signed by a server the relay federates with:
never a 500, never a body that is not JSON (issue "Hostile networks", item 7).

Hypothesis draws the requests: transactions of random JSON and of real PDUs with one field
replaced by random JSON, EDUs of every type with random content, and random bodies and
query values for the read endpoints. The examples are collected first (`_draw`) and then
sent in a loop from one async test, as tests/client/test_fuzz_bad_input.py does. A run of
`make test` sends FUZZ_EXAMPLES of each kind (default 25); `make fuzz` sends 1,000.
Outbound requests the input causes (gap filling, key fetches) go to a closed port.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import strategies as st

from relay.mesh.gossip import EXTREMITIES_PATH
from tests.client.conftest import SERVER_NAME, ClientApi
from tests.client.conftest import api as api  # the in-process relay
from tests.federation.inprocess import V1, V2, SignedPeer, federation_http, trust_key
from tests.rooms.remote_rooms import CAROL, REMOTE, REMOTE_KEY, build, shared_room
from tests.support import draw_examples

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
#: Outbound requests go to a closed port: fast failures, nothing leaves the machine.
CONFIG = {"federation.servers": {REMOTE: "https://127.0.0.1:9"}}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["", CAROL, f"@alice:{SERVER_NAME}", "!x:y", "$e", REMOTE, "m.room.member"])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
PDU_KEYS = [
    "type", "content", "sender", "state_key", "room_id", "prev_events", "auth_events",
    "depth", "origin_server_ts", "hashes", "signatures", "redacts", "unsigned",
]  # fmt: skip
EDU_TYPES = ["m.typing", "m.receipt", "m.presence", "m.device_list_update",
             "m.direct_to_device", "m.signing_key_update", "org.example.unknown"]  # fmt: skip


def _draw(strategy: st.SearchStrategy[Any]) -> list[Any]:
    return draw_examples(strategy, EXAMPLES)


def _mutated_pdu(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """`base` (a real PDU CAROL's server signed) with one field replaced (or removed)."""

    def mutate(args: tuple[str, Any, bool]) -> dict[str, Any]:
        key, value, remove = args
        pdu = dict(base)
        if remove:
            pdu.pop(key, None)
        else:
            pdu[key] = value
        return pdu

    return st.tuples(st.sampled_from(PDU_KEYS), json_values, st.booleans()).map(mutate)


def _edus() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"edu_type": st.sampled_from(EDU_TYPES) | json_values},
        optional={"content": json_values},
    )


async def _check(response: Any, what: str) -> None:
    assert response.status_code < 500, (what, response.status_code, response.text[:300])
    json.loads(response.content or b"{}")  # every answer is JSON


@pytest.mark.config(CONFIG)
async def test_random_federation_input_never_breaks_the_relay(api: ClientApi) -> None:
    await trust_key(api, REMOTE, REMOTE_KEY)
    room_id = await shared_room(api, "10")
    room = quote(room_id)
    message = await build(api, room_id, sender=CAROL, type_="m.room.message", content={"b": 1})
    base = json.loads(message.raw)
    transactions = _draw(
        json_values
        | st.fixed_dictionaries(
            {"origin": st.just(REMOTE), "origin_server_ts": st.just(int(time.time() * 1000))},
            optional={
                "pdus": st.lists(_mutated_pdu(base) | json_values, max_size=3) | json_values,
                "edus": st.lists(_edus(), max_size=3) | json_values,
            },
        )
    )
    bodies = _draw(json_values)
    words = _draw(st.text(max_size=30) | st.sampled_from(["$e", room_id, CAROL, "-1", "99"]))
    async with federation_http(api) as http:
        peer = SignedPeer(REMOTE, REMOTE_KEY, http)
        for i, body in enumerate(transactions):
            r = await peer.request("PUT", f"{V1}/send/fuzz{i}", json_body=body)
            await _check(r, f"/send {body!r}")
        for body in bodies:
            for path in (
                f"{V1}/get_missing_events/{room}",
                f"{V1}/publicRooms",
                f"{V1}/user/keys/query",
                f"{V1}/user/keys/claim",
            ):
                r = await peer.request("POST", path, json_body=body)
                await _check(r, f"POST {path} {body!r}")
            r = await peer.request("PUT", f"{V2}/invite/{room}/$fuzz", json_body=body)
            await _check(r, f"invite {body!r}")
            r = await peer.request("PUT", f"{V2}/send_join/{room}/$fuzz", json_body=body)
            await _check(r, f"send_join {body!r}")
        for word in words:
            q = quote(word, safe="")
            for method, path, query in (
                ("GET", f"{V1}/state_ids/{room}", {"event_id": word}),
                ("GET", f"{V1}/state/{room}", {"event_id": word}),
                ("GET", f"{V1}/backfill/{room}", {"v": word, "limit": word}),
                ("GET", f"{V1}/event/{q}", None),
                ("GET", f"{V1}/event_auth/{room}/{q}", None),
                ("GET", f"{V1}/make_join/{room}/{q}", {"ver": word}),
                ("GET", f"{V1}/query/profile", {"user_id": word, "field": word}),
                ("GET", f"{V1}/query/directory", {"room_alias": word}),
                ("GET", f"{V1}/user/devices/{q}", None),
                ("GET", EXTREMITIES_PATH.format(room_id=q), None),  # the mesh's gossip
            ):
                r = await peer.request(method, path, query=query)
                await _check(r, f"{method} {path} {query!r}")


@pytest.mark.config(CONFIG)
async def test_an_edu_whose_type_is_not_a_string_is_ignored(api: ClientApi) -> None:
    """Found by the fuzzer: `edu_type: []` made /send answer 500 (an unhashable lookup)."""
    await trust_key(api, REMOTE, REMOTE_KEY)
    async with federation_http(api) as http:
        peer = SignedPeer(REMOTE, REMOTE_KEY, http)
        body = {"origin": REMOTE, "origin_server_ts": 0, "pdus": [], "edus": [{"edu_type": []}]}
        r = await peer.request("PUT", f"{V1}/send/edu-type-list", json_body=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"pdus": {}}
