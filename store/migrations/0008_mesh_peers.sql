-- 0008: LAN peers found by mDNS (relay/mesh), one row per announced server name.
-- status: trusted (key matches a pin: config or `relay peers approve`), pending
-- (seen, key self-consistent, not yet approved) or rejected (spoofed: key differs
-- from the pin or from the announced fingerprint; or revoked by the operator).
-- approved_key: the verify key the operator approved (unpadded base64), or NULL.

CREATE TABLE mesh_peers (
    server_name TEXT PRIMARY KEY,
    address TEXT,
    port INTEGER,
    key_id TEXT,
    verify_key TEXT,
    fingerprint TEXT,
    status TEXT NOT NULL DEFAULT 'pending',
    approved_key TEXT,
    version TEXT,
    first_seen_ts INTEGER NOT NULL,
    last_seen_ts INTEGER NOT NULL,
    reachable INTEGER NOT NULL DEFAULT 0,
    reason TEXT
);

-- Announcements we refused that name a peer already present (an impersonator at
-- another address): kept apart so they never change the real peer's row.
CREATE TABLE mesh_rejected_announcements (
    server_name TEXT NOT NULL,
    address TEXT NOT NULL,
    port INTEGER,
    fingerprint TEXT,
    reason TEXT NOT NULL,
    first_seen_ts INTEGER NOT NULL,
    last_seen_ts INTEGER NOT NULL,
    PRIMARY KEY (server_name, address)
);
