-- 0012: a PDU pushed to us whose signing key could not be found yet is kept here, not
-- dropped, and received again once a key of `key_server` is cached (or on the next retry
-- round): on a mesh, events often arrive before the key of the server that wrote them.

CREATE TABLE pending_pdus (
    event_id TEXT PRIMARY KEY,
    origin TEXT NOT NULL,
    room_id TEXT NOT NULL,
    key_server TEXT NOT NULL,
    pdu_json TEXT NOT NULL,
    received_ts INTEGER NOT NULL
);
CREATE INDEX pending_pdus_key_server ON pending_pdus (key_server);
