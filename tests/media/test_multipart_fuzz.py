"""Hypothesis against relay/media/multipart.py: whatever a peer sends, however it is cut
into chunks, the reader gives back exactly the file it was sent, or a `MultipartError`;
nothing else is raised and what it buffers stays bounded."""

from __future__ import annotations

import itertools
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.media.multipart import (
    MAX_HEAD_BYTES,
    MultipartError,
    MultipartReader,
    render_head,
    render_tail,
)

BOUNDARY = "b0undary"
json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
metadata = st.dictionaries(
    st.text(max_size=10), st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4))
)
# File bytes rich in near-delimiters, so the reader's look-behind is exercised.
file_bytes = st.lists(
    st.sampled_from([b"\r\n", b"--", BOUNDARY.encode(), b"\r\n--b0und", b"x", b"\x00\xff"])
    | st.binary(max_size=40),
    max_size=40,
).map(b"".join)


def _chunks(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(body) + 1) for c in cuts} | {0, len(body)})
    return [body[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")), deadline=None)
@given(meta=metadata, data=file_bytes, cuts=st.lists(st.integers(0, 10_000), max_size=30))
def test_any_file_round_trips_however_it_is_chunked(
    meta: dict, data: bytes, cuts: list[int]
) -> None:
    if (b"\r\n--" + BOUNDARY.encode()) in b"\r\n" + data:
        return  # a file holding the delimiter itself cannot be framed (RFC 2046 §5.1.1)
    body = render_head(BOUNDARY, {"Content-Type": "application/octet-stream"}, meta)
    body += data + render_tail(BOUNDARY)
    reader = MultipartReader(BOUNDARY)
    out = b"".join(reader.feed(chunk) for chunk in _chunks(body, cuts))
    reader.finish()
    assert out == data
    assert reader.metadata == meta
    assert reader.headers == {"content-type": "application/octet-stream"}


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "500")), deadline=None)
@given(
    body=st.lists(
        st.sampled_from(
            [b"--" + BOUNDARY.encode(), b"\r\n", b"\r\n\r\n", b"{}", b"Content-Type: x", b":"]
        )
        | st.binary(max_size=64),
        max_size=60,
    ).map(b"".join),
    cuts=st.lists(st.integers(0, 10_000), max_size=20),
)
def test_garbage_is_a_multipart_error_or_nothing_and_stays_bounded(
    body: bytes, cuts: list[int]
) -> None:
    reader = MultipartReader(BOUNDARY)
    try:
        for chunk in _chunks(body, cuts):
            reader.feed(chunk)
            assert len(reader._buffer) <= MAX_HEAD_BYTES + len(chunk)
        reader.finish()
    except MultipartError:
        pass
