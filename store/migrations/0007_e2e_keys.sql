-- End-to-end encryption: device keys, one-time and fallback keys, cross-signing,
-- key backup, the to-device inbox and device list changes (local and remote users).

-- A device's identity keys as the client uploaded them (signed JSON, without signatures
-- by other keys: those are in cross_signing_signatures).
CREATE TABLE e2e_device_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id),
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);

CREATE TABLE e2e_one_time_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, algorithm, key_id),
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);

-- One fallback key per device and algorithm; `used` once claimed (kept until replaced).
CREATE TABLE e2e_fallback_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    used INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, device_id, algorithm),
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);

-- key_type: master, self_signing, user_signing.
CREATE TABLE e2e_cross_signing_keys (
    user_id TEXT NOT NULL,
    key_type TEXT NOT NULL,
    key_json TEXT NOT NULL,
    PRIMARY KEY (user_id, key_type)
);

-- A signature by signer_user_id's key signer_key_id over target_user_id's key or device
-- target_key_id (a device id, or a cross-signing public key).
CREATE TABLE e2e_cross_signing_signatures (
    signer_user_id TEXT NOT NULL,
    signer_key_id TEXT NOT NULL,
    target_user_id TEXT NOT NULL,
    target_key_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (signer_user_id, signer_key_id, target_user_id, target_key_id)
);
CREATE INDEX e2e_cross_signing_signatures_target
    ON e2e_cross_signing_signatures (target_user_id, target_key_id);

CREATE TABLE e2e_room_keys_versions (
    user_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    algorithm TEXT NOT NULL,
    auth_data TEXT NOT NULL,
    etag INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, version)
);

CREATE TABLE e2e_room_keys (
    user_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    room_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    first_message_index INTEGER NOT NULL,
    forwarded_count INTEGER NOT NULL,
    is_verified INTEGER NOT NULL,
    session_data TEXT NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id)
);

-- To-device messages waiting for a device; `stream` is a position on the main stream.
-- A row goes when the device syncs with a `since` at or past it (it has seen it).
CREATE TABLE device_inbox (
    stream INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    message_json TEXT NOT NULL
);
CREATE INDEX device_inbox_device ON device_inbox (user_id, device_id, stream);

-- sendToDevice transaction ids: a retried PUT changes nothing.
CREATE TABLE device_inbox_txns (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
);

-- A user's device list (devices or their keys) changed at `stream` (local and remote users).
CREATE TABLE device_list_changes (
    stream INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL
);
CREATE INDEX device_list_changes_user ON device_list_changes (user_id, stream);

-- Device lists of remote users we were told about: `stale` when an update could not be
-- applied (unknown prev_id, or the link was down); resynced via /user/devices.
CREATE TABLE remote_device_lists (
    user_id TEXT PRIMARY KEY,
    stream_id INTEGER,
    stale INTEGER NOT NULL DEFAULT 0,
    master_key TEXT,
    self_signing_key TEXT,
    updated_ts INTEGER NOT NULL
);

CREATE TABLE remote_devices (
    user_id TEXT NOT NULL REFERENCES remote_device_lists (user_id) ON DELETE CASCADE,
    device_id TEXT NOT NULL,
    display_name TEXT,
    key_json TEXT,
    PRIMARY KEY (user_id, device_id)
);
