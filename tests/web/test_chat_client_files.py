"""How the relay serves the chat client's files (relay/web/chat_client.py): content types,
caching, precompressed bodies, the CSP, and nothing outside the build's index; against a
small build made here, in process, and against a real relay beside its API."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import httpx
import pytest

from relay.runtime.http import make_app
from relay.web.chat_client import IMMUTABLE, PAGE_CSP, ChatClient
from tests.integration.conftest import RelayProcess

INDEX = b"<!DOCTYPE html><title>Chat</title>" + b"<!-- padding -->" * 20


def _build(root: Path) -> Path:
    build = root / "chat_client_build"
    (build / "assets").mkdir(parents=True)
    (build / "index.html").write_bytes(INDEX)
    (build / "index.html.gz").write_bytes(gzip.compress(INDEX))
    (build / "sw.js").write_bytes(b"self.addEventListener('fetch', () => {});")
    (build / "assets" / "main-ab12.js").write_bytes(b"console.log('chat');" * 10)
    (build / "assets" / "main-ab12.js.gz").write_bytes(gzip.compress(b"console.log('chat');" * 10))
    (build / "assets" / "olm-cd34.wasm").write_bytes(b"\0asm\1\0\0\0")
    (build / "assets" / "Inter-ef56.woff2").write_bytes(b"wOF2")
    (build / "assets" / "logo-0a1b.svg").write_bytes(b"<svg/>")
    (build / "assets" / "notes.md").write_bytes(b"not a servable type")
    (root / "secret.toml").write_bytes(b"signing_key = 1")
    return build


def _client(build: Path) -> httpx.AsyncClient:
    app = make_app(ChatClient(build).routes())
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kit")


@pytest.fixture
def build(tmp_path: Path) -> Path:
    return _build(tmp_path)


@pytest.mark.parametrize(
    ("path", "content_type", "cache"),
    [
        ("/", "text/html; charset=utf-8", "no-cache"),
        ("/index.html", "text/html; charset=utf-8", "no-cache"),
        ("/sw.js", "text/javascript; charset=utf-8", "no-cache"),
        ("/assets/main-ab12.js", "text/javascript; charset=utf-8", IMMUTABLE),
        ("/assets/olm-cd34.wasm", "application/wasm", IMMUTABLE),
        ("/assets/Inter-ef56.woff2", "font/woff2", IMMUTABLE),
        ("/assets/logo-0a1b.svg", "image/svg+xml", IMMUTABLE),
    ],
)
async def test_each_file_has_its_type_and_caching(
    build: Path, path: str, content_type: str, cache: str
) -> None:
    async with _client(build) as client:
        response = await client.get(path, headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["cache-control"] == cache
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "content-encoding" not in response.headers
    is_page = content_type.startswith("text/html")
    assert response.headers.get("content-security-policy") == (PAGE_CSP if is_page else None)


def test_the_page_policy_allows_nothing_but_this_origin() -> None:
    directives = dict(d.split(" ", 1) for d in PAGE_CSP.split("; "))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self' 'wasm-unsafe-eval'"
    assert directives["connect-src"] == "'self'"
    assert "unsafe-inline" not in directives["script-src"] + directives["style-src"]
    for sources in directives.values():
        assert "http" not in sources and "*" not in sources


async def test_a_browser_that_takes_gzip_gets_the_precompressed_twin(build: Path) -> None:
    async with _client(build) as client:
        zipped = await client.get("/assets/main-ab12.js", headers={"Accept-Encoding": "gzip, br"})
        plain = await client.get("/assets/main-ab12.js", headers={"Accept-Encoding": "identity"})
        refused = await client.get("/assets/main-ab12.js", headers={"Accept-Encoding": "gzip;q=0"})
        no_twin = await client.get("/assets/olm-cd34.wasm", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == plain.content  # httpx decoded it
    assert zipped.headers["vary"].startswith("Accept-Encoding")
    assert zipped.headers["etag"] != plain.headers["etag"]
    assert "content-encoding" not in refused.headers
    assert "content-encoding" not in no_twin.headers


async def test_a_known_etag_is_answered_304(build: Path) -> None:
    async with _client(build) as client:
        first = await client.get("/", headers={"Accept-Encoding": "gzip"})
        again = await client.get(
            "/", headers={"Accept-Encoding": "gzip", "If-None-Match": first.headers["etag"]}
        )
        other = await client.get("/", headers={"If-None-Match": '"something-else"'})
    assert again.status_code == 304 and again.content == b""
    assert other.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/assets/missing-0000.js",
        "/assets/notes.md",
        "/assets/..%2F..%2Fsecret.toml",
        "/assets/%2e%2e/%2e%2e/secret.toml",
        "/secret.toml",
        "/assets/main-ab12.js.gz",
        "/index.html.gz",
    ],
)
async def test_nothing_outside_the_index_is_served(build: Path, path: str) -> None:
    async with _client(build) as client:
        response = await client.get(path)
    assert response.status_code == 404
    assert response.json()["errcode"] == "M_UNRECOGNIZED"


async def test_an_unbuilt_client_says_how_to_build_it(tmp_path: Path) -> None:
    async with _client(tmp_path / "nothing") as client:
        page = await client.get("/")
        asset = await client.get("/assets/main-ab12.js")
    assert page.status_code == 404
    assert "make webclient" in page.text
    assert asset.status_code == 404


async def test_a_rebuild_while_running_is_served(build: Path) -> None:
    async with _client(build) as client:
        assert (await client.get("/assets/main-ff99.js")).status_code == 404
        (build / "assets" / "main-ff99.js").write_bytes(b"// rebuilt")
        index = build / "index.html"
        index.write_bytes(INDEX + b"<!-- rebuilt -->")
        stat = index.stat()
        os.utime(index, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        assert (await client.get("/assets/main-ff99.js")).text == "// rebuilt"


def test_the_relay_serves_the_client_beside_its_api(web_relay: RelayProcess) -> None:
    page = httpx.get(web_relay.client_url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    versions = httpx.get(web_relay.client_url + "/_matrix/client/versions")
    assert versions.status_code == 200 and "versions" in versions.json()
    unknown = httpx.get(web_relay.client_url + "/_matrix/client/v3/nonsense")
    assert unknown.status_code == 404 and unknown.json()["errcode"] == "M_UNRECOGNIZED"
    # What every visit re-asks (no-cache) stays tiny; the rest is cached as immutable.
    for path in ("/", "/sw.js"):
        response = httpx.get(web_relay.client_url + path, headers={"Accept-Encoding": "gzip"})
        assert response.headers["cache-control"] == "no-cache"
        assert int(response.headers["content-length"]) < 5_000
