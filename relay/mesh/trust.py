"""Deciding what a LAN announcement is worth: trusted, pending or rejected.

A discovered peer is an address, nothing more. Before we federate with it we fetch its
signing key from that very address (`GET /_matrix/key/v2/server` over TLS, the
certificate taken as presented: what it proves is checked below) and check, in order:

1. the key response is for the announced server name and validly self-signed
   (relay.federation.server_keys.check_key_response);
2. the announced key id is in it, and the SHA-256 of that key is the announced fingerprint;
3. the certificate the connection presented is one the signed key response lists in
   `tls_fingerprints` (relay/federation/key_server.py). A key response is public, so
   anyone can replay it; only the holder of the certificate's private key can complete
   the handshake, and only the holder of the signing key can list the certificate. So
   this is where the address proves it is the key's owner;
4. the key equals the name's pinned key: `[mesh] trusted` in the config, else the key the
   operator approved with `relay peers approve NAME`.

Verdicts: 1, 2 or 3 failing -> `rejected` with `proof_failed` (the address does not hold
the key it names: a spoof or a replay; it never touches the real peer's record); 4 failing
while a pin exists -> `rejected` (another key under a pinned name); no pin -> `pending`
(listed with its fingerprint, waiting for `relay peers approve`); 4 holding -> `trusted`:
only then does the resolver route the name to this address, pinned to the certificate
that passed 3 (every later connection to the peer must present exactly it:
relay/federation/client.py), and gossip reach it. A key that cannot be fetched (peer down)
leaves the peer `pending` (or unrouted, when pinned) until the next look.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

from relay.events.canonical import JsonParseError, parse_json_strict
from relay.events.signing import SignatureError, decode_verify_key_base64, verify_json_signature
from relay.federation.client import KEY_RESPONSE_BYTES
from relay.federation.key_server import certificate_sha256, listed_tls_fingerprints
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
    #: The address failed to prove it holds the key it announced (checks 1-3).
    proof_failed: bool = False
    #: The DER certificate the peer's connection presented (None when not fetched).
    certificate: bytes | None = None


def judge_key_response(
    announcement: Announcement,
    response: object,
    pin: str | None,
    now_ms: int,
    certificate: bytes | None,
) -> Verdict:
    """The verdict on a key response fetched over a TLS connection that presented
    `certificate` (DER; None if none was seen). Pure: no I/O."""

    def spoof(reason: str, served: str | None = None) -> Verdict:
        return Verdict(REJECTED, reason, served, True, True, certificate)

    try:
        keys = check_key_response(response, announcement.server_name, now_ms)
    except KeyResponseError as exc:
        return spoof(f"bad key response: {exc}")
    key = keys.get(announcement.key_id)
    if key is None or key.expired_ts is not None:
        return spoof(f"announced key {announcement.key_id} is not served")
    served = key.verify_key_base64.rstrip("=")
    if key_fingerprint(served) != announcement.fingerprint:
        return spoof("announced fingerprint is not the served key's", served)
    if certificate is None or certificate_sha256(certificate) not in listed_tls_fingerprints(
        response
    ):
        return spoof("TLS certificate not listed in the signed key response (a replay)", served)
    if pin is None:
        reason = "not pinned: approve with `relay peers approve`"
        return Verdict(PENDING, reason, served, True, certificate=certificate)
    if served != pin.rstrip("="):
        return Verdict(REJECTED, "key differs from the pinned key", served, True)
    return Verdict(TRUSTED, "key matches the pinned key", served, True, certificate=certificate)


def signed_by_served_key(signed: object, origin: str, key_id: str, verify_key: str) -> bool:
    """Whether an inbound request's signed object (relay.federation.request_auth) is signed
    by `origin` with the key a LAN peer served under `key_id`: a request that really came
    from that peer, not one forging its name. Pure."""
    if not isinstance(signed, dict):
        return False
    try:
        verify_json_signature(signed, origin, key_id, decode_verify_key_base64(verify_key))
    except (SignatureError, ValueError):
        return False
    return True


class _Unfetched(Exception):
    """No key response came (the peer is down, or said something that is not one)."""


async def fetch_key_response(
    http: httpx.AsyncClient, announcement: Announcement
) -> tuple[object, bytes | None]:
    """The announced address's `/_matrix/key/v2/server` answer (at most
    KEY_RESPONSE_BYTES), and the certificate its TLS connection presented (DER).

    Raises:
        _Unfetched: no answer, an error status, a body over the cap or not JSON.
    """
    import httpx

    url = f"{announcement.base_url}/_matrix/key/v2/server"
    try:
        # No content coding: counted raw bytes are the bytes held.
        headers = {"Accept-Encoding": "identity"}
        async with http.stream("GET", url, headers=headers, timeout=KEY_FETCH_TIMEOUT) as response:
            certificate = _peer_certificate(response)
            if response.status_code != 200:
                raise _Unfetched(f"HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > KEY_RESPONSE_BYTES:
                    raise _Unfetched(f"key response over {KEY_RESPONSE_BYTES} bytes")
        return parse_json_strict(bytes(body)), certificate
    except (httpx.HTTPError, OSError, JsonParseError) as exc:
        raise _Unfetched(type(exc).__name__) from None


def _peer_certificate(response: httpx.Response) -> bytes | None:
    """The DER certificate of the TLS connection `response` came over (None over HTTP)."""
    stream = response.extensions.get("network_stream")
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    return ssl_object.getpeercert(binary_form=True)


async def check_announcement(
    http: httpx.AsyncClient, announcement: Announcement, pin: str | None
) -> Verdict:
    """Fetch the key the announced address serves, with the certificate it presents, and
    judge them. `http` must not verify certificates: the judgement does."""
    try:
        body, certificate = await fetch_key_response(http, announcement)
    except _Unfetched as exc:
        return Verdict(PENDING, f"key not fetched: {exc}")
    verdict = judge_key_response(announcement, body, pin, now_ms(), certificate)
    if verdict.status == REJECTED:
        log.warning(
            "mesh: rejected %s at %s: %s",
            announcement.server_name,
            announcement.base_url,
            verdict.reason,
        )
    return verdict
