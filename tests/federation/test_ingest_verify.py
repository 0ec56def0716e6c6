"""`Ingest.verified_pdu` calls a PDU bad only for what signature checking says is bad: a
forged or damaged event is `BadPdu`; a bug of ours (any other exception) is not dressed up
as "signature check failed" but raised as what it is."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from relay.events.hashes import add_content_hash
from relay.events.room_versions import room_version
from relay.events.signing import SignatureError, sign_event
from relay.federation.ingest import BadPdu, Ingest
from relay.runtime.identity import new_signing_key

RV = room_version("10")
KEY = new_signing_key()


def _event() -> dict[str, Any]:
    event = {
        "type": "m.room.message",
        "room_id": "!room:remote.example",
        "sender": "@u:remote.example",
        "content": {"body": "hi"},
        "origin_server_ts": 1,
        "depth": 2,
        "prev_events": ["$prev"],
        "auth_events": [],
    }
    return sign_event(add_content_hash(event), RV, "remote.example", KEY.key_id, KEY.key)


class KeyRing:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def verify_event_signatures(self, event: dict[str, Any], rv: Any) -> None:
        raise self.error


def _ingest(error: BaseException) -> Ingest:
    services = SimpleNamespace(keyring=KeyRing(error), database=None, rooms=None)
    return Ingest(services)  # type: ignore[arg-type]


async def test_a_bad_signature_is_a_bad_pdu() -> None:
    with pytest.raises(BadPdu, match="signature check failed"):
        await _ingest(SignatureError("bad signature")).verified_pdu(_event(), RV)


async def test_a_bug_of_ours_is_not_called_a_signature_failure() -> None:
    with pytest.raises(RuntimeError, match="a bug"):
        await _ingest(RuntimeError("a bug")).verified_pdu(_event(), RV)
