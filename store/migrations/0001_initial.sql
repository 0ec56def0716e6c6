-- 0001_initial: the relay's first schema.
--
-- Conventions: times are integer milliseconds since the epoch (*_ts); flags are
-- INTEGER 0/1; JSON is stored as TEXT; signed events as the exact canonical JSON
-- bytes (BLOB) that were hashed and signed, sent on byte for byte.

-- One stream shared by events, account data and receipts, so a single integer is a
-- complete sync position: everything with stream_ordering <= N has been seen.
CREATE TABLE stream_positions (
    stream TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
INSERT INTO stream_positions (stream, position) VALUES ('main', 0);

-- Events -----------------------------------------------------------------------

-- depth is the topological ordering; stream_ordering the order we stored them in.
-- Outliers (auth chains fetched from peers) have a stream_ordering too, but are not
-- part of the room timeline. No foreign key to rooms: we store outliers of rooms we
-- are only joining.
CREATE TABLE events (
    event_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT,
    sender TEXT NOT NULL,
    origin_server_ts INTEGER NOT NULL,
    depth INTEGER NOT NULL,
    stream_ordering INTEGER NOT NULL UNIQUE,
    raw BLOB NOT NULL,
    rejected_reason TEXT,
    outlier INTEGER NOT NULL DEFAULT 0 CHECK (outlier IN (0, 1)),
    soft_failed INTEGER NOT NULL DEFAULT 0 CHECK (soft_failed IN (0, 1)),
    received_ts INTEGER NOT NULL
);
CREATE INDEX events_room_stream ON events (room_id, stream_ordering);
CREATE INDEX events_room_depth ON events (room_id, depth);

-- DAG edges. The target may be an event we don't have (yet): no foreign key on it.
CREATE TABLE event_edges (
    event_id TEXT NOT NULL REFERENCES events (event_id) ON DELETE CASCADE,
    prev_event_id TEXT NOT NULL,
    PRIMARY KEY (event_id, prev_event_id)
);
CREATE INDEX event_edges_prev ON event_edges (prev_event_id);

CREATE TABLE event_auth_edges (
    event_id TEXT NOT NULL REFERENCES events (event_id) ON DELETE CASCADE,
    auth_event_id TEXT NOT NULL,
    PRIMARY KEY (event_id, auth_event_id)
);

-- The room's DAG tips: events no stored event names as a prev_event.
CREATE TABLE forward_extremities (
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, event_id)
);

-- Rooms and state ------------------------------------------------------------------

CREATE TABLE rooms (
    room_id TEXT PRIMARY KEY,
    room_version TEXT NOT NULL,
    creator TEXT,
    is_public INTEGER NOT NULL DEFAULT 0 CHECK (is_public IN (0, 1)),
    created_ts INTEGER NOT NULL
);

CREATE TABLE room_aliases (
    alias TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    servers TEXT NOT NULL DEFAULT '[]',  -- JSON list of server names
    creator TEXT
);
CREATE INDEX room_aliases_room ON room_aliases (room_id);

-- The resolved state at the room's forward extremities.
CREATE TABLE current_state (
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, type, state_key)
);

-- State at an event, as delta-encoded snapshots ("state groups").
-- A group is either a full map (prev_group NULL, chain_length 0) or a delta over
-- prev_group (chain_length = prev's + 1). delta is a JSON list of
-- [type, state_key, event_id] triples, event_id null meaning "key removed".
-- Chains are cut (a full map is written) every 32 links, so loading a state is at most
-- 33 small row reads. Events sharing a state share a group: a message event costs one
-- event_state row, a state event one small delta group.
CREATE TABLE state_groups (
    id INTEGER PRIMARY KEY,
    room_id TEXT NOT NULL,
    prev_group INTEGER REFERENCES state_groups (id),
    chain_length INTEGER NOT NULL DEFAULT 0,
    delta TEXT NOT NULL
);

-- For each event: the state before it (what its auth checks against, what /state
-- answers) and after it (before + the event itself, if it is a state event).
CREATE TABLE event_state (
    event_id TEXT PRIMARY KEY,
    state_before INTEGER NOT NULL REFERENCES state_groups (id),
    state_after INTEGER NOT NULL REFERENCES state_groups (id)
);

-- Derived from current state: quick "who is in this room", "which rooms am I in".
CREATE TABLE room_memberships (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    membership TEXT NOT NULL,
    event_id TEXT NOT NULL,
    stream_ordering INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_memberships_user ON room_memberships (user_id, membership);
CREATE INDEX room_memberships_room ON room_memberships (room_id, membership);

-- Accounts ---------------------------------------------------------------------------

CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    password_hash TEXT,  -- "scrypt$n$r$p$salt$hash", NULL: no password login
    is_admin INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    created_ts INTEGER NOT NULL,
    deactivated INTEGER NOT NULL DEFAULT 0 CHECK (deactivated IN (0, 1)),
    displayname TEXT,
    avatar_url TEXT
);

CREATE TABLE devices (
    user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    device_id TEXT NOT NULL,
    display_name TEXT,
    last_seen_ts INTEGER,
    last_seen_ip TEXT,
    PRIMARY KEY (user_id, device_id)
);

-- Access tokens are kept as sha256 hex, never in clear.
CREATE TABLE access_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);
CREATE INDEX access_tokens_device ON access_tokens (user_id, device_id);

-- Client transaction ids: a retried PUT with the same txn id gets the same answer.
-- scope is the endpoint (e.g. "send:!room:server"); result an event_id or JSON.
CREATE TABLE client_txn_ids (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    result TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id, scope, txn_id)
);
CREATE INDEX client_txn_ids_created ON client_txn_ids (created_ts);

-- room_id '' is global account data.
CREATE TABLE account_data (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL DEFAULT '',
    type TEXT NOT NULL,
    content TEXT NOT NULL,
    stream_ordering INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, type)
);
CREATE INDEX account_data_stream ON account_data (user_id, stream_ordering);

-- Read receipts (typing notifications are in memory only).
CREATE TABLE receipts (
    room_id TEXT NOT NULL,
    receipt_type TEXT NOT NULL,
    user_id TEXT NOT NULL,
    thread_id TEXT NOT NULL DEFAULT '',  -- '' is the unthreaded receipt
    event_id TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}',
    stream_ordering INTEGER NOT NULL,
    PRIMARY KEY (room_id, receipt_type, user_id, thread_id)
);
CREATE INDEX receipts_stream ON receipts (room_id, stream_ordering);

CREATE TABLE filters (
    user_id TEXT NOT NULL,
    filter_id INTEGER NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);

CREATE TABLE registration_tokens (
    token TEXT PRIMARY KEY,
    uses_allowed INTEGER,  -- NULL: unlimited
    pending INTEGER NOT NULL DEFAULT 0,
    completed INTEGER NOT NULL DEFAULT 0,
    expiry_time INTEGER  -- ms; NULL: never
);

-- Federation -----------------------------------------------------------------------

-- The outbound queue, one ordered backlog per destination; rows are deleted once
-- the destination acknowledged the transaction carrying them.
CREATE TABLE federation_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    destination TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('pdu', 'edu')),
    event_id TEXT,
    payload BLOB NOT NULL,
    created_ts INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX federation_outbox_destination ON federation_outbox (destination, id);

CREATE TABLE federation_destinations (
    destination TEXT PRIMARY KEY,
    reachable INTEGER NOT NULL DEFAULT 1 CHECK (reachable IN (0, 1)),
    since_ts INTEGER,  -- when `reachable` last changed
    last_success_ts INTEGER,
    last_attempt_ts INTEGER,
    retry_interval_ms INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0
);

-- Inbound /send/{txnId} dedup: a retried transaction gets the stored response.
CREATE TABLE federation_txn_ids (
    origin TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    response TEXT NOT NULL,
    received_ts INTEGER NOT NULL,
    PRIMARY KEY (origin, txn_id)
);
CREATE INDEX federation_txn_ids_received ON federation_txn_ids (received_ts);

-- Remote servers' signing keys. verify_key is unpadded base64, as in key JSON;
-- expired_ts is set for old_verify_keys.
CREATE TABLE server_keys (
    server_name TEXT NOT NULL,
    key_id TEXT NOT NULL,
    verify_key TEXT NOT NULL,
    valid_until_ts INTEGER NOT NULL,
    expired_ts INTEGER,
    fetched_ts INTEGER NOT NULL,
    PRIMARY KEY (server_name, key_id)
);
