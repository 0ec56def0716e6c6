-- 0009: /messages pages through a room in topological order, (depth, stream_ordering),
-- as Synapse does, so events that arrive late (gap filling, backfill) sit where the
-- DAG puts them. This index serves both the bounds and the ORDER BY of that query
-- without a sort; it makes the (room_id, depth) index of 0001 redundant.

CREATE INDEX events_room_depth_stream ON events (room_id, depth, stream_ordering);
DROP INDEX events_room_depth;
