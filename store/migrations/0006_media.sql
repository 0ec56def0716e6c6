-- 0006: the content repository. Files live on disk content-addressed
-- (media/ab/cd/<sha256>); these rows say which media ids (ours and other servers'
-- cached ones) and which thumbnails point at which file. A file no row names is an
-- orphan that `relay media cleanup` removes.

CREATE TABLE media (
    -- the server in the mxc:// URI: ours for uploads, another for cached remote media
    server_name TEXT NOT NULL,
    media_id TEXT NOT NULL,
    -- 1 when cached from another server (subject to media.remote_cache_max_bytes)
    remote INTEGER NOT NULL DEFAULT 0,
    -- the uploader (local media only)
    user_id TEXT,
    content_type TEXT,
    filename TEXT,
    -- NULL until the content is there (an async upload's /create reserves the id)
    size INTEGER,
    sha256 TEXT,
    created_ts INTEGER NOT NULL,
    -- an id reserved by /create and not uploaded by then may be reused or dropped
    unused_expires_ts INTEGER,
    last_access_ts INTEGER NOT NULL,
    PRIMARY KEY (server_name, media_id)
);

CREATE INDEX media_sha256 ON media (sha256);
CREATE INDEX media_remote_access ON media (remote, last_access_ts);
CREATE INDEX media_pending_user ON media (user_id, unused_expires_ts) WHERE sha256 IS NULL;

CREATE TABLE media_thumbnails (
    server_name TEXT NOT NULL,
    media_id TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    -- "scale" or "crop"
    method TEXT NOT NULL,
    remote INTEGER NOT NULL DEFAULT 0,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    last_access_ts INTEGER NOT NULL,
    PRIMARY KEY (server_name, media_id, width, height, method)
);

CREATE INDEX media_thumbnails_sha256 ON media_thumbnails (sha256);
