-- 0002: which events redact which (to serve redacted events), and which client
-- transaction produced a local event (unsigned.transaction_id for its sender's device).

CREATE TABLE redactions (
    event_id TEXT PRIMARY KEY,  -- the m.room.redaction event
    redacts TEXT NOT NULL
);
CREATE INDEX redactions_redacts ON redactions (redacts);

CREATE TABLE event_txn_ids (
    event_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id TEXT NOT NULL
);

-- Rooms a user asked to forget (after leaving): left out of /sync's leave section.
CREATE TABLE forgotten_rooms (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    PRIMARY KEY (user_id, room_id)
);
