"""Interop: two stock matrix-js-sdk (37.5.0, Node 20) clients that sync only with
Simplified Sliding Sync (MSC4186), as Element X does, against a real relay.

Runs tools/clients/sliding/js_sliding_sync.mjs (its docstring lists the steps): login,
a room created and an invite seen and accepted through a sliding sync list, messages
both ways, a thread reply, an edit and a reaction, each seen in the other client's room
model. It passes against Synapse 1.163.2 too (tests/synapse/ runs it there).

`make clients` installs matrix-js-sdk 37.5.0 into tools/clients/sliding/node_modules (the
other interop scripts keep 37.0.0); missing, this test fails rather than skips.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import RelayProcess
from tests.interop.conftest import ChatPair, relay_log_tail

pytestmark = pytest.mark.integration

SLIDING_DIR = Path(__file__).resolve().parents[2] / "tools" / "clients" / "sliding"
SCRIPT = SLIDING_DIR / "js_sliding_sync.mjs"
SDK_PACKAGE = SLIDING_DIR / "node_modules" / "matrix-js-sdk" / "package.json"
TIMEOUT_S = 180


def run_sliding_scenario(
    base_url: str, users: tuple[str, str, str, str]
) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: run `make clients`")
    if not SDK_PACKAGE.exists():
        pytest.fail(f"matrix-js-sdk is not installed in {SLIDING_DIR}: run `make clients`")
    return subprocess.run(
        [node, str(SCRIPT), base_url, *users],
        cwd=SLIDING_DIR,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def test_matrix_js_sdk_sliding_sync_chat_threads_edits_reactions(
    relay: RelayProcess, chat_pair: ChatPair
) -> None:
    p = chat_pair
    proc = run_sliding_scenario(p.base_url, (p.user_a, p.password_a, p.user_b, p.password_b))
    assert proc.returncode == 0, (
        f"js_sliding_sync.mjs exited {proc.returncode}\n"
        f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr[-4000:]}\n"
        f"--- relay log (tail) ---\n{relay_log_tail(relay)}"
    )
    assert "[js-sdk sliding sync] done" in proc.stdout
