"""X-Matrix headers: what we send, and how we parse and check what others send."""

from __future__ import annotations

import re

import pytest
import signedjson.key
import signedjson.sign

from relay.errors import Unauthorized
from relay.events.signing import SignatureError, verify_json_signature
from relay.federation.request_auth import (
    MalformedAuthorization,
    authorization_headers,
    parse_authorization_header,
    request_json,
    signed_request_from_headers,
)
from relay.runtime.identity import SigningKey, new_signing_key

ORIGIN = "origin.example:8448"
DEST = "dest.example"
KEY = new_signing_key()


def _headers(
    *,
    method: str = "PUT",
    uri: str = "/_matrix/federation/v1/send/1?x=%20y",
    destination: str = DEST,
    content: object = None,
    key: SigningKey = KEY,
    origin: str = ORIGIN,
) -> list[str]:
    return authorization_headers(
        method=method,
        uri=uri,
        origin=origin,
        destination=destination,
        signing_key=key,
        content=content,
        has_content=content is not None,
    )


def _check(
    headers: list[str],
    *,
    method="PUT",
    uri="/_matrix/federation/v1/send/1?x=%20y",
    content: object = None,
    key: SigningKey = KEY,
) -> str:
    origin, signed = signed_request_from_headers(
        headers,
        method=method,
        uri=uri,
        our_server_name=DEST,
        content=content,
        has_content=content is not None,
    )
    for key_id in signed["signatures"][origin]:
        verify_json_signature(signed, origin, key_id, key.key.verify_key)
    return origin


def test_sign_then_verify_round_trip() -> None:
    content = {"pdus": [], "edus": [{"edu_type": "m.typing", "content": {"é": 1}}]}
    assert _check(_headers(content=content), content=content) == ORIGIN


def test_round_trip_verifies_with_signedjson() -> None:
    content = {"a": [1, 2]}
    origin, signed = signed_request_from_headers(
        _headers(content=content),
        method="PUT",
        uri="/_matrix/federation/v1/send/1?x=%20y",
        our_server_name=DEST,
        content=content,
        has_content=True,
    )
    verify_key = signedjson.key.decode_verify_key_bytes(KEY.key_id, bytes(KEY.key.verify_key))
    signedjson.sign.verify_signed_json(signed, origin, verify_key)


def test_header_has_the_spec_format() -> None:
    [header] = _headers()
    assert re.fullmatch(
        r'X-Matrix origin="origin\.example:8448",destination="dest\.example",'
        r'key="ed25519:[A-Za-z0-9_]+",sig="[A-Za-z0-9+/]+"',
        header,
    ), header


def test_signed_object_has_content_only_with_a_body() -> None:
    assert "content" not in request_json("GET", "/x", "o", "d")
    assert request_json("POST", "/x", "o", "d", {"a": 1})["content"] == {"a": 1}
    assert request_json("POST", "/x", "o", "d", None, has_content=True)["content"] is None


def test_wrong_destination_is_401() -> None:
    with pytest.raises(Unauthorized) as exc:
        _check(_headers(destination="elsewhere.example"))
    assert exc.value.status == 401
    assert exc.value.errcode == "M_UNAUTHORIZED"


def test_header_without_destination_is_accepted_for_old_servers() -> None:
    [header] = _headers()
    old_style = re.sub(r',destination="[^"]*"', "", header)
    assert "destination" not in old_style
    assert _check([old_style]) == ORIGIN


def test_tampered_content_fails_verification() -> None:
    headers = _headers(content={"amount": 1})
    with pytest.raises(SignatureError):
        _check(headers, content={"amount": 2})


def test_tampered_uri_or_method_fails_verification() -> None:
    headers = _headers()
    with pytest.raises(SignatureError):
        _check(headers, uri="/_matrix/federation/v1/send/2?x=%20y")
    with pytest.raises(SignatureError):
        _check(headers, method="POST")


def test_signature_by_another_key_fails_verification() -> None:
    with pytest.raises(SignatureError):
        _check(_headers(key=new_signing_key()))


@pytest.mark.parametrize(
    "template",
    [
        'X-Matrix origin="{o}",destination="{d}",key="{k}",sig="{s}"',
        'X-Matrix origin="{o}" , destination="{d}",\tkey="{k}" ,sig="{s}"',
        "X-Matrix origin={o},destination={d},key={k},sig={s}",
        'x-matrix   ORIGIN="{o}",Key={k},SIG="{s}",Destination="{d}"',
        'X-Matrix sig="{s}",key="{k}",origin="{o}",destination="{d}",extra="ignored, really"',
        'X-Matrix origin="{o}",destination="{d}",key="{k}",sig="{s}",future=token',
    ],
)
def test_header_parsing_variants(template: str) -> None:
    [header] = _headers()
    sig = parse_authorization_header(header).signature
    variant = template.format(o=ORIGIN, d=DEST, k=KEY.key_id, s=sig)
    assert _check([variant]) == ORIGIN


def test_backslash_escapes_in_quoted_values_are_undone() -> None:
    creds = parse_authorization_header(r'X-Matrix origin="a\.example",key="ed25519:\k",sig="s\"x"')
    assert (creds.origin, creds.key_id, creds.signature) == ("a.example", "ed25519:k", 's"x')


def test_multiple_headers_each_add_a_signature() -> None:
    second = new_signing_key()
    headers = [*_headers(), "Bearer not-for-us", *_headers(key=second)]
    origin, signed = signed_request_from_headers(
        headers, method="PUT", uri="/_matrix/federation/v1/send/1?x=%20y", our_server_name=DEST
    )
    assert set(signed["signatures"][origin]) == {KEY.key_id, second.key_id}
    verify_json_signature(signed, origin, second.key_id, second.key.verify_key)


def test_multiple_headers_with_different_origins_are_401() -> None:
    headers = [*_headers(), *_headers(origin="other.example")]
    with pytest.raises(Unauthorized) as exc:
        _check(headers)
    assert exc.value.status == 401


def test_no_x_matrix_header_is_401() -> None:
    for headers in ([], ["Bearer abc"]):
        with pytest.raises(Unauthorized) as exc:
            _check(headers)
        assert exc.value.status == 401
        assert exc.value.errcode == "M_UNAUTHORIZED"


@pytest.mark.parametrize(
    "header",
    [
        "X-Matrix",
        'X-Matrix origin="o.example",key="ed25519:k"',  # no sig
        'X-Matrix origin="o.example",key="ed25519:k",sig="unterminated',
        'X-Matrix origin="o.example" key="ed25519:k" sig="s"',  # no commas
        'X-Matrix origin="not a server name",key="ed25519:k",sig="s"',
        'X-Matrix origin="o.example",origin="p.example",key="ed25519:k",sig="s"',
        'X-Matrix origin="o.example",key="ed25519:k",sig="s",',
        'X-Matrix =x,origin="o.example",key="ed25519:k",sig="s"',
    ],
)
def test_malformed_header_is_400_unauthorized(header: str) -> None:
    with pytest.raises(MalformedAuthorization):
        parse_authorization_header(header)
    with pytest.raises(Unauthorized) as exc:
        _check([header])
    assert exc.value.status == 400
    assert exc.value.errcode == "M_UNAUTHORIZED"
