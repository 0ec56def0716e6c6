"""The federation media body (multipart/mixed): what we send is what we read back, however
the bytes are split, and a peer's Location part is seen."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.media.multipart import (
    MultipartError,
    MultipartReader,
    boundary_of,
    render_head,
    render_tail,
)
from relay.media.repository import MediaFile
from relay.media.responses import multipart_response


def read_all(body: bytes, boundary: str, step: int) -> tuple[bytes, MultipartReader]:
    reader = MultipartReader(boundary)
    out = b""
    for i in range(0, len(body), step):
        out += reader.feed(body[i : i + step])
    reader.finish()
    return out, reader


@pytest.mark.parametrize("step", [1, 3, 7, 64, 100_000])
def test_round_trip_whatever_the_chunking(step: int) -> None:
    boundary = "6d1f0c"
    data = b"\r\n--6d1f0" + bytes(range(256)) * 20 + b"\r\n--"  # near-delimiters inside
    body = (
        render_head(boundary, {"Content-Type": "image/png", "Content-Disposition": "inline"})
        + data
        + render_tail(boundary)
    )
    out, reader = read_all(body, boundary, step)
    assert out == data
    assert reader.metadata == {}
    assert reader.headers == {"content-type": "image/png", "content-disposition": "inline"}


def test_location_part_has_no_bytes() -> None:
    body = (
        b"--b\r\nContent-Type: application/json\r\n\r\n{}\r\n"
        b"--b\r\nLocation: https://cdn.example/x\r\n\r\n\r\n--b--\r\n"
    )
    out, reader = read_all(body, "b", 5)
    assert out == b""
    assert reader.headers == {"location": "https://cdn.example/x"}


def test_body_cut_before_the_closing_delimiter_is_an_error() -> None:
    body = render_head("b", {"Content-Type": "text/plain"}) + b"half a fi"
    reader = MultipartReader("b")
    reader.feed(body)
    with pytest.raises(MultipartError):
        reader.finish()


def test_boundary_of_content_type() -> None:
    assert boundary_of('multipart/mixed; boundary="abc"') == "abc"
    assert boundary_of("multipart/mixed;boundary=xyz; charset=x") == "xyz"
    with pytest.raises(MultipartError):
        boundary_of("application/json")
    with pytest.raises(MultipartError):
        boundary_of("multipart/mixed")


@pytest.mark.parametrize(
    "metadata",
    [b"[" * 3000 + b"]" * 3000, b'{"a": 1, "a": 2}', b"\xef\xbb\xbf{}", b"NaN", b"[1]"],
    ids=["deep", "duplicate key", "bom", "nan", "not an object"],
)
def test_metadata_part_is_parsed_strictly(metadata: bytes) -> None:
    """A peer's JSON part goes through the one strict parser: a body nested past the
    recursion limit is a MultipartError like any bad JSON, never a RecursionError."""
    body = b"--b\r\nContent-Type: application/json\r\n\r\n" + metadata + b"\r\n--b\r\n"
    with pytest.raises(MultipartError):
        MultipartReader("b").feed(body)


def test_federation_multipart_response_is_nosniff(tmp_path: Path) -> None:
    """The federation media answer (download and thumbnail alike) carries the same
    safety headers as the client's file."""
    path = tmp_path / "blob"
    path.write_bytes(b"<html>")
    response = multipart_response(MediaFile(path, "text/html", "a.html", 6))
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers["content-security-policy"]
