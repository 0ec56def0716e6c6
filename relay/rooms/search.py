"""Server-side search (`POST /search`, category `room_events`): the request parsed into a
frozen value, the user's words into an FTS5 query, and the hits read as the user may see
them.

Rules kept (the spec, with Synapse 1.163.2 as the tie-breaker where it is silent):

- Only rooms the user is joined to are searched (Synapse's choice), narrowed by the
  filter's `rooms`/`not_rooms`; a `rooms` list also searches the rooms it upgraded from
  (their create events' `predecessor`), as Synapse does. Each hit is then judged as every
  read judges events: the history visibility rule (relay/rooms/visibility.py), the
  redaction rule (`RoomService.redacted_by_txn`: a redacted event is never found), the
  reader's `m.ignored_user_list` (non-state events of ignored users are left out), and
  the filter's `senders`/`types`/`contains_url`.
- The words: runs of letters, digits, `_` and `-`; `"a phrase"`; `-word` excludes;
  `or` between words is OR (binding looser than the implied AND, as websearch syntax
  does); Synapse's stop words (`the a you me and but`) are dropped. Each word reaches FTS5
  quoted, so nothing a user types is query syntax. No stemming or prefixes, as Synapse
  on SQLite. `highlights` are the words and phrases of the term (excluded ones too, as
  Synapse lists them).
- `rank`: the best hits by FTS5's bm25 (higher is closer; equals in the order they were
  stored, as Synapse's), from the best `RANK_WINDOW` matches, one page, no `next_batch`
  (as Synapse). `recent`: newest first by
  (origin_server_ts, stream_ordering), paged with `next_batch`, given when a page is
  full (as Synapse), or when `RECENT_ROUNDS` reads found too few visible hits to fill
  one (so a client can go on; Synapse stops there).
- `count` is the number of matches in the searched rooms before visibility (the spec's
  "approximate count"); a redacted event is no longer in the index, so not counted
  (Synapse still counts it).
- Bounded work: at most `MAX_LIMIT` results a page (the filter's `limit`, default 10),
  `MAX_CONTEXT` context events each side, a search term of at most `MAX_TERM_CHARS`
  characters and `MAX_WORDS` words, `RECENT_ROUNDS` index reads of twice the page.
- Errors as Synapse answers them where it answers 4xx (400 `M_UNKNOWN` for a missing
  category or search term, an unknown `order_by` or group key, a bad `next_batch`);
  where Synapse fails with a 500, a 404 or runs the search anyway (values of the wrong
  type, an unknown key, a malformed filter) we answer 400 `M_BAD_JSON` /
  `M_INVALID_PARAM` (tests/synapse/test_search_differential.py pins both).

Spec: https://spec.matrix.org/v1.16/client-server-api/#server-side-search (search.yaml)
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from relay.errors import BadJson, InvalidParam, Unknown
from relay.events.pdu import Pdu
from relay.rooms import filters
from relay.rooms.filters import EventFilter
from relay.rooms.reads import (
    EventView,
    Position,
    around_txn,
    decorate_txn,
    matches,
    state_txn,
)
from relay.rooms.search_index import KEYS
from relay.rooms.service import RoomService
from relay.rooms.visibility import Viewer, content_of, visible_txn
from store import Connection
from store import rooms as store_rooms
from store import search as store_search
from store import state as store_state

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
DEFAULT_CONTEXT = 5
MAX_CONTEXT = 20
MAX_TERM_CHARS = 512
MAX_WORDS = 32
#: `rank` looks at the best this many matches (Synapse's window).
RANK_WINDOW = 500
#: `recent` reads the index at most this many times a page (Synapse's bound).
RECENT_ROUNDS = 5
#: How far back the `predecessor` chain of a filter's room is followed.
MAX_PREDECESSORS = 10
STOP_WORDS = frozenset({"the", "a", "you", "me", "and", "but"})
GROUP_KEYS = ("room_id", "sender")

OrderBy = Literal["rank", "recent"]
#: Reads the user's ignored users in the search's snapshot (relay/sync/account_data.py).
IgnoredUsers = Callable[[Connection, str], frozenset[str]]


def _bad_query(message: str) -> Unknown:
    """Synapse's answer to a search it cannot run: 400 with no errcode of its own."""
    return Unknown(message, status=400)


# -- the words ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FtsQuery:
    #: The FTS5 MATCH expression.
    match: str
    highlights: tuple[str, ...]


_WORD = re.compile(r"[\w\-]+")


def _quoted(words: Iterable[str]) -> str:
    # Words hold only \w and '-': quoting makes each a literal string (a hyphenated
    # word becomes the phrase of its parts, as the tokenizer splits it).
    return '"' + " ".join(words).replace('"', '""') + '"'


def _searchable(word: str) -> bool:
    return any(c.isalnum() for c in word) and word.lower() not in STOP_WORDS


def fts_query(term: str) -> FtsQuery | None:
    """The FTS5 query for a user's search term; None when nothing is left to look for
    (only stop words, only exclusions)."""
    groups: list[tuple[list[str], list[str]]] = [([], [])]
    highlights: list[str] = []
    for index, part in enumerate(term.split('"')):
        words = _WORD.findall(part)
        if index % 2:  # inside quotes: one phrase
            phrase = [w for w in words if _searchable(w)]
            if phrase:
                groups[-1][0].append(_quoted(phrase))
                highlights.append(" ".join(phrase))
            continue
        for word in words:
            if word.lower() == "or":
                groups.append(([], []))
            elif word.startswith("-"):
                word = word.lstrip("-")
                if _searchable(word):
                    groups[-1][1].append(_quoted([word]))
                    highlights.append(word)  # as Synapse lists them
            elif _searchable(word):
                groups[-1][0].append(_quoted([word]))
                highlights.append(word)
    clauses = [
        "(" + " AND ".join(positive) + ")" + "".join(f" NOT {n}" for n in negative)
        for positive, negative in groups
        if positive
    ]
    if not clauses:
        return None
    return FtsQuery(" OR ".join(clauses), tuple(dict.fromkeys(highlights)))


# -- the request --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContextSpec:
    before_limit: int = DEFAULT_CONTEXT
    after_limit: int = DEFAULT_CONTEXT
    include_profile: bool = False


@dataclass(frozen=True, slots=True)
class RoomEventsQuery:
    search_term: str
    keys: tuple[str, ...] = KEYS
    event_filter: EventFilter = field(default_factory=EventFilter)
    order_by: OrderBy = "rank"
    include_state: bool = False
    group_by: tuple[str, ...] = ()
    context: ContextSpec | None = None

    @property
    def limit(self) -> int:
        limit = self.event_filter.limit
        return DEFAULT_LIMIT if limit is None else min(limit, MAX_LIMIT)


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadJson(f"{where} must be an object")
    return value


def _bool(obj: dict[str, Any], key: str, where: str) -> bool:
    value = obj.get(key, False)
    if not isinstance(value, bool):
        raise BadJson(f"{where}.{key} must be a boolean")
    return value


def _context_limit(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key, DEFAULT_CONTEXT)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadJson(f"event_context.{key} must be a non-negative integer")
    return min(value, MAX_CONTEXT)


def _context(value: Any) -> ContextSpec | None:
    if value is None:
        return None
    obj = _object(value, "event_context")
    return ContextSpec(
        _context_limit(obj, "before_limit"),
        _context_limit(obj, "after_limit"),
        _bool(obj, "include_profile", "event_context"),
    )


def _keys(value: Any) -> tuple[str, ...]:
    if value is None:
        return KEYS
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise BadJson("keys must be a list of strings")
    unknown = [k for k in value if k not in KEYS]
    if unknown:
        raise InvalidParam(f"keys may only be {', '.join(KEYS)}, not {unknown[0]!r}")
    return tuple(dict.fromkeys(value))


def _group_by(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    groupings = _object(value, "groupings")
    group_by = groupings.get("group_by", [])
    if not isinstance(group_by, list):
        raise BadJson("groupings.group_by must be a list")
    keys = []
    for group in group_by:
        if not isinstance(group, dict) or "key" not in group:
            raise _bad_query("Invalid search query")
        keys.append(group["key"])
    bad = [k for k in keys if k not in GROUP_KEYS]
    if bad:
        raise _bad_query(f"Invalid group by keys: {bad!r}")
    return tuple(dict.fromkeys(keys))


def parse_search_request(body: dict[str, Any]) -> RoomEventsQuery:
    """The `room_events` criteria of a `/search` body (the only category the spec has).

    Raises:
        Unknown (400): no `room_events` category or no `search_term`, an unknown
            `order_by` or group key (as Synapse answers).
        BadJson / InvalidParam: a value of the wrong type, an unknown key, a malformed
            filter, a search term too long.
    """
    categories = body.get("search_categories")
    if not isinstance(categories, dict) or not isinstance(categories.get("room_events"), dict):
        raise _bad_query("Invalid search query")
    criteria = categories["room_events"]
    term = criteria.get("search_term")
    if term is None:
        raise _bad_query("Invalid search query")
    if not isinstance(term, str):
        raise BadJson("search_term must be a string")
    if len(term) > MAX_TERM_CHARS:
        raise InvalidParam(f"search_term is longer than {MAX_TERM_CHARS} characters")
    if len(_WORD.findall(term)) > MAX_WORDS:
        raise InvalidParam(f"search_term has more than {MAX_WORDS} words")
    order_by = criteria.get("order_by", "rank")
    if order_by not in ("rank", "recent"):
        raise _bad_query(f"Invalid order by: {order_by!r}")
    return RoomEventsQuery(
        search_term=term,
        keys=_keys(criteria.get("keys")),
        event_filter=filters.parse_event_filter(criteria.get("filter"), "filter"),
        order_by="recent" if order_by == "recent" else "rank",
        include_state=_bool(criteria, "include_state", "room_events"),
        group_by=_group_by(criteria.get("groupings")),
        context=_context(criteria.get("event_context")),
    )


# -- next_batch ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Batch:
    """Where a `recent` page continues: below (origin_server_ts, stream_ordering), in
    every room (`group` "all") or in one (`group` "room_id", `group_key` the room)."""

    group: str
    group_key: str
    before: tuple[int, int] | None


def parse_batch(token: str) -> Batch:
    """A `next_batch` we handed out. Raises Unknown (400), as Synapse answers."""
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
        group, group_key, position = text.split("\n")
        ts, stream = position.split(",")
        batch = Batch(group, group_key, (int(ts), int(stream)))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _bad_query("Invalid batch") from None
    if group not in ("all", "room_id") or (group == "room_id") != bool(group_key):
        raise _bad_query("Invalid batch")
    return batch


def batch_token(group: str, group_key: str, before: tuple[int, int]) -> str:
    text = f"{group}\n{group_key}\n{before[0]},{before[1]}"
    return base64.urlsafe_b64encode(text.encode("ascii")).decode("ascii").rstrip("=")


# -- the answer ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResultContext:
    before: list[EventView]
    after: list[EventView]
    start: Position
    end: Position
    #: With `include_profile`: sender -> {displayname, avatar_url} as of the context.
    profile_info: dict[str, dict[str, Any]] | None


@dataclass(frozen=True, slots=True)
class SearchResult:
    rank: float
    event: EventView
    context: ResultContext | None


@dataclass(frozen=True, slots=True)
class SearchResults:
    count: int
    highlights: tuple[str, ...]
    results: list[SearchResult]
    #: With `include_state`: room -> its current state.
    state: dict[str, list[EventView]]
    #: group key -> group value -> {"results": [...], "order"?: ..., "next_batch"?: ...}
    groups: dict[str, dict[str, dict[str, Any]]]
    next_batch: str | None


EMPTY = SearchResults(0, (), [], {}, {}, None)


def _predecessors_txn(conn: Connection, rooms: RoomService, room_ids: Iterable[str]) -> set[str]:
    """The rooms `room_ids` were upgraded from (their create events' `predecessor`)."""
    found: set[str] = set()
    for room_id in room_ids:
        for _ in range(MAX_PREDECESSORS):
            create_id = store_state.get_current_state_event_id(conn, room_id, "m.room.create", "")
            predecessor = content_of(conn, rooms, create_id).get("predecessor")
            if not isinstance(predecessor, dict) or not isinstance(predecessor.get("room_id"), str):
                break
            room_id = predecessor["room_id"]
            if room_id in found:
                break
            found.add(room_id)
    return found


def _rooms_txn(
    conn: Connection, rooms: RoomService, user_id: str, query: RoomEventsQuery, batch: Batch | None
) -> tuple[list[str], EventFilter]:
    """The rooms to search, and the filter widened to the rooms a `rooms` list upgraded
    from (as Synapse's `with_room_ids`)."""
    event_filter = query.event_filter
    if event_filter.rooms:
        old = _predecessors_txn(conn, rooms, event_filter.rooms)
        event_filter = replace(event_filter, rooms=(*event_filter.rooms, *sorted(old)))
    joined = store_rooms.rooms_for_user(conn, user_id, "join")
    chosen = [r for r in joined if event_filter.allows_room(r)]
    if batch is not None and batch.group == "room_id":
        chosen = [r for r in chosen if r == batch.group_key]
    return chosen, event_filter


def _allowed_txn(
    conn: Connection,
    rooms: RoomService,
    user_id: str,
    hits: list[store_search.SearchHit],
    event_filter: EventFilter,
    ignored: frozenset[str],
) -> list[tuple[store_search.SearchHit, Pdu]]:
    """The hits the user may see and the filter lets through, in the hits' order."""
    found = rooms.get_pdus_txn(conn, [h.event_id for h in hits])
    candidates = [
        (hit, found[hit.event_id])
        for hit in hits
        if hit.event_id in found
        and matches(event_filter, found[hit.event_id])
        and not (found[hit.event_id].sender in ignored and not found[hit.event_id].is_state)
        and rooms.redacted_by_txn(conn, hit.event_id) is None
    ]
    visible: set[str] = set()
    for room_id in {hit.room_id for hit, _ in candidates}:
        pdus = [pdu for hit, pdu in candidates if hit.room_id == room_id]
        viewer = Viewer(user_id, room_id)
        visible.update(p.event_id for p in visible_txn(conn, rooms, viewer, pdus))
    return [(hit, pdu) for hit, pdu in candidates if pdu.event_id in visible]


def _context_txn(
    conn: Connection,
    rooms: RoomService,
    viewer: Viewer,
    device_id: str | None,
    pdu: Pdu,
    spec: ContextSpec,
    ignored: frozenset[str],
) -> ResultContext:
    before, after = around_txn(conn, rooms, viewer, pdu, spec.before_limit, spec.after_limit)

    def kept(pdus: list[Pdu]) -> list[Pdu]:
        return [p for p in pdus if p.is_state or p.sender not in ignored]

    before_pdus, after_pdus = kept(before.pdus), kept(after.pdus)
    profile_info = None
    if spec.include_profile:
        senders = {p.sender for p in [*before_pdus, pdu, *after_pdus]}
        last = after_pdus[-1] if after_pdus else pdu
        state = store_state.get_state_after(conn, last.event_id) or {}
        profile_info = {}
        for sender in sorted(senders):
            member_id = state.get(("m.room.member", sender))
            if member_id is None:
                continue
            content = content_of(conn, rooms, member_id)
            profile_info[sender] = {
                "displayname": content.get("displayname"),
                "avatar_url": content.get("avatar_url"),
            }
    return ResultContext(
        before=decorate_txn(conn, rooms, before_pdus, viewer.user_id, device_id, viewer=viewer),
        after=decorate_txn(conn, rooms, after_pdus, viewer.user_id, device_id, viewer=viewer),
        start=before.cursor,
        end=after.cursor,
        profile_info=profile_info,
    )


@dataclass(slots=True)
class _Page:
    allowed: list[tuple[store_search.SearchHit, Pdu]]
    #: recent: where the next page starts, when there is one.
    next_before: tuple[int, int] | None = None


def _rank_page_txn(
    conn: Connection,
    rooms: RoomService,
    user_id: str,
    query: RoomEventsQuery,
    fts: FtsQuery,
    room_ids: list[str],
    ignored: frozenset[str],
) -> _Page:
    hits = store_search.search_by_rank(conn, fts.match, room_ids, query.keys, RANK_WINDOW)
    allowed = _allowed_txn(conn, rooms, user_id, hits, query.event_filter, ignored)
    return _Page(allowed[: query.limit])


def _recent_page_txn(
    conn: Connection,
    rooms: RoomService,
    user_id: str,
    query: RoomEventsQuery,
    fts: FtsQuery,
    room_ids: list[str],
    ignored: frozenset[str],
    before: tuple[int, int] | None,
) -> _Page:
    limit = query.limit
    allowed: list[tuple[store_search.SearchHit, Pdu]] = []
    want = max(limit * 2, 1)
    for _ in range(RECENT_ROUNDS):
        if len(allowed) >= limit:
            break
        hits = store_search.search_by_recent(conn, fts.match, room_ids, query.keys, want, before)
        allowed += _allowed_txn(conn, rooms, user_id, hits, query.event_filter, ignored)
        if len(hits) < want:
            before = None  # the index has nothing more
            break
        before = (hits[-1].origin_server_ts, hits[-1].stream_ordering)
    allowed = allowed[:limit]
    if limit and len(allowed) >= limit:
        last = allowed[-1][0]
        return _Page(allowed, (last.origin_server_ts, last.stream_ordering))
    # Too few visible hits in the rounds read, and the index has more: go on from there.
    return _Page(allowed, before if limit else None)


def search_txn(
    conn: Connection,
    rooms: RoomService,
    user_id: str,
    device_id: str | None,
    query: RoomEventsQuery,
    batch: Batch | None,
    ignored: frozenset[str],
) -> SearchResults:
    """One page of `query` as `user_id` may see it (see the module's rules)."""
    room_ids, event_filter = _rooms_txn(conn, rooms, user_id, query, batch)
    query = replace(query, event_filter=event_filter)
    fts = fts_query(query.search_term)
    if not room_ids:
        return EMPTY
    if fts is None:
        return SearchResults(0, (), [], {}, {}, None)
    count = store_search.count_matches(conn, fts.match, room_ids, query.keys)
    if query.order_by == "rank":
        page = _rank_page_txn(conn, rooms, user_id, query, fts, room_ids, ignored)
    else:
        before = batch.before if batch is not None else None
        page = _recent_page_txn(conn, rooms, user_id, query, fts, room_ids, ignored, before)
    results = []
    for hit, pdu in page.allowed:
        viewer = Viewer(user_id, hit.room_id)
        view = decorate_txn(conn, rooms, [pdu], user_id, device_id, viewer=viewer)[0]
        context = None
        if query.context is not None:
            context = _context_txn(conn, rooms, viewer, device_id, pdu, query.context, ignored)
        results.append(SearchResult(hit.rank, view, context))
    state = {}
    if query.include_state:
        for room_id in dict.fromkeys(hit.room_id for hit, _ in page.allowed):
            state[room_id] = state_txn(conn, rooms, Viewer(user_id, room_id))
    groups, next_batch = _groups(query, page, batch)
    return SearchResults(count, fts.highlights, results, state, groups, next_batch)


def _groups(
    query: RoomEventsQuery, page: _Page, batch: Batch | None
) -> tuple[dict[str, dict[str, dict[str, Any]]], str | None]:
    """The `groups` asked for and the page's `next_batch` (recent only, as Synapse:
    each room's group carries its own, the global one keeps the batch's group)."""
    by_room: dict[str, dict[str, Any]] = {}
    by_sender: dict[str, dict[str, Any]] = {}
    for hit, pdu in page.allowed:
        order = {"order": hit.rank} if query.order_by == "rank" else {}
        by_room.setdefault(hit.room_id, {"results": [], **order})["results"].append(pdu.event_id)
        by_sender.setdefault(pdu.sender, {"results": [], **order})["results"].append(pdu.event_id)
    next_batch = None
    if page.next_before is not None:
        for room_id, group in by_room.items():
            group["next_batch"] = batch_token("room_id", room_id, page.next_before)
        if batch is not None and batch.group == "room_id":
            next_batch = batch_token("room_id", batch.group_key, page.next_before)
        else:
            next_batch = batch_token("all", "", page.next_before)
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    if "room_id" in query.group_by and by_room:
        groups["room_id"] = by_room
    if "sender" in query.group_by and by_sender and query.order_by == "rank":
        groups["sender"] = by_sender
    return groups, next_batch


async def search(
    rooms: RoomService,
    user_id: str,
    device_id: str | None,
    query: RoomEventsQuery,
    batch: Batch | None,
    ignored_users: IgnoredUsers,
) -> SearchResults:
    """`search_txn` in one read snapshot, with the user's ignored users read in it."""

    def txn(conn: Connection) -> SearchResults:
        ignored = ignored_users(conn, user_id)
        return search_txn(conn, rooms, user_id, device_id, query, batch, ignored)

    return await rooms.database.read(txn)
