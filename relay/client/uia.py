"""User-interactive authentication (UIA): in-memory sessions of flows and completed stages.

Rules kept (https://spec.matrix.org/v1.16/client-server-api/#user-interactive-authentication-api):

- A request without `auth` never succeeds: it gets 401 with `{flows, params, session,
  completed}` and a new session. `m.login.dummy` is a stage like any other.
- A request with `auth` but no `auth.session` starts a new session and attempts the
  stage at once (matrix-nio sends `{"type": "m.login.dummy"}` on its first request).
- A failed stage answers the same 401 body plus `errcode`/`error`; a passed stage is
  added to `completed` and is never re-checked. Once every stage of one flow is
  completed, `authenticate` returns the session and the caller performs the request,
  then calls `finish` (a session authorises one operation, once).
- A session is bound to one operation (e.g. `"register"`, `"delete_devices:[...]"`) and
  one user; presenting it elsewhere is a 400, as an unknown session is.
- Sessions live in memory for `ttl_s`: a restart forgets them and clients start over.
  An expired session is handed to `on_expire` (registration gives back a reserved
  token use there).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from relay.accounts import Accounts, user_id_for
from relay.errors import (
    BadJson,
    Forbidden,
    LimitExceeded,
    MatrixError,
    MissingParam,
    Unknown,
    Unrecognized,
)

if TYPE_CHECKING:
    from relay.services import Services

#: The stage by which a logged-in user proves again that they are who they say.
PASSWORD_STAGE = "m.login.password"

#: (auth dict, session) -> None, raising a MatrixError when the stage fails.
StageCheck = Callable[[dict[str, Any], "UiaSession"], Awaitable[None]]

DEFAULT_TTL_S = 15 * 60
MAX_SESSIONS = 10_000


@dataclass
class UiaSession:
    session_id: str
    operation: str
    user_id: str | None
    flows: list[list[str]]
    params: dict[str, Any]
    created: float
    completed: list[str] = field(default_factory=list)
    #: What stages recorded (e.g. the reserved registration token).
    data: dict[str, Any] = field(default_factory=dict)
    #: Request parameters remembered across the dance (later requests may omit them).
    request: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {
            "flows": [{"stages": list(stages)} for stages in self.flows],
            "params": self.params,
            "session": self.session_id,
            "completed": list(self.completed),
        }

    def done(self) -> bool:
        return any(set(stages) <= set(self.completed) for stages in self.flows)


class UiaRequired(MatrixError):
    """The 401 of the UIA API: the session's flows, with the stage's error if one failed."""

    status = 401
    errcode = "M_UNAUTHORIZED"

    def __init__(self, session: UiaSession, error: MatrixError | None = None) -> None:
        super().__init__(error.message if error else "Additional authentication required")
        self.session = session
        self.error = error

    def to_json(self) -> dict[str, Any]:
        body = self.session.body()
        if self.error is not None:
            body.update(self.error.to_json())
        return body


class UiaSessions:
    def __init__(
        self,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        on_expire: Callable[[UiaSession], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.on_expire = on_expire
        self.clock = clock
        self._sessions: dict[str, UiaSession] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    async def authenticate(
        self,
        auth: Any,
        *,
        operation: str,
        user_id: str | None,
        flows: list[list[str]],
        checks: dict[str, StageCheck],
        params: dict[str, Any] | None = None,
        request: dict[str, Any] | None = None,
    ) -> UiaSession:
        """The session once a flow is complete; raises UiaRequired (401) until then.

        `request` (parameters of this request, None values ignored) is merged into
        the session's remembered `request` before any stage runs.
        """
        await self.sweep()
        if auth is not None and not isinstance(auth, dict):
            raise BadJson("auth must be an object")
        sid = auth.get("session") if auth else None
        if sid is None:
            session = self._new(operation, user_id, flows, params or {})
        else:
            found = self._sessions.get(sid) if isinstance(sid, str) else None
            if found is None or found.operation != operation or found.user_id != user_id:
                raise Unknown("Unknown or expired UIA session", status=400)
            session = found
        session.request.update({k: v for k, v in (request or {}).items() if v is not None})
        stage = auth.get("type") if auth else None
        if auth and stage is not None and stage not in session.completed:
            if not any(stage in stages for stages in session.flows) or stage not in checks:
                raise UiaRequired(
                    session, Unrecognized(f"Auth type {stage!r} is not offered here", status=400)
                )
            try:
                await checks[stage](auth, session)
            except LimitExceeded:
                raise  # a 429, not a failed stage
            except MatrixError as exc:
                raise UiaRequired(session, exc) from None
            session.completed.append(stage)
        if auth is None or not session.done():
            raise UiaRequired(session)
        return session

    def finish(self, session: UiaSession) -> None:
        """The operation succeeded: the session can't be used again."""
        self._sessions.pop(session.session_id, None)

    async def sweep(self) -> None:
        """Drop expired sessions (handing each to `on_expire`)."""
        now = self.clock()
        expired = [s for s in self._sessions.values() if now - s.created > self.ttl_s]
        for session in expired:
            del self._sessions[session.session_id]
        if self.on_expire is not None:
            for session in expired:
                await self.on_expire(session)

    def _new(
        self, operation: str, user_id: str | None, flows: list[list[str]], params: dict[str, Any]
    ) -> UiaSession:
        if len(self._sessions) >= MAX_SESSIONS:
            raise Unknown("Too many authentication sessions in progress", status=503)
        session = UiaSession(
            session_id=secrets.token_urlsafe(18),
            operation=operation,
            user_id=user_id,
            flows=flows,
            params=params,
            created=self.clock(),
        )
        self._sessions[session.session_id] = session
        return session


def password_check(accounts: Accounts, user_id: str, limiter: Any = None) -> StageCheck:
    """The `m.login.password` stage for re-authenticating `user_id` (the requester)."""

    async def check(auth: dict[str, Any], session: UiaSession) -> None:
        identifier = auth.get("identifier")
        if identifier is None and isinstance(auth.get("user"), str):
            identifier = {"type": "m.id.user", "user": auth["user"]}  # deprecated form
        password = auth.get("password")
        if not isinstance(password, str):
            raise MissingParam("password is required")
        claimed = user_id
        if isinstance(identifier, dict):
            if identifier.get("type") != "m.id.user" or not isinstance(identifier.get("user"), str):
                raise Forbidden("Only m.id.user identifiers are supported")
            claimed = user_id_for(identifier["user"], accounts.server_name) or ""
        if limiter is not None:
            await limiter.check(f"uia:{user_id}")
        if claimed != user_id or not await accounts.check_password(user_id, password):
            raise Forbidden("Invalid username or password")

    return check


async def dummy_check(auth: dict[str, Any], session: UiaSession) -> None:
    """`m.login.dummy` always passes."""


async def reauthenticate(services: Services, user_id: str, auth: Any, operation: str) -> UiaSession:
    """The account operations' UIA (password change, device deletion, cross-signing keys,
    deactivation): `user_id` proves with their password that it is them, in a session of
    `services.uia_account` the caller finishes once the operation is done."""
    return await services.uia_account.authenticate(
        auth,
        operation=operation,
        user_id=user_id,
        flows=[[PASSWORD_STAGE]],
        checks={PASSWORD_STAGE: password_check(services.accounts, user_id, services.login_limiter)},
    )
