"""Differential: the same `/keys/upload`, `/keys/device_signing/upload` and
`/room_keys/version` requests against a real Synapse 1.163.2 and a relay, answered with
the same status and errcode (issue 14 item 7: accept what Synapse accepts, refuse what it
refuses, with the same errors)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from tests.client.e2ee_helpers import cross_signing_key, device_keys
from tests.integration.matrix_client import MatrixUser
from tests.synapse.conftest import side_by_side

Body = Callable[[str, str], Any]
ALG = "m.megolm_backup.v1.curve25519-aes-sha2"


def _keys(user_id: str, device_id: str, **changes: Any) -> dict[str, Any]:
    keys = device_keys(user_id, device_id, nacl.signing.SigningKey.generate())
    for name, value in changes.items():
        if value is None:
            keys.pop(name)
        else:
            keys[name] = value
    return keys


def _tampered(user_id: str, device_id: str) -> dict[str, Any]:
    keys = _keys(user_id, device_id)
    keys["keys"][f"curve25519:{device_id}"] = "tampered"
    return {"device_keys": keys}


UPLOADS: list[tuple[str, Body]] = [
    ("good keys", lambda u, d: {"device_keys": _keys(u, d)}),
    ("bad self-signature", _tampered),
    ("empty body", lambda u, d: {}),
    ("null device_keys", lambda u, d: {"device_keys": None}),
    ("device_keys a string", lambda u, d: {"device_keys": "x"}),
    ("no signatures", lambda u, d: {"device_keys": _keys(u, d, signatures=None)}),
    ("no algorithms", lambda u, d: {"device_keys": _keys(u, d, algorithms=None)}),
    ("algorithms a string", lambda u, d: {"device_keys": _keys(u, d, algorithms="x")}),
    ("a key a number", lambda u, d: {"device_keys": _keys(u, d, keys={"ed25519:X": 5})}),
    ("another device", lambda u, d: {"device_keys": _keys(u, "OTHERDEVICE")}),
    ("another user", lambda u, d: {"device_keys": device_keys("@x:y", d, _signing())}),
    ("plain one-time key", lambda u, d: {"one_time_keys": {"curve25519:P": "k"}}),
    (
        "signed one-time key",
        lambda u, d: {"one_time_keys": {"signed_curve25519:S": {"key": "k", "signatures": {}}}},
    ),
    ("one-time key id without colon", lambda u, d: {"one_time_keys": {"nocolon": "k"}}),
    ("one-time key id with two colons", lambda u, d: {"one_time_keys": {"a:b:c": "k"}}),
    ("one-time key a number", lambda u, d: {"one_time_keys": {"curve25519:N": 5}}),
    ("unsigned key object", lambda u, d: {"one_time_keys": {"signed_curve25519:U": {"key": "k"}}}),
    ("same one-time key id, other key", lambda u, d: {"one_time_keys": {"curve25519:P": "k2"}}),
    ("fallback keys a list", lambda u, d: {"fallback_keys": []}),
    ("fallback key id without colon", lambda u, d: {"fallback_keys": {"f": "k"}}),
]

#: Cases where Synapse 1.163.2 fails with 500; the relay answers 400 M_BAD_JSON.
SYNAPSE_CRASHES = {"fallback keys a list"}

BACKUP: list[tuple[str, str, str, Any]] = [
    ("create", "POST", "", {"algorithm": ALG, "auth_data": {"k": 1}}),
    (
        "update with another version in the body",
        "PUT",
        "/1",
        {"algorithm": ALG, "auth_data": {}, "version": "2"},
    ),
    ("update with another algorithm", "PUT", "/1", {"algorithm": "m.x", "auth_data": {}}),
    ("update an unknown version", "PUT", "/77", {"algorithm": ALG, "auth_data": {}}),
    ("update a non-numeric version", "PUT", "/abc", {"algorithm": ALG, "auth_data": {}}),
    ("get a non-numeric version", "GET", "/abc", None),
    ("get an unknown version", "GET", "/77", None),
    ("delete an unknown version", "DELETE", "/77", None),
    ("update", "PUT", "/1", {"algorithm": ALG, "auth_data": {"k": 2}}),
]


def _signing() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey.generate()


def _answer(r: Any) -> tuple[int, str | None]:
    body = r.json()
    return r.status_code, body.get("errcode") if isinstance(body, dict) else None


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MatrixUser, MatrixUser]]:
    tmp: Path = tmp_path_factory.mktemp("keys-diff")
    with side_by_side(tmp) as pair:
        theirs, ours = pair.same_user_on_each("alice")
        yield theirs, ours


def _device_id(user: MatrixUser) -> str:
    return str(user.call("GET", "/account/whoami")["device_id"])


def test_keys_upload_answers_as_synapse(users: tuple[MatrixUser, MatrixUser]) -> None:
    differences = []
    for case, body in UPLOADS:
        answers = []
        for user in users:
            r = user.http.post(
                "/_matrix/client/v3/keys/upload", json=body(user.user_id, _device_id(user))
            )
            answers.append(_answer(r))
        if case in SYNAPSE_CRASHES:
            # Synapse's validator raises TypeError there: a 500 we do not copy.
            assert answers == [(500, "M_UNKNOWN"), (400, "M_BAD_JSON")], case
        elif answers[0] != answers[1]:
            differences.append((case, "synapse", answers[0], "relay", answers[1]))
    assert differences == []


def test_cross_signing_upload_asks_uia_as_synapse(users: tuple[MatrixUser, MatrixUser]) -> None:
    differences = []
    for user in users:
        user.master = _signing()  # type: ignore[attr-defined]
    steps: list[tuple[str, Callable[[MatrixUser], Any]]] = [
        (
            "first master key",
            lambda u: {"master_key": cross_signing_key(u.user_id, "master", u.master, None)},
        ),
        (
            "a new self-signing key",
            lambda u: {
                "self_signing_key": cross_signing_key(
                    u.user_id, "self_signing", _signing(), u.master
                )
            },
        ),
        (
            "a self-signing key not signed by the master",
            lambda u: {
                "self_signing_key": cross_signing_key(u.user_id, "self_signing", _signing(), None)
            },
        ),
    ]
    for case, body in steps:
        answers = []
        for user in users:
            r = user.http.post("/_matrix/client/v3/keys/device_signing/upload", json=body(user))
            status, errcode = _answer(r)
            flows = r.json().get("flows") if status == 401 else None
            answers.append((status, errcode, flows))
        if answers[0] != answers[1]:
            differences.append((case, "synapse", answers[0], "relay", answers[1]))
    assert differences == []


def test_backup_versions_answer_as_synapse(users: tuple[MatrixUser, MatrixUser]) -> None:
    differences = []
    for case, method, path, body in BACKUP:
        answers = []
        for user in users:
            r = user.http.request(method, f"/_matrix/client/v3/room_keys/version{path}", json=body)
            answers.append(_answer(r))
        if answers[0] != answers[1]:
            differences.append((case, "synapse", answers[0], "relay", answers[1]))
    assert differences == []
    for _ in range(11):
        for user in users:
            user.call("POST", "/room_keys/version", json={"algorithm": ALG, "auth_data": {}})
    current = [user.call("GET", "/room_keys/version")["version"] for user in users]
    assert current[0] == current[1] == "12"
