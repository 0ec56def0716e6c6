-- 0018: content reports users file from their clients (`/rooms/{roomId}/report/{eventId}`,
-- `/rooms/{roomId}/report`, `/users/{userId}/report`) for the operator to read and
-- dismiss (the operator page, Synapse's `/_synapse/admin/v1/event_reports`).

CREATE TABLE reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('event', 'room', 'user')),
    room_id TEXT,
    event_id TEXT,
    target_user_id TEXT,
    reporter TEXT NOT NULL,
    reason TEXT,
    score INTEGER,
    received_ts INTEGER NOT NULL
);

CREATE INDEX reports_by_reporter ON reports (reporter);
