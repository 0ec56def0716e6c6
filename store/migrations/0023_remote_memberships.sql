-- 0023: one table for our users' memberships in rooms on other servers that we are not
-- in: an invite another server sent (was remote_invites, 0004) and a knock we sent (was
-- remote_knocks, 0020). A user has one membership in a room, so one row per (room, user).
-- The membership event is stored as an outlier; the room's version, the server a knock
-- went through (NULL for an invite: its sender's server is asked) and the stripped room
-- state that came with it (invite_room_state / knock_room_state) are kept here for the
-- user's /sync (rooms.invite.invite_state, rooms.knock.knock_state) and for leaving.

CREATE TABLE remote_memberships (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    membership TEXT NOT NULL CHECK (membership IN ('invite', 'knock')),
    event_id TEXT NOT NULL,
    room_version TEXT NOT NULL,
    server TEXT,
    stripped_state TEXT NOT NULL DEFAULT '[]',  -- JSON list of stripped state events
    PRIMARY KEY (room_id, user_id)
);

INSERT INTO remote_memberships
    (room_id, user_id, membership, event_id, room_version, server, stripped_state)
SELECT room_id, user_id, 'invite', event_id, room_version, NULL, invite_state
FROM remote_invites;

-- A user with both rows had knocked and was then invited (an invite answers a knock; the
-- auth rules refuse a knock from an invited user): the invite stands, unless the user's
-- current membership says the knock is the newer.
INSERT INTO remote_memberships
    (room_id, user_id, membership, event_id, room_version, server, stripped_state)
SELECT room_id, user_id, 'knock', event_id, room_version, server, knock_state
FROM remote_knocks WHERE true
ON CONFLICT (room_id, user_id) DO UPDATE SET
    membership = excluded.membership,
    event_id = excluded.event_id,
    room_version = excluded.room_version,
    server = excluded.server,
    stripped_state = excluded.stripped_state
WHERE EXISTS (
    SELECT 1 FROM room_memberships AS m
    WHERE m.room_id = excluded.room_id AND m.user_id = excluded.user_id
    AND m.membership = 'knock'
);

DROP TABLE remote_invites;
DROP TABLE remote_knocks;
