-- 0005: other servers' signed key responses (GET /_matrix/key/v2/server), kept whole
-- so the relay can serve them as a notary (/_matrix/key/v2/query) with its own
-- signature added. One row per server: the newest response seen (largest
-- valid_until_ts). The per-key rows stay in server_keys.

CREATE TABLE server_key_responses (
    server_name TEXT PRIMARY KEY,
    -- canonical JSON of the response as received (its signatures included)
    response_json TEXT NOT NULL,
    valid_until_ts INTEGER NOT NULL,
    -- the server itself, or the notary it came through
    from_server TEXT NOT NULL,
    fetched_ts INTEGER NOT NULL
);
