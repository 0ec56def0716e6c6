"""The content repository through the client API, in-process: upload, download,
async upload, limits, thumbnails, headers, auth."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from relay.media.blobs import BlobStore
from store import media as store_media
from tests.client.conftest import SERVER_NAME, ClientApi

UPLOAD = "/_matrix/media/v3/upload"
CREATE = "/_matrix/media/v1/create"
V1 = "/_matrix/client/v1/media"


def png(width: int, height: int, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def stored_files(api: ClientApi) -> list[str]:
    return sorted(sha for sha, _ in BlobStore(api.services.config.media_store).walk())


def temp_files(api: ClientApi) -> list[str]:
    tmp = api.services.config.media_store / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []


async def media_rows(api: ClientApi) -> list[dict[str, Any]]:
    def read(conn: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in conn.execute("SELECT * FROM media").fetchall()]

    return await api.services.database.read(read)


async def upload(api: ClientApi, headers: dict[str, str], data: bytes, **kw: Any) -> str:
    r = await api.http.post(
        UPLOAD,
        content=data,
        headers={**headers, "Content-Type": kw.pop("content_type", "text/plain")},
        params=kw,
    )
    assert r.status_code == 200, r.text
    uri = r.json()["content_uri"]
    assert uri.startswith(f"mxc://{SERVER_NAME}/")
    return uri.removeprefix("mxc://")


async def test_upload_then_download_returns_the_same_bytes_and_headers(api: ClientApi) -> None:
    alice = await api.login("alice")
    mxc = await upload(api, alice, b"sitrep: all quiet", filename="report.txt")
    r = await api.http.get(f"{V1}/download/{mxc}", headers=alice)
    assert r.status_code == 200
    assert r.content == b"sitrep: all quiet"
    assert r.headers["content-type"] == "text/plain; charset=UTF-8"
    assert r.headers["content-disposition"] == "inline; filename=report.txt"
    assert "sandbox" in r.headers["content-security-policy"]
    assert r.headers["cross-origin-resource-policy"] == "cross-origin"
    assert r.headers["content-length"] == str(len(b"sitrep: all quiet"))


async def test_download_with_file_name_overrides_and_encodes_it(api: ClientApi) -> None:
    alice = await api.login("alice")
    mxc = await upload(api, alice, b"<html>", content_type="text/html", filename="a.html")
    r = await api.http.get(f"{V1}/download/{mxc}/Карта лагеря.html", headers=alice)
    assert r.status_code == 200
    # HTML is never inline; a non-token name goes as RFC 5987 filename*.
    assert r.headers["content-disposition"] == (
        "attachment; filename*=utf-8''%D0%9A%D0%B0%D1%80%D1%82%D0%B0%20"
        "%D0%BB%D0%B0%D0%B3%D0%B5%D1%80%D1%8F.html"
    )


async def test_download_file_name_may_hold_an_encoded_slash(api: ClientApi) -> None:
    # matrix-js-sdk names encrypted attachments like this; Synapse matches its routes on
    # the raw path, so `%2F` stays inside the file-name segment (it was 404 M_UNRECOGNIZED).
    alice = await api.login("alice")
    mxc = await upload(api, alice, b"\x00ciphertext", content_type="application/octet-stream")
    r = await api.http.get(f"{V1}/download/{mxc}/mc%2Fdl%2Fimg.enc", headers=alice)
    assert r.status_code == 200, r.text
    assert r.content == b"\x00ciphertext"
    assert r.headers["content-disposition"] == "attachment; filename*=utf-8''mc%2Fdl%2Fimg.enc"
    # A real "/" is still a separator: no route has three file-name segments.
    r = await api.http.get(f"{V1}/download/{mxc}/mc/dl/img.enc", headers=alice)
    assert r.status_code == 404
    assert r.json()["errcode"] == "M_UNRECOGNIZED"


async def test_two_uploads_of_the_same_bytes_are_stored_once(api: ClientApi) -> None:
    alice = await api.login("alice")
    first = await upload(api, alice, b"same bytes")
    second = await upload(api, alice, b"same bytes")
    assert first != second
    assert len(stored_files(api)) == 1
    rows = await media_rows(api)
    assert len({row["sha256"] for row in rows}) == 1 and len(rows) == 2
    for mxc in (first, second):
        r = await api.http.get(f"{V1}/download/{mxc}", headers=alice)
        assert r.content == b"same bytes"


async def test_files_are_content_addressed_under_the_data_dir(api: ClientApi) -> None:
    import hashlib

    alice = await api.login("alice")
    await upload(api, alice, b"addressed")
    sha = hashlib.sha256(b"addressed").hexdigest()
    path = api.services.config.data_dir / "media" / sha[:2] / sha[2:4] / sha
    assert path.read_bytes() == b"addressed"


@pytest.mark.config({"media.max_upload_bytes": 1000})
async def test_over_limit_upload_is_413_and_leaves_nothing(api: ClientApi) -> None:
    alice = await api.login("alice")
    r = await api.http.post(UPLOAD, content=b"x" * 5000, headers=alice)
    assert r.status_code == 413
    assert r.json()["errcode"] == "M_TOO_LARGE"

    async def chunked():  # no Content-Length: the cap is found while streaming
        for _ in range(5):
            yield b"y" * 400

    r = await api.http.post(UPLOAD, content=chunked(), headers=alice)
    assert r.status_code == 413
    assert r.json()["errcode"] == "M_TOO_LARGE"
    assert stored_files(api) == [] and temp_files(api) == []
    assert await media_rows(api) == []
    r = await api.http.get(f"{V1}/config", headers=alice)
    assert r.json() == {"m.upload.size": 1000}


async def test_async_upload_create_then_put(api: ClientApi) -> None:
    alice = await api.login("alice")
    r = await api.http.post(CREATE, headers=alice)
    assert r.status_code == 200
    body = r.json()
    assert body["unused_expires_at"] > 0
    mxc = body["content_uri"].removeprefix("mxc://")
    # Not uploaded yet: a download waits timeout_ms, then 504.
    r = await api.http.get(f"{V1}/download/{mxc}", params={"timeout_ms": 0}, headers=alice)
    assert r.status_code == 504 and r.json()["errcode"] == "M_NOT_YET_UPLOADED"
    bob = await api.login("bob")
    r = await api.http.put(f"{UPLOAD}/{mxc}", content=b"hijack", headers=bob)
    assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN"
    r = await api.http.put(
        f"{UPLOAD}/{mxc}",
        content=b"late",
        headers={**alice, "Content-Type": "text/plain"},
        params={"filename": "late.txt"},
    )
    assert r.status_code == 200, r.text
    r = await api.http.put(f"{UPLOAD}/{mxc}", content=b"again", headers=alice)
    assert r.status_code == 409 and r.json()["errcode"] == "M_CANNOT_OVERWRITE_MEDIA"
    r = await api.http.get(f"{V1}/download/{mxc}", headers=alice)
    assert r.content == b"late"
    assert r.headers["content-disposition"] == "inline; filename=late.txt"


async def test_put_to_unknown_media_id_is_404(api: ClientApi) -> None:
    alice = await api.login("alice")
    r = await api.http.put(f"{UPLOAD}/{SERVER_NAME}/nosuchid", content=b"x", headers=alice)
    assert r.status_code == 404 and r.json()["errcode"] == "M_NOT_FOUND"


async def test_media_needs_an_access_token(api: ClientApi) -> None:
    alice = await api.login("alice")
    mxc = await upload(api, alice, b"private")
    for method, path in [
        ("GET", f"{V1}/download/{mxc}"),
        ("GET", f"{V1}/thumbnail/{mxc}?width=32&height=32"),
        ("GET", f"{V1}/config"),
        ("POST", UPLOAD),
        ("POST", CREATE),
    ]:
        r = await api.http.request(method, path)
        assert r.status_code == 401, path
        assert r.json()["errcode"] == "M_MISSING_TOKEN"


async def test_unknown_media_is_404(api: ClientApi) -> None:
    alice = await api.login("alice")
    for path in [
        f"{V1}/download/{SERVER_NAME}/doesnotexist",
        f"{V1}/download/{SERVER_NAME}/bad..id",
        f"{V1}/thumbnail/{SERVER_NAME}/doesnotexist?width=32&height=32",
    ]:
        r = await api.http.get(path, headers=alice)
        assert r.status_code == 404, path
        assert r.json()["errcode"] == "M_NOT_FOUND"


async def test_thumbnail_scale_keeps_aspect_and_crop_fills_the_box(api: ClientApi) -> None:
    alice = await api.login("alice")
    mxc = await upload(api, alice, png(1000, 500), content_type="image/png")
    r = await api.http.get(
        f"{V1}/thumbnail/{mxc}",
        params={"width": 320, "height": 240, "method": "scale"},
        headers=alice,
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size == (320, 160)
    r = await api.http.get(
        f"{V1}/thumbnail/{mxc}",
        params={"width": 96, "height": 96, "method": "crop"},
        headers=alice,
    )
    assert Image.open(io.BytesIO(r.content)).size == (96, 96)
    # A request between sizes is answered by the next size up (never smaller).
    r = await api.http.get(
        f"{V1}/thumbnail/{mxc}",
        params={"width": 50, "height": 50, "method": "crop"},
        headers=alice,
    )
    assert Image.open(io.BytesIO(r.content)).size == (96, 96)

    def thumbs(conn: Any) -> int:
        return conn.execute("SELECT COUNT(*) FROM media_thumbnails").fetchone()[0]

    assert await api.services.database.read(thumbs) == 2  # cached, one per size


async def test_thumbnail_never_upscales(api: ClientApi) -> None:
    alice = await api.login("alice")
    original = png(20, 10)
    mxc = await upload(api, alice, original, content_type="image/png")
    r = await api.http.get(
        f"{V1}/thumbnail/{mxc}",
        params={"width": 96, "height": 96, "method": "crop"},
        headers=alice,
    )
    assert r.status_code == 200
    assert r.content == original


async def test_thumbnail_of_a_non_image_is_404(api: ClientApi) -> None:
    alice = await api.login("alice")
    mxc = await upload(api, alice, b"not a picture", content_type="application/pdf")
    r = await api.http.get(
        f"{V1}/thumbnail/{mxc}", params={"width": 96, "height": 96}, headers=alice
    )
    assert r.status_code == 404 and r.json()["errcode"] == "M_NOT_FOUND"
    r = await api.http.get(f"{V1}/download/{mxc}", headers=alice)
    assert r.headers["content-disposition"] == "attachment"


async def test_preview_url_is_disabled(api: ClientApi) -> None:
    alice = await api.login("alice")
    r = await api.http.get(
        f"{V1}/preview_url", params={"url": "https://example.org"}, headers=alice
    )
    assert r.status_code == 404 and r.json()["errcode"] == "M_NOT_FOUND"


async def test_status_counts_media(api: ClientApi) -> None:
    alice = await api.login("alice")
    await upload(api, alice, b"one")
    stats = await api.services.database.read(store_media.statistics)
    assert stats["local_media"] == 1 and stats["local_bytes"] == 3


async def test_every_media_response_is_nosniff(api: ClientApi) -> None:
    """A browser must never sniff uploaded bytes into a type we did not serve (HTML in
    a "text/plain" upload): download, download with a file name, and thumbnail."""
    alice = await api.login("alice")
    text = await upload(api, alice, b"<script>alert(1)</script>", filename="a.txt")
    image = await upload(api, alice, png(64, 64), content_type="image/png")
    for path, params in [
        (f"{V1}/download/{text}", {}),
        (f"{V1}/download/{text}/b.txt", {}),
        (f"{V1}/thumbnail/{image}", {"width": 32, "height": 32, "method": "scale"}),
    ]:
        r = await api.http.get(path, params=params, headers=alice)
        assert r.status_code == 200, r.text
        assert r.headers["x-content-type-options"] == "nosniff", path
