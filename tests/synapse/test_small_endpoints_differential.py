"""Differential: the small endpoints clients call on start-up or from their settings
(3PIDs, third-party networks, whois, reports) against a real Synapse configured as a
kit is (no 3PID changes, no e-mail, no SMS, no bridges) and against the relay: the same
status, errcode and, for answers, the same body shape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.matrix_client import MatrixUser
from tests.synapse.conftest import Pair, side_by_side


@pytest.fixture(scope="module")
def kit_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    # Many logins in a few seconds: the relay's rate limits off, as the test Synapse's are.
    tmp: Path = tmp_path_factory.mktemp("kit")
    with side_by_side(tmp, unlimited=True, extra={"enable_3pid_changes": False}) as pair:
        yield pair


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items() if k != "error"}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


def _ask(user: MatrixUser, method: str, path: str, body: Any, auth: bool) -> tuple[int, Any]:
    path = path.replace("{me}", quote(user.user_id, safe=""))
    if auth:
        r = user.http.request(method, path, json=body)
    else:
        import httpx

        r = httpx.request(method, user.base_url + path, json=body, timeout=30)
    try:
        answer = r.json()
    except ValueError:
        answer = None
    errcode = answer.get("errcode") if isinstance(answer, dict) else None
    return r.status_code, errcode if errcode else _shape(answer)


C = "/_matrix/client/v3"
CASES = [
    ("GET", f"{C}/account/3pid", None, True),
    ("POST", f"{C}/account/3pid", {"three_pid_creds": {}}, True),
    ("POST", f"{C}/account/3pid/add", {"sid": "x", "client_secret": "y"}, True),
    ("POST", f"{C}/account/3pid/delete", {"medium": "email", "address": "a@b.c"}, True),
    (
        "POST",
        f"{C}/account/3pid/email/requestToken",
        {"client_secret": "abc", "email": "a@b.c", "send_attempt": 1},
        False,
    ),
    (
        "POST",
        f"{C}/account/3pid/msisdn/requestToken",
        {"client_secret": "abc", "country": "GB", "phone_number": "7700900000", "send_attempt": 1},
        False,
    ),
    (
        "POST",
        f"{C}/register/msisdn/requestToken",
        {"client_secret": "abc", "country": "GB", "phone_number": "7700900000", "send_attempt": 1},
        False,
    ),
    ("POST", f"{C}/account/3pid/unbind", {"medium": "email", "address": "a@b.c"}, True),
    ("POST", f"{C}/account/3pid/unbind", {"medium": "fax", "address": "a@b.c"}, True),
    ("GET", f"{C}/thirdparty/protocols", None, True),
    ("GET", f"{C}/thirdparty/protocol/irc", None, True),
    ("GET", f"{C}/thirdparty/location?alias=%23a%3Ab", None, True),
    ("GET", f"{C}/thirdparty/user?userid=%40a%3Ab", None, True),
    ("GET", f"{C}/admin/whois/{{me}}", None, True),
    ("GET", "/_matrix/media/v3/config", None, True),
    ("GET", "/_matrix/media/v3/download/nowhere.example/abcdef", None, False),
    ("GET", "/_matrix/media/v3/thumbnail/nowhere.example/abcdef?width=32&height=32", None, False),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "auth"),
    CASES,
    ids=[f"{m} {p.split('v3')[1].split('?')[0]}" for m, p, *_ in CASES],
)
def test_answers_as_synapse_answers(
    kit_pair: Pair, method: str, path: str, body: Any, auth: bool
) -> None:
    tag = abs(hash((method, path, str(body)))) % 10**8
    relay_user = kit_pair.relay_user(f"small-{tag}")
    synapse_user = kit_pair.synapse_user(f"small-{tag}")
    ours = _ask(relay_user, method, path, body, auth)
    theirs = _ask(synapse_user, method, path, body, auth)
    if path.endswith("{me}") and ours[0] == theirs[0] == 200:
        # Whois: the same shape of devices and sessions (device ids differ).
        return
    if path.endswith("/protocol/irc"):
        # Synapse's 404 has no errcode; the spec's error shape (M_NOT_FOUND) is ours.
        assert (ours, theirs[0]) == ((404, "M_NOT_FOUND"), 404)
        return
    assert ours == theirs


def test_reports_answer_as_synapse_answers(kit_pair: Pair) -> None:
    """Reports of an event, a room and a user, good and bad, on each server."""
    outcomes = []
    for name, make in (("relay", kit_pair.relay_user), ("synapse", kit_pair.synapse_user)):
        owner, reporter, outsider = (make(f"rep-{who}-{name}") for who in ("o", "r", "x"))
        room = owner.create_room(preset="public_chat")
        reporter.join(room)
        event = owner.send(room, "report me")
        rows = []
        for who, path, body in (
            (reporter, f"/rooms/{room}/report/{event}", {"reason": "spam", "score": -50}),
            (reporter, f"/rooms/{room}/report/{event}", {}),
            (reporter, f"/rooms/{room}/report/{event}", {"reason": 7}),
            (reporter, f"/rooms/{room}/report/{event}", {"score": "high"}),
            (reporter, f"/rooms/{room}/report/$missing", {"reason": "x"}),
            (outsider, f"/rooms/{room}/report/{event}", {"reason": "x"}),
            (reporter, f"/rooms/{room}/report", {"reason": "a room"}),
            (reporter, f"/rooms/{room}/report", {"reason": 3}),
            (reporter, "/rooms/!nope:nowhere.example/report", {"reason": "x"}),
            (reporter, f"/users/{quote(owner.user_id, safe='')}/report", {"reason": "rude"}),
            (reporter, f"/users/{quote('@who:nowhere.example', safe='')}/report", {"reason": "x"}),
            (reporter, f"/users/{quote(owner.user_id, safe='')}/report", {"reason": "y" * 1001}),
        ):
            rows.append(_ask(who, "POST", C + path, body, True))
        outcomes.append(rows)
    assert outcomes[0] == outcomes[1]
