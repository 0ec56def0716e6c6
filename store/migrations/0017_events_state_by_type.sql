-- 0015: history visibility (relay/rooms/visibility.py) asks for every state event of
-- one type a room ever had (store.events.state_event_ids_of_type) on each /messages
-- page and sync timeline. Without this index SQLite walked the room's whole history
-- (events_room_stream) for the handful of history_visibility events; with it the
-- search is keyed by (room_id, type) and ordered by stream_ordering already. Partial:
-- only state events, a small share of a chatty room.

CREATE INDEX events_room_state_type ON events (room_id, type, stream_ordering)
    WHERE state_key IS NOT NULL;
