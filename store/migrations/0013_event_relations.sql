-- 0013: which event relates to which (content."m.relates_to": rel_type + event_id), for
-- /relations, /threads and the bundled aggregations (edits, threads, references).
-- One row per relating event, whatever its fate (rejected, soft-failed, outlier): the
-- readers join `events` and leave hidden ones out, and leave out redacted ones by the
-- redaction rule. Filled by every path that stores an event (relay/rooms/service.py
-- `insert_pdu_txn`, through relay/events/relations.py's rule); the INSERT below fills it
-- for events stored before this migration by the same rule, read with SQLite's JSON.

CREATE TABLE event_relations (
    event_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    relates_to_id TEXT NOT NULL,
    rel_type TEXT NOT NULL,
    aggregation_key TEXT
);
CREATE INDEX event_relations_parent ON event_relations (relates_to_id, rel_type);
CREATE INDEX event_relations_room_type ON event_relations (room_id, rel_type);

INSERT OR IGNORE INTO event_relations (event_id, room_id, relates_to_id, rel_type, aggregation_key)
SELECT event_id, room_id, parent, rel_type,
       CASE WHEN rel_type = 'm.annotation' AND key_type = 'text' THEN agg_key END
FROM (
    SELECT event_id, room_id,
           json_extract(CAST(raw AS TEXT), '$.content."m.relates_to".event_id') AS parent,
           json_type(CAST(raw AS TEXT), '$.content."m.relates_to".event_id') AS parent_type,
           json_extract(CAST(raw AS TEXT), '$.content."m.relates_to".rel_type') AS rel_type,
           json_type(CAST(raw AS TEXT), '$.content."m.relates_to".rel_type') AS rel_type_type,
           json_extract(CAST(raw AS TEXT), '$.content."m.relates_to".key') AS agg_key,
           json_type(CAST(raw AS TEXT), '$.content."m.relates_to".key') AS key_type
    FROM events
    WHERE state_key IS NULL AND type != 'm.room.redaction'
      AND json_valid(CAST(raw AS TEXT))
      AND json_type(CAST(raw AS TEXT), '$.content."m.relates_to"') = 'object'
)
WHERE parent_type = 'text' AND rel_type_type = 'text';
