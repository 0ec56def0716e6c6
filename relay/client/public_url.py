"""The client API's base URL as handed to clients (`/login`'s `well_known`,
`/.well-known/matrix/client`): the one place it is decided.

`listeners.public_baseurl` when set (behind a TLS proxy the request's own scheme is plain
http). Otherwise the request's scheme and `Host`; `X-Forwarded-Proto`/`X-Forwarded-Host`
are believed only from the addresses in `listeners.trusted_proxies`, so a client cannot
make the relay hand others a URL of its choosing.
"""

from __future__ import annotations

from starlette.requests import Request

from relay.config import Config

_SCHEMES = ("http", "https")


def client_base_url(request: Request, config: Config) -> str:
    """The base URL clients should use, ending in "/"."""
    if config.public_baseurl:
        return config.public_baseurl
    scheme, host = request.url.scheme, request.headers.get("host") or request.url.netloc
    peer = request.client.host if request.client else ""
    if peer in config.trusted_proxies:
        forwarded_proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip()
        forwarded_host = request.headers.get("x-forwarded-host", "").split(",")[0].strip()
        if forwarded_proto in _SCHEMES:
            scheme = forwarded_proto
        if forwarded_host:
            host = forwarded_host
    return f"{scheme}://{host}/"
