-- 0019: pushers (`POST /pushers/set`): where a user's notifications are pushed. A pusher
-- belongs to the device that set it and goes with it (logout, device deletion, password
-- change with logout_devices, deactivation), as Synapse removes pushers by device.
-- `last_stream_ordering` is how far its deliveries got: events after it are still to push.

CREATE TABLE pushers (
    user_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    pushkey TEXT NOT NULL,
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    app_display_name TEXT NOT NULL,
    device_display_name TEXT NOT NULL,
    profile_tag TEXT NOT NULL,
    lang TEXT,
    data TEXT NOT NULL,
    pushkey_ts INTEGER NOT NULL,
    last_stream_ordering INTEGER NOT NULL,
    PRIMARY KEY (user_id, app_id, pushkey),
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);

CREATE INDEX pushers_by_key ON pushers (app_id, pushkey);
CREATE INDEX pushers_by_device ON pushers (user_id, device_id);
