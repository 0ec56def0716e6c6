-- 0022: server-side search (`POST /search`, relay/rooms/search.py). One document per
-- searchable event (an m.room.message's body, an m.room.name's name, an m.room.topic's
-- topic; never an encrypted event): `event_search_docs` says whose it is, the FTS5 table
-- `event_search` holds its words under the same rowid. The documents are kept apart from
-- the text so that finding an event's document (to drop it on redaction) is an index
-- lookup, not a walk of the full-text table.

CREATE TABLE event_search_docs (
    doc INTEGER PRIMARY KEY,  -- the rowid of the event's row in event_search
    event_id TEXT NOT NULL UNIQUE,
    room_id TEXT NOT NULL,
    key TEXT NOT NULL CHECK (key IN ('content.body', 'content.name', 'content.topic'))
);

CREATE VIRTUAL TABLE event_search USING fts5 (
    value,
    tokenize = 'unicode61 remove_diacritics 2'
);

-- The events stored before this migration, as store/search.py indexes new ones: the
-- three keys, string values only, rejected events left out. An event redacted before
-- now may be indexed here (whether a redaction applies is the rooms core's rule, not
-- SQL's); searches never return it: relay/rooms/search.py asks that rule of every hit.
-- The JSON's NUL escapes become spaces first: json_extract's text ends at a NUL.
CREATE TEMP TABLE event_search_backfill AS
SELECT event_id, room_id, key, json_extract(json, '$.' || key) AS value, stream_ordering
FROM (
    SELECT event_id, room_id, stream_ordering,
        CASE type
            WHEN 'm.room.message' THEN 'content.body'
            WHEN 'm.room.name' THEN 'content.name'
            ELSE 'content.topic'
        END AS key,
        replace(CAST(raw AS TEXT), '\u0000', ' ') AS json
    FROM events
    WHERE type IN ('m.room.message', 'm.room.name', 'm.room.topic')
        AND rejected_reason IS NULL
)
WHERE json_valid(json);

INSERT INTO event_search_docs (event_id, room_id, key)
SELECT event_id, room_id, key FROM event_search_backfill
WHERE typeof(value) = 'text'
ORDER BY stream_ordering;

INSERT INTO event_search (rowid, value)
SELECT d.doc, b.value
FROM event_search_docs d JOIN event_search_backfill b ON b.event_id = d.event_id;

DROP TABLE event_search_backfill;
