-- 0015: accounts deactivated with `erase: true` (their profile is gone and stays gone), and
-- the OpenID tokens a user asked for (`/user/{userId}/openid/request_token`), which another
-- server trades for the user id at `/_matrix/federation/v1/openid/userinfo`. Only the
-- token's SHA-256 is kept, as for access tokens.

ALTER TABLE users ADD COLUMN erased INTEGER NOT NULL DEFAULT 0 CHECK (erased IN (0, 1));

CREATE TABLE openid_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    expires_ts INTEGER NOT NULL
);
CREATE INDEX openid_tokens_expiry ON openid_tokens (expires_ts);
