"""The headers media is served with, to clients and (inside multipart) to servers.

Rules kept here (spec, "Serving inline content"; as Synapse does):

- `Content-Disposition` is `inline` only for `INLINE_CONTENT_TYPES` (no HTML, no SVG),
  `attachment` for everything else; the filename goes as a plain token when it is one,
  else as RFC 5987 `filename*=utf-8''<percent-encoded>` (never a quoted-string).
- Text types without a charset are served as UTF-8.
- Every response carries the recommended `Content-Security-Policy`,
  `X-Content-Type-Options: nosniff` (a browser never guesses a type we did not serve),
  `Cross-Origin-Resource-Policy: cross-origin` and an `X-Robots-Tag` keeping media out
  of search engines: `SAFETY_HEADERS`, on the client's file and the server's multipart.
"""

from __future__ import annotations

from urllib.parse import quote

INLINE_CONTENT_TYPES = frozenset(
    {
        "text/css",
        "text/plain",
        "text/csv",
        "application/json",
        "application/ld+json",
        "image/jpeg",
        "image/gif",
        "image/png",
        "image/apng",
        "image/webp",
        "image/avif",
        "video/mp4",
        "video/webm",
        "video/ogg",
        "video/quicktime",
        "audio/mp4",
        "audio/webm",
        "audio/aac",
        "audio/mpeg",
        "audio/ogg",
        "audio/wave",
        "audio/wav",
        "audio/x-wav",
        "audio/x-pn-wav",
        "audio/flac",
        "audio/x-flac",
    }
)
TEXT_CONTENT_TYPES = frozenset(
    {
        "text/css",
        "text/csv",
        "text/html",
        "text/calendar",
        "text/plain",
        "text/javascript",
        "application/json",
        "application/ld+json",
        "application/rtf",
        "image/svg+xml",
        "text/xml",
    }
)
CONTENT_SECURITY_POLICY = (
    "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
    "style-src 'unsafe-inline'; media-src 'self'; object-src 'self';"
)
#: The headers every media response carries, whoever asks.
SAFETY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "cross-origin",
    "X-Robots-Tag": "noindex, nofollow, noarchive, noimageindex",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"
#: RFC 2616 separators; with controls, space and non-ASCII they rule out a plain token.
_SEPARATORS = frozenset('()<>@,;:\\"/[]?={}')


def _essence(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def content_type_header(content_type: str | None) -> str:
    value = content_type or DEFAULT_CONTENT_TYPE
    if _essence(value) in TEXT_CONTENT_TYPES and "charset" not in value.lower():
        return f"{value}; charset=UTF-8"
    return value


def _is_token(name: str) -> bool:
    return all(32 < ord(c) < 127 and c not in _SEPARATORS for c in name)


def content_disposition(content_type: str | None, filename: str | None) -> str:
    kind = "inline" if _essence(content_type or "") in INLINE_CONTENT_TYPES else "attachment"
    if not filename:
        return kind
    if _is_token(filename):
        return f"{kind}; filename={filename}"
    return f"{kind}; filename*=utf-8''{quote(filename.encode('utf-8'), safe='')}"


def media_headers(content_type: str | None, filename: str | None) -> dict[str, str]:
    """Headers for serving a file to a client (Content-Length is the response's own)."""
    return {
        "Content-Type": content_type_header(content_type),
        "Content-Disposition": content_disposition(content_type, filename),
        **SAFETY_HEADERS,
        "Cache-Control": "public,max-age=86400,s-maxage=86400",
    }


def filename_from_disposition(value: str | None) -> str | None:
    """The filename of a Content-Disposition header (`filename*=` preferred), if any."""
    if not value:
        return None
    from urllib.parse import unquote

    plain: str | None = None
    for param in value.split(";")[1:]:
        key, _, raw = param.strip().partition("=")
        key = key.strip().lower()
        raw = raw.strip()
        if key == "filename*":
            charset, _, rest = raw.partition("'")
            _, _, encoded = rest.partition("'")
            try:
                return unquote(encoded, encoding=charset or "utf-8", errors="strict") or None
            except (LookupError, UnicodeDecodeError):
                continue
        if key == "filename":
            plain = raw[1:-1].replace('\\"', '"') if raw.startswith('"') else raw
    return plain or None
