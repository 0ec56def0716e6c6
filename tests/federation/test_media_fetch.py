"""Thumbnail first from a server without the federation media endpoints: its legacy
thumbnail endpoint is asked, and the original is never fetched for a thumbnail (on a slow
link the original is minutes of airtime). Requests counted on a fake network."""

from __future__ import annotations

from pathlib import Path

import httpx

from relay.config import ThumbnailSize
from relay.federation.media_fetch import FederationMedia
from relay.media.blobs import BlobStore, BlobWriter
from tests.federation.fakes import FakeNetwork, open_local

OLD = "old.example:8448"
UNRECOGNIZED = {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}
THUMB = b"\x89PNG small thumbnail"


def _old_server(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path.startswith("/_matrix/federation/v1/media/"):
        return httpx.Response(404, json=UNRECOGNIZED)
    if path.startswith("/_matrix/media/v3/thumbnail/"):
        return httpx.Response(200, content=THUMB, headers={"Content-Type": "image/png"})
    if path.startswith("/_matrix/media/v3/download/"):
        return httpx.Response(200, content=b"x" * 500_000, headers={"Content-Type": "image/png"})
    return httpx.Response(404, json={"errcode": "M_NOT_FOUND", "error": "no"})


async def test_a_thumbnail_from_an_old_server_comes_from_its_legacy_thumbnail_endpoint(
    tmp_path: Path,
) -> None:
    net = FakeNetwork()
    net.routes[OLD] = _old_server
    async with open_local(tmp_path, net) as local:
        media = FederationMedia(local.client)
        async with BlobWriter(BlobStore(tmp_path / "blobs"), 10**7) as writer:
            content_type = await media.thumbnail(
                OLD, "abc", ThumbnailSize(96, 96, "crop"), writer, timeout_ms=1000
            )
            assert content_type == "image/png"
            assert writer.size == len(THUMB)
    paths = [r.url.path.split("/")[2:5] for r in net.requests]
    assert [p for p in paths if "download" in p] == []  # never the original
    assert paths[-1] == ["media", "v3", "thumbnail"]
    legacy = net.requests[-1]
    assert legacy.url.params["width"] == "96" and legacy.url.params["method"] == "crop"
    assert legacy.url.params["allow_remote"] == "false"


async def test_an_old_server_without_any_thumbnail_leaves_it_to_the_original(
    tmp_path: Path,
) -> None:
    net = FakeNetwork()
    net.routes[OLD] = lambda r: httpx.Response(404, json=UNRECOGNIZED)
    async with open_local(tmp_path, net) as local:
        media = FederationMedia(local.client)
        async with BlobWriter(BlobStore(tmp_path / "blobs"), 10**7) as writer:
            content_type = await media.thumbnail(
                OLD, "abc", ThumbnailSize(96, 96, "crop"), writer, timeout_ms=1000
            )
    assert content_type is None  # the repository then makes one from the original
