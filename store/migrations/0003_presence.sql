-- 0003: presence, positioned on the shared stream like account data and receipts,
-- so one sync token covers it. Only explicit changes (and offline -> online when a
-- client starts syncing) are written; "last active" refreshes are kept in memory.

CREATE TABLE presence (
    user_id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('online', 'unavailable', 'offline')),
    status_msg TEXT,
    last_active_ts INTEGER NOT NULL,
    stream_ordering INTEGER NOT NULL
);
CREATE INDEX presence_stream ON presence (stream_ordering);
