"""The chat client's files, served at `/` on the client listener.

The files are built by `make` (web/build.mjs) into `chat_client_build/` beside this module:
`index.html` and `sw.js` (the service worker that adds the access token to authenticated
media requests) keep their names and are revalidated on every load (`no-cache` + ETag); every
file under `assets/` has a hash of its bytes in its name and is cached for a year as
immutable. A text file's `.gz` twin, made at build time, is sent to a browser that accepts
gzip (nothing is compressed per request). Only files of the build's index are served: a request
names an entry of that index, never a path on disk.

The pages run under a Content-Security-Policy that allows nothing but this origin:
`'wasm-unsafe-eval'` lets olm's WebAssembly compile; `style-src-attr 'unsafe-inline'` lets
Hydrogen size images and avatars with style attributes (no inline script is ever allowed).
When the client was not built, `/` says how to build it (404), and the API is unaffected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trio
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from relay.errors import Unrecognized

BUILD_DIR = Path(__file__).resolve().parent / "chat_client_build"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".wasm": "application/wasm",
    ".svg": "image/svg+xml",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".png": "image/png",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}

PAGE_CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "style-src 'self'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' blob: data:",
        "media-src 'self' blob:",
        "font-src 'self'",
        "connect-src 'self'",
        "worker-src 'self'",
        "frame-src 'self'",
        "manifest-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "object-src 'none'",
        "frame-ancestors 'self'",
    ]
)
REVALIDATE = "no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"
NOT_BUILT = (
    "The web chat client is not built on this relay.\n"
    "Build it with `make webclient` (or any `make` target that starts the relay).\n"
)


@dataclass(frozen=True)
class StaticFile:
    path: Path
    content_type: str
    cache_control: str
    etag: str
    #: The file's gzip twin, when the build made one.
    gzipped: Path | None


def index_build(build_dir: Path = BUILD_DIR) -> dict[str, StaticFile]:
    """URL path -> file, for every servable file of the build (empty when not built)."""
    files: dict[str, StaticFile] = {}
    if not chat_client_built(build_dir):
        return files
    candidates = [build_dir / "index.html", build_dir / "sw.js"]
    assets = build_dir / "assets"
    if assets.is_dir():
        candidates += sorted(assets.iterdir())
    for path in candidates:
        content_type = CONTENT_TYPES.get(path.suffix)
        if content_type is None or not path.is_file():
            continue
        stat = path.stat()
        gzipped = path.with_name(path.name + ".gz")
        url = "/" + path.relative_to(build_dir).as_posix()
        files[url] = StaticFile(
            path=path,
            content_type=content_type,
            cache_control=IMMUTABLE if url.startswith("/assets/") else REVALIDATE,
            etag=f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"',
            gzipped=gzipped if gzipped.is_file() else None,
        )
    return files


class ChatClient:
    """The routes that serve the build's files. A rebuild while the relay runs (`make
    webclient`) is picked up: the index is made again when index.html changed."""

    def __init__(self, build_dir: Path = BUILD_DIR) -> None:
        self.build_dir = build_dir
        self._built_at = self._index_mtime()
        self._files = index_build(build_dir)

    def _index_mtime(self) -> int | None:
        try:
            return (self.build_dir / "index.html").stat().st_mtime_ns
        except OSError:
            return None

    @property
    def files(self) -> dict[str, StaticFile]:
        built_at = self._index_mtime()
        if built_at != self._built_at:
            self._built_at, self._files = built_at, index_build(self.build_dir)
        return self._files

    def routes(self) -> list[Route]:
        return [
            Route("/", self.index, methods=["GET"]),
            Route("/index.html", self.index, methods=["GET"]),
            Route("/sw.js", self.service_worker, methods=["GET"]),
            Route("/assets/{name}", self.asset, methods=["GET"]),
        ]

    async def index(self, request: Request) -> Response:
        page = self.files.get("/index.html")
        if page is None:
            return PlainTextResponse(NOT_BUILT, status_code=404, headers=_common_headers())
        return await self._send(request, page)

    async def service_worker(self, request: Request) -> Response:
        return await self._send(request, self._file("/sw.js"))

    async def asset(self, request: Request) -> Response:
        return await self._send(request, self._file("/assets/" + request.path_params["name"]))

    def _file(self, url: str) -> StaticFile:
        found = self.files.get(url)
        if found is None:
            raise Unrecognized("Unrecognized request")
        return found

    async def _send(self, request: Request, file: StaticFile) -> Response:
        headers = {
            **_common_headers(),
            "Cache-Control": file.cache_control,
            "ETag": file.etag,
            "Vary": "Accept-Encoding",
        }
        if file.content_type.startswith("text/html"):
            headers["Content-Security-Policy"] = PAGE_CSP
        path = file.path
        if file.gzipped is not None and _accepts_gzip(request.headers.get("accept-encoding", "")):
            # Each representation has its own strong ETag.
            path = file.gzipped
            headers["Content-Encoding"] = "gzip"
            headers["ETag"] = file.etag[:-1] + '-gzip"'
        if _etag_matches(request.headers.get("if-none-match", ""), headers["ETag"]):
            headers.pop("Content-Encoding", None)
            return Response(status_code=304, headers=headers)
        body = await trio.to_thread.run_sync(path.read_bytes)
        return Response(body, media_type=file.content_type, headers=headers)


def _common_headers() -> dict[str, str]:
    return {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _etag_matches(if_none_match: str, etag: str) -> bool:
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag in tags or "*" in tags


def _accepts_gzip(accept_encoding: str) -> bool:
    """Whether `gzip` is among the codings, not refused with q=0."""
    for part in accept_encoding.lower().split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip() != "gzip":
            continue
        q = params.strip().removeprefix("q=")
        try:
            return float(q) > 0 if params.strip().startswith("q=") else True
        except ValueError:
            return False
    return False


def chat_client_built(build_dir: Path = BUILD_DIR) -> bool:
    return (build_dir / "index.html").is_file()
