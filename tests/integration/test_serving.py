"""`relay init` + `relay run` serve both listeners, as a subprocess on 127.0.x.y."""

from __future__ import annotations

import json
import signal
import ssl
import time

import httpx
import signedjson.key
import signedjson.sign

from tests.integration.conftest import RelayProcess

# A hang guard, not a timing assertion: well under the 75 s keep-alive timeout that a stop
# waiting on idle connections would take, well over the 1 s grace on a loaded machine.
STOP_GUARD_S = 30.0


def _tls_client(relay: RelayProcess) -> httpx.Client:
    pem = (relay.data_dir / "tls.crt").read_text()
    ctx = ssl.create_default_context(cadata=pem)
    ctx.check_hostname = False  # the certificate names the IP; httpx gets the host from the URL
    return httpx.Client(base_url=relay.federation_url, verify=ctx, timeout=10)


def test_client_versions_and_health(relay: RelayProcess) -> None:
    r = httpx.get(f"{relay.client_url}/_matrix/client/versions")
    assert r.status_code == 200
    assert "v1.11" in r.json()["versions"]
    assert httpx.get(f"{relay.client_url}/health").text == "OK"


def test_unknown_endpoint_is_404_unrecognized(relay: RelayProcess) -> None:
    r = httpx.get(f"{relay.client_url}/_matrix/client/v3/nonsense")
    assert r.status_code == 404
    assert r.json()["errcode"] == "M_UNRECOGNIZED"


def test_wrong_method_is_405_unrecognized(relay: RelayProcess) -> None:
    r = httpx.post(f"{relay.client_url}/_matrix/client/versions")
    assert r.status_code == 405
    assert r.json()["errcode"] == "M_UNRECOGNIZED"
    with _tls_client(relay) as fed:
        r = fed.delete("/_matrix/key/v2/server")
        assert r.status_code == 405
        assert r.json()["errcode"] == "M_UNRECOGNIZED"


def test_federation_version_over_tls(relay: RelayProcess) -> None:
    with _tls_client(relay) as fed:
        r = fed.get("/_matrix/federation/v1/version")
    assert r.status_code == 200
    assert r.json()["server"]["name"] == "edge-relay"


def test_server_keys_verify_with_signedjson(relay: RelayProcess) -> None:
    with _tls_client(relay) as fed:
        body = fed.get("/_matrix/key/v2/server").json()
    assert body["server_name"] == relay.server_name
    [(key_id, key)] = body["verify_keys"].items()
    assert key_id.startswith("ed25519:")
    verify_key = signedjson.key.decode_verify_key_bytes(
        key_id, signedjson.key.decode_base64(key["key"])
    )
    signedjson.sign.verify_signed_json(body, relay.server_name, verify_key)
    now_ms = time.time() * 1000
    day_ms = 24 * 3600 * 1000
    assert now_ms + day_ms * 0.9 < body["valid_until_ts"] <= now_ms + day_ms * 1.01
    # The served key is the one relay status reports.
    status = json.loads(relay.cli("status", "--json").stdout)
    assert status["key_id"] == key_id
    assert status["verify_key"] == key["key"]


def test_tampered_server_keys_fail_signedjson(relay: RelayProcess) -> None:
    with _tls_client(relay) as fed:
        body = fed.get("/_matrix/key/v2/server").json()
    [(key_id, key)] = body["verify_keys"].items()
    verify_key = signedjson.key.decode_verify_key_bytes(
        key_id, signedjson.key.decode_base64(key["key"])
    )
    body["valid_until_ts"] += 1
    try:
        signedjson.sign.verify_signed_json(body, relay.server_name, verify_key)
    except signedjson.sign.SignatureVerifyException:
        return
    raise AssertionError("a tampered key response verified")


def test_sigterm_stops(relay: RelayProcess) -> None:
    code = relay.stop(signal.SIGTERM, timeout=STOP_GUARD_S)
    assert code == 0, relay.log()
    assert "shutting down" in relay.log()


def test_sigint_stops_cleanly(relay: RelayProcess) -> None:
    assert relay.stop(signal.SIGINT, timeout=5) == 0, relay.log()


def test_sigterm_with_an_open_connection_still_stops(relay: RelayProcess) -> None:
    with httpx.Client(base_url=relay.client_url) as held:
        held.get("/health")  # keep-alive connection stays open
        # Waiting on the idle keep-alive connection would take its 75 s timeout.
        code = relay.stop(signal.SIGTERM, timeout=STOP_GUARD_S)
        assert code == 0, relay.log()


def test_user_add_while_running_and_status_counts(relay: RelayProcess) -> None:
    out = relay.cli("user", "add", "alice", "--password", "pw1")
    assert f"@alice:{relay.server_name}" in out.stdout
    status = json.loads(relay.cli("status", "--json").stdout)
    assert status["counts"]["users"] == 1
    assert status["server_name"] == relay.server_name
    assert status["listeners"]["client"] == relay.client_url
    again = relay.cli("user", "add", "alice", "--password", "pw2", check=False)
    assert again.returncode == 1
    assert "already taken" in again.stderr
    assert httpx.get(f"{relay.client_url}/health").status_code == 200
