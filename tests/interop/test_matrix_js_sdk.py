"""Interop: a stock matrix-js-sdk (37.0.0, Node 20) talks to the relay.

Runs tools/clients/js_scenario.mjs against a real relay subprocess with two
accounts made by `relay user add`. The script's docstring lists what it
proves: login, createRoom + invite + join, 20 interleaved messages each way
seen in /sync, the whole history paginated back with /messages in pages of 5,
display name change, typing, read receipt and leave, each seen by the other
user in /sync. It passes against Synapse 1.163.2.

`make test` installs node and matrix-js-sdk (the Makefile's `clients` target).
If they are missing this test fails, it does not skip: an interop test that
silently skips proves nothing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import RelayProcess
from tests.interop.conftest import ChatPair, relay_log_tail

pytestmark = pytest.mark.integration

CLIENTS_DIR = Path(__file__).resolve().parents[2] / "tools" / "clients"
SCRIPT = CLIENTS_DIR / "js_scenario.mjs"
SDK_PACKAGE = CLIENTS_DIR / "node_modules" / "matrix-js-sdk" / "package.json"
SCENARIO_TIMEOUT_S = 180


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: run `make test` (its `clients` step installs it)")
    if not SDK_PACKAGE.exists():
        pytest.fail(
            f"matrix-js-sdk is not installed in {CLIENTS_DIR / 'node_modules'}: run `make test` "
            f"(or `make clients`, or `npm ci` in {CLIENTS_DIR})"
        )
    return node


def test_matrix_js_sdk_two_person_chat(relay: RelayProcess, chat_pair: ChatPair) -> None:
    node = _node()
    p = chat_pair
    cmd = [node, str(SCRIPT), p.base_url, p.user_a, p.password_a, p.user_b, p.password_b]
    try:
        proc = subprocess.run(
            cmd,
            cwd=CLIENTS_DIR,
            capture_output=True,
            text=True,
            timeout=SCENARIO_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout
        pytest.fail(
            f"js_scenario.mjs did not finish in {SCENARIO_TIMEOUT_S} s\n"
            f"--- script output ---\n{out or ''}\n"
            f"--- relay log (tail) ---\n{relay_log_tail(relay)}"
        )
    assert proc.returncode == 0, (
        f"js_scenario.mjs exited {proc.returncode}\n"
        f"--- script stdout ---\n{proc.stdout}\n"
        f"--- script stderr ---\n{proc.stderr}\n"
        f"--- relay log (tail) ---\n{relay_log_tail(relay)}"
    )
