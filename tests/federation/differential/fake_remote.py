"""A fake remote homeserver of our own for the differential harness: a real TLS listener on
its own loopback address (so a real Synapse and a real relay can fetch its signing key and call
it back, as ../shared/INTEROP.md describes), a signing key, events it builds and signs by hand,
and signed X-Matrix requests to a target server.

It answers only what a target asks of a server in its rooms: its keys, the events it built,
`/send` (recorded), `/user/devices` (recorded: a `prev_id` gap must make the target ask) and
empty answers for the rest; a test adds `scripts` for what else it plays (a room hosted here
answering make_join and send_join). It checks nothing: it is the test's puppet, not a server."""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import nacl.signing

from relay.events.auth import auth_types_for_event
from relay.events.pdu import Pdu, finalize_event, reference_pairs, strip_state_event
from relay.events.room_versions import room_version
from relay.events.signing import sign_json
from relay.events.unpadded_base64 import encode_base64
from relay.runtime.identity import SigningKey, new_signing_key, write_self_signed_certificate
from tests.federation.inprocess import signed_request
from tests.support import free_port, fresh_loopback

DAY_MS = 24 * 3600 * 1000

#: A scripted answer: (the unquoted path's match, the request's JSON body or None) ->
#: (status, body).
Script = Callable[[re.Match[str], Any], tuple[int, Any]]


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class FakeRemote:
    """`host:port`, serving TLS from a thread; `events` are the PDUs it built (by event id)."""

    directory: Path
    host: str = field(default_factory=fresh_loopback)
    key: SigningKey = field(default_factory=new_signing_key)
    port: int = 0
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: user id -> (stream id, devices) answered by /user/devices.
    devices: dict[str, tuple[int, list[dict[str, Any]]]] = field(default_factory=dict)
    #: (method, path) of every request a target made to us, in order.
    received: list[tuple[str, str]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    #: (method, path pattern, script), tried in order before the usual answers.
    scripts: list[tuple[str, str, Script]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        self.port = free_port(self.host)
        self.directory.mkdir(parents=True, exist_ok=True)
        cert, key = self.directory / "tls.crt", self.directory / "tls.key"
        write_self_signed_certificate(cert, key, self.host)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        remote = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                content = self.rfile.read(length) if length else b""
                path = urlsplit(self.path).path
                remote.received.append((self.command, path))
                status, body = remote.answer(self.command, path, content)
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_PUT = do_POST = _answer

        self.server = ThreadingHTTPServer((self.host, self.port), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def answer(self, method: str, path: str, content: bytes = b"") -> tuple[int, Any]:
        for script_method, pattern, script in list(self.scripts):
            # Matched unquoted: targets percent-encode ids differently (`!`, `:`, `@`).
            if script_method == method and (m := re.fullmatch(pattern, unquote(path))):
                try:
                    body = json.loads(content) if content else None
                except ValueError:
                    body = None
                return script(m, body)
        if path.startswith("/_matrix/key/v2/server"):
            return 200, self.sign(
                {
                    "server_name": self.name,
                    "verify_keys": {self.key.key_id: {"key": self.key.verify_key_base64}},
                    "old_verify_keys": {},
                    "valid_until_ts": now_ms() + DAY_MS,
                }
            )
        if m := re.fullmatch(r"/_matrix/federation/v1/event/([^/]+)", path):
            event = self.events.get(unquote(m[1]))
            if event is not None:
                return 200, {"origin": self.name, "origin_server_ts": now_ms(), "pdus": [event]}
        if m := re.fullmatch(r"/_matrix/federation/v1/user/devices/([^/]+)", path):
            user_id = unquote(m[1])
            stream_id, devices = self.devices.get(user_id, (9, []))
            return 200, {"user_id": user_id, "stream_id": stream_id, "devices": devices}
        if method == "PUT" and path.startswith("/_matrix/federation/v1/send/"):
            return 200, {"pdus": {}}
        if path.startswith("/_matrix/federation/v1/get_missing_events/"):
            return 200, {"events": []}
        if path == "/_matrix/federation/v1/user/keys/query":
            return 200, {"device_keys": {}}
        return 404, {"errcode": "M_NOT_FOUND", "error": "Not found"}

    def asked(self, method: str, path_prefix: str) -> bool:
        return any(m == method and p.startswith(path_prefix) for m, p in list(self.received))

    # -- signing -------------------------------------------------------------------------

    def sign(self, obj: dict[str, Any]) -> dict[str, Any]:
        return sign_json(obj, self.name, self.key.key_id, self.key.key)

    def device_keys(self, user_id: str, device_id: str) -> dict[str, Any]:
        """Device keys for a new device of `user_id`, self-signed as a client would."""
        device_key = nacl.signing.SigningKey.generate()
        public = encode_base64(bytes(device_key.verify_key))
        keys = {
            "user_id": user_id,
            "device_id": device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {f"curve25519:{device_id}": public, f"ed25519:{device_id}": public},
        }
        return sign_json(keys, user_id, f"ed25519:{device_id}", device_key)

    def user(self, localpart: str) -> str:
        return f"@{localpart}:{self.name}"

    def event(
        self,
        version: str,
        *,
        room_id: str | None,
        sender: str,
        type_: str,
        content: dict[str, Any],
        state: Mapping[tuple[str, str], str],
        prev_events: Sequence[str],
        depth: int,
        state_key: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """A PDU we sign, citing the auth events `state` holds for it; kept for `/event`.
        `room_id` None: a version 12 create event (its room id is its own hash)."""
        rv = room_version(version)
        assert rv is not None
        partial: dict[str, Any] = {
            "sender": sender,
            "type": type_,
            "content": content,
            "origin_server_ts": now_ms(),
            "prev_events": list(prev_events),
            "depth": depth,
            **extra,
        }
        if room_id is not None:
            partial["room_id"] = room_id
        if state_key is not None:
            partial["state_key"] = state_key
        if not rv.updated_redaction_rules:
            partial["origin"] = self.name
        partial["auth_events"] = sorted(
            {state[k] for k in auth_types_for_event(partial, rv) if k in state}
        )
        if rv.event_id_in_event:  # versions 1 and 2 cite events as [id, {hashes}]
            known = {
                i: Pdu.from_dict(self.events[i], rv)
                for i in [*partial["prev_events"], *partial["auth_events"]]
                if i in self.events
            }
            for key in ("prev_events", "auth_events"):
                partial[key] = reference_pairs(partial[key], known)
        pdu = finalize_event(partial, rv, self.name, self.key.key_id, self.key.key)
        self.events[pdu.event_id] = pdu.as_dict()
        return pdu.as_dict()

    def signed_template(self, version: str, template: dict[str, Any]) -> dict[str, Any]:
        """A make_join/make_leave template, completed and signed by us."""
        rv = room_version(version)
        assert rv is not None
        partial = {**template, "origin_server_ts": now_ms()}
        if not rv.updated_redaction_rules:
            partial["origin"] = self.name
        pdu = finalize_event(partial, rv, self.name, self.key.key_id, self.key.key)
        self.events[pdu.event_id] = pdu.as_dict()
        return pdu.as_dict()

    @staticmethod
    def stripped(event: dict[str, Any], version: str) -> dict[str, Any]:
        rv = room_version(version)
        assert rv is not None
        return strip_state_event(Pdu.from_dict(event, rv))

    def request(
        self,
        http: httpx.Client,
        destination: str,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | Sequence[str]] | None = None,
        body: Any = None,
        signed: bool = True,
    ) -> httpx.Response:
        """`path` percent-encoded already; list query values repeat the key (`ver=`)."""
        uri, headers, content = signed_request(
            self.name, self.key, destination, method, path, query, body, signed=signed
        )
        return http.request(method, uri, content=content, headers=headers)
