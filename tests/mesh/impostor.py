"""A LAN host that replays a trusted kit's public key response from its own address.

`python -m tests.mesh.impostor VICTIM_URL OWN_ADDRESS WORK_DIR`, run inside the impostor's
network namespace: fetches VICTIM_URL's `/_matrix/key/v2/server` (anyone can), makes a
certificate of its own for the victim's server name, serves the replayed response over
HTTPS on OWN_ADDRESS:8448 and announces the victim's name, key id and key fingerprint over
mDNS from OWN_ADDRESS (under an instance name of its own). Every request it receives is
appended to WORK_DIR/requests.log as `METHOD PATH signed|unsigned`, so the test can see
what the kits sent it. Prints `ready` once announced.
"""

from __future__ import annotations

import json
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from relay.mesh.discovery import SERVICE_TYPE, key_fingerprint
from relay.runtime.identity import write_self_signed_certificate

PORT = 8448


def main() -> None:
    victim_url, address, work = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    work.mkdir(parents=True, exist_ok=True)
    replayed = httpx.get(f"{victim_url}/_matrix/key/v2/server", verify=False, timeout=10).json()
    server_name = replayed["server_name"]
    key_id, key = next(iter(replayed["verify_keys"].items()))
    write_self_signed_certificate(work / "tls.crt", work / "tls.key", server_name)
    log_path = work / "requests.log"
    lock = threading.Lock()
    body = json.dumps(replayed).encode()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            signed = "signed" if self.headers.get("Authorization") else "unsigned"
            with lock, open(log_path, "a") as log:
                log.write(f"{self.command} {self.path} {signed}\n")
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if self.path.startswith("/_matrix/key/v2/server"):
                status, out = 200, body
            elif self.path == "/health":
                status, out = 200, b"OK"
            else:
                status, out = 404, b'{"errcode": "M_UNRECOGNIZED", "error": "no"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_PUT = do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer((address, PORT), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(work / "tls.crt", work / "tls.key")
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()

    from zeroconf import IPVersion, ServiceInfo, Zeroconf

    zc = Zeroconf(interfaces=[address], ip_version=IPVersion.V4Only)
    fingerprint = key_fingerprint(key["key"])
    info = ServiceInfo(
        SERVICE_TYPE,
        f"replay-{fingerprint[:8]}.{SERVICE_TYPE}",
        addresses=[socket.inet_aton(address)],
        port=PORT,
        properties={
            "server_name": server_name,
            "key_id": key_id,
            "fingerprint": fingerprint,
            "version": "replayed",
        },
        server="impostor.local.",
    )
    zc.register_service(info, cooperating_responders=True)
    print("ready", flush=True)
    while True:
        time.sleep(5)
        zc.update_service(info)


if __name__ == "__main__":
    main()
