-- 0010: an inbound m.direct_to_device EDU is idempotent by its `message_id`, which its
-- origin server makes unique. A retried EDU may come in a new transaction (new txn id),
-- so the transaction dedupe alone would deliver its messages twice; the ids are kept
-- in a table so a restart between the two copies changes nothing.

CREATE TABLE device_inbox_remote_messages (
    origin TEXT NOT NULL,
    message_id TEXT NOT NULL,
    received_ts INTEGER NOT NULL,
    PRIMARY KEY (origin, message_id)
);
