"""Hypothesis against the mesh's trust judgement (relay/mesh/trust.py) and the key
response check under it (relay/federation/server_keys.py): whatever a LAN host serves, the
judgement is a verdict, never an exception, and only the real key response over the real
certificate, matching the pin, is ever `trusted`."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.federation.key_server import OwnKeys, certificate_sha256
from relay.mesh.trust import PENDING, REJECTED, TRUSTED, judge_key_response
from relay.runtime.identity import new_signing_key
from tests.mesh.identities import announcement_of, make_certificate

NAME = "kit-b.mesh"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
KEY = new_signing_key()
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.text(max_size=20)
    | st.sampled_from([NAME, KEY.key_id, KEY.verify_key_base64, "ed25519:x", ""])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=15,
)
FIELDS = ["server_name", "verify_keys", "old_verify_keys", "valid_until_ts", "signatures",
          "tls_fingerprints"]  # fmt: skip


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, dict[str, Any]]:
    certificate = make_certificate(Path(tmp_path_factory.mktemp("kit")), NAME)
    return certificate, OwnKeys(NAME, KEY, (certificate_sha256(certificate),)).server_keys()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    field=st.sampled_from(FIELDS),
    value=json_values,
    remove=st.booleans(),
    pinned=st.booleans(),
    with_certificate=st.booleans(),
)
def test_a_tampered_key_response_is_never_trusted(
    kit: tuple[bytes, dict[str, Any]],
    field: str,
    value: Any,
    remove: bool,
    pinned: bool,
    with_certificate: bool,
) -> None:
    certificate, response = kit
    tampered = dict(response)
    if remove:
        tampered.pop(field, None)
    else:
        tampered[field] = value
    pin = KEY.verify_key_base64 if pinned else None
    verdict = judge_key_response(
        announcement_of(KEY, NAME),
        tampered,
        pin,
        int(time.time() * 1000),
        certificate if with_certificate else None,
    )
    assert verdict.status in (TRUSTED, PENDING, REJECTED)
    if verdict.status != REJECTED:
        # Only a response that still carries our signature over what it says can pass.
        assert with_certificate
        assert tampered.get("server_name") == NAME
        assert tampered.get("signatures") == response["signatures"]


@settings(max_examples=EXAMPLES, deadline=None)
@given(response=json_values)
def test_any_json_served_as_a_key_response_is_a_verdict(response: Any) -> None:
    verdict = judge_key_response(
        announcement_of(KEY, NAME), response, KEY.verify_key_base64, 0, b"not a certificate"
    )
    assert verdict.status == REJECTED
