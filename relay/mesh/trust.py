"""Deciding what a LAN announcement is worth: trusted, pending or rejected.

A discovered peer is an address, nothing more. Before we federate with it we fetch its
signing key from that very address (`GET /_matrix/key/v2/server`, TLS unverified: trust
rests on the signing key, not on the certificate) and check, in order:

1. the key response is for the announced server name and validly self-signed
   (relay.federation.server_keys.check_key_response);
2. the announced key id is in it, and the SHA-256 of that key is the announced fingerprint;
3. the key equals the name's pinned key: `[mesh] trusted` in the config, else the key the
   operator approved with `relay peers approve NAME`.

Verdicts: 1 or 2 failing, or 3 failing while a pin exists -> `rejected` (a spoof: it gets
nothing, and its address never reaches the resolver); no pin -> `pending` (listed with its
fingerprint, waiting for `relay peers approve`); 3 holding -> `trusted`: only then does the
resolver route the name to this address and gossip reach it. A key that cannot be fetched
(peer down) leaves the peer `pending` (or unrouted, when pinned) until the next look.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from relay.federation.server_keys import KeyResponseError, check_key_response
from relay.mesh.discovery import Announcement, key_fingerprint
from relay.runtime.clock import now_ms

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

KEY_FETCH_TIMEOUT = 5.0

TRUSTED, PENDING, REJECTED = "trusted", "pending", "rejected"


@dataclass(frozen=True, slots=True)
class Verdict:
    status: str
    reason: str
    #: The key the peer serves under the announced key id (None when not fetched).
    verify_key: str | None = None
    #: Whether the peer answered at all.
    fetched: bool = False


def judge_key_response(
    announcement: Announcement, response: object, pin: str | None, now_ms: int
) -> Verdict:
    """The verdict on a fetched key response (pure: no I/O)."""
    try:
        keys = check_key_response(response, announcement.server_name, now_ms)
    except KeyResponseError as exc:
        return Verdict(REJECTED, f"bad key response: {exc}", fetched=True)
    key = keys.get(announcement.key_id)
    if key is None or key.expired_ts is not None:
        return Verdict(REJECTED, f"announced key {announcement.key_id} is not served", fetched=True)
    served = key.verify_key_base64.rstrip("=")
    if key_fingerprint(served) != announcement.fingerprint:
        return Verdict(REJECTED, "announced fingerprint is not the served key's", served, True)
    if pin is None:
        return Verdict(PENDING, "not pinned: approve with `relay peers approve`", served, True)
    if served != pin.rstrip("="):
        return Verdict(REJECTED, "key differs from the pinned key", served, True)
    return Verdict(TRUSTED, "key matches the pinned key", served, True)


async def check_announcement(
    http: httpx.AsyncClient, announcement: Announcement, pin: str | None
) -> Verdict:
    """Fetch the key the announced address serves and judge it."""
    import httpx

    url = f"{announcement.base_url}/_matrix/key/v2/server"
    try:
        response = await http.get(url, timeout=KEY_FETCH_TIMEOUT)
        body = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, OSError, ValueError) as exc:
        return Verdict(PENDING, f"key not fetched: {type(exc).__name__}")
    if body is None:
        return Verdict(PENDING, f"key not fetched: HTTP {response.status_code}")
    verdict = judge_key_response(announcement, body, pin, now_ms())
    if verdict.status == REJECTED:
        log.warning(
            "mesh: rejected %s at %s: %s",
            announcement.server_name,
            announcement.base_url,
            verdict.reason,
        )
    return verdict
