-- 0014: what each Simplified Sliding Sync (MSC4186) connection has been sent, per
-- connection position, so an incremental sync sends only what is new to that
-- connection, a client that retries a `pos` gets the same answer, and `pos` tokens
-- survive a restart. `state` is JSON owned by relay/sync/sliding.py; only the few newest
-- positions of a connection are kept (store/sliding_sync.py).

CREATE TABLE sliding_sync_connections (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    conn_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    state TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id, conn_id, position)
);
