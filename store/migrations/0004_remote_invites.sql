-- 0004: invites to rooms on other servers that we are not in (yet): the invite
-- event is stored as an outlier; the inviting server's stripped room state is kept
-- here for the invitee's /sync (rooms.invite.invite_state).

CREATE TABLE remote_invites (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    room_version TEXT NOT NULL,
    invite_state TEXT NOT NULL DEFAULT '[]',  -- JSON list of stripped state events
    PRIMARY KEY (room_id, user_id)
);
