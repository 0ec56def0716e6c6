"""One POST to a push gateway (`/_matrix/push/v1/notify`), through the destination policy.

The URL came from a user's `/pushers/set`: it is hostile. Rules kept:

- Every connection goes through relay/federation/destinations.py's `guarded_client`, so
  loopback, private, link-local and reserved addresses and the relay's own listeners are
  refused, and nothing is sent there. The operator's `push.allowed_gateways` are trusted
  routes: they may be reached whatever their address, over plain http too. Any other
  gateway must be https (`check_url`).
- Bounded: one request at a time per pusher, `TIMEOUT_S` for the whole exchange, an
  answer read up to `MAX_ANSWER_BYTES`, no redirects followed.
- Outcomes are values (`Pushed(rejected)`, `Retry(why)`, `Dropped(why)`): the delivery
  retries an unreachable gateway, a 5xx or 429 with backoff; a refused destination or any
  other answer drops that notification (retrying cannot change it).

Spec: https://spec.matrix.org/v1.16/push-gateway-api/#post_matrixpushv1notify
"""

from __future__ import annotations

import json
import logging
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from relay.config import Config
from relay.federation.destinations import AddressRefused, DestinationPolicy, guarded_client

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

TIMEOUT_S = 15.0
CONNECT_TIMEOUT_S = 5.0
MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Pushed:
    """The gateway took the notification; the pushkeys it says are no longer valid."""

    rejected: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Retry:
    """Unreachable or overloaded: try again later."""

    why: str


@dataclass(frozen=True, slots=True)
class Dropped:
    """Refused by our policy or by the gateway: retrying will not help."""

    why: str


Outcome = Pushed | Retry | Dropped


def gateway_policy(config: Config) -> DestinationPolicy:
    """The destination policy of push deliveries: the federation rules, with the
    operator's allowed gateways as trusted routes."""
    return DestinationPolicy(
        own_listeners=(config.client_listen, config.federation_listen),
        allowed_ranges=config.ip_range_allowlist,
        trusted_urls=config.push_allowed_gateways,
    )


def _rejected(answer: Any) -> tuple[str, ...]:
    rejected = answer.get("rejected") if isinstance(answer, dict) else None
    if not isinstance(rejected, list):
        return ()
    return tuple(r for r in rejected if isinstance(r, str))


def _refusal(exc: BaseException) -> AddressRefused | None:
    """The policy's refusal behind `exc` (httpx may wrap it), if it is one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, AddressRefused):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class PushGateways:
    """The HTTP client that speaks to push gateways (closed by `aclose`)."""

    def __init__(self, policy: DestinationPolicy, *, verify: ssl.SSLContext | bool = True) -> None:
        self.policy = policy
        self.verify = verify
        self._http: httpx.AsyncClient | None = None
        self.pushed = 0
        self.retried = 0
        self.dropped = 0

    def statistics(self) -> dict[str, int]:
        return {"pushed": self.pushed, "retried": self.retried, "dropped": self.dropped}

    def _client(self) -> httpx.AsyncClient:
        import httpx

        if self._http is None:
            self._http = guarded_client(
                self.policy,
                verify=self.verify,
                timeout=httpx.Timeout(TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
                headers={"User-Agent": "edge-relay push", "Accept-Encoding": "identity"},
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def notify(self, url: str, notification: dict[str, Any]) -> Outcome:
        """POST `{"notification": ...}` to the gateway at `url`."""
        outcome = await self._notify(url, notification)
        if isinstance(outcome, Pushed):
            self.pushed += 1
        elif isinstance(outcome, Retry):
            self.retried += 1
        else:
            self.dropped += 1
            log.warning("push to %s dropped: %s", url, outcome.why)
        return outcome

    async def _notify(self, url: str, notification: dict[str, Any]) -> Outcome:
        import httpx

        try:
            target = httpx.URL(url)
            self.policy.check_url(target)
        except AddressRefused as exc:
            return Dropped(str(exc))
        except (httpx.InvalidURL, ValueError) as exc:
            return Dropped(f"bad gateway URL: {exc}")
        body = json.dumps({"notification": notification}, ensure_ascii=False).encode()
        try:
            with trio.fail_after(TIMEOUT_S):
                async with self._client().stream(
                    "POST", target, content=body, headers={"Content-Type": "application/json"}
                ) as response:
                    answer = bytearray()
                    async for chunk in response.aiter_raw():
                        answer += chunk
                        if len(answer) > MAX_ANSWER_BYTES:
                            return Dropped("the gateway's answer is too large")
        except (httpx.HTTPError, OSError, trio.TooSlowError) as exc:
            refused = _refusal(exc)
            if refused is not None:
                return Dropped(str(refused))
            return Retry(f"{type(exc).__name__}: {exc}")
        status = response.status_code
        if status >= 500 or status == 429:
            return Retry(f"the gateway answered {status}")
        if status != 200:
            return Dropped(f"the gateway answered {status}")
        try:
            parsed = json.loads(answer)
        except ValueError:
            parsed = None
        return Pushed(_rejected(parsed))
