-- 0020: knocks of our users on rooms on other servers that we are not in: the knock
-- event is stored as an outlier; the room's version, the server we knocked through and
-- the stripped room state it answered (`knock_room_state`) are kept here for the
-- knocker's /sync (rooms.knock.knock_state) and for rescinding the knock.

CREATE TABLE remote_knocks (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    room_version TEXT NOT NULL,
    server TEXT NOT NULL,
    knock_state TEXT NOT NULL DEFAULT '[]',  -- JSON list of stripped state events
    PRIMARY KEY (room_id, user_id)
);
