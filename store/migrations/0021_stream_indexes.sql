-- 0021: an incremental /sync asks "what moved after position N?" across every room and
-- user at once (store.events.rooms_with_events_between, store.receipts.rooms_with_receipts_since,
-- store.e2ee_keys.membership_changes):
-- keyed by stream position, so the answer costs what changed, not how many rooms the
-- user is in or how long the history is.
-- events.stream_ordering is UNIQUE and device_list_changes.stream its rowid: indexed.

CREATE INDEX receipts_stream_ordering ON receipts (stream_ordering);
CREATE INDEX room_memberships_stream ON room_memberships (stream_ordering);
