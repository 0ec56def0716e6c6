-- 0015: OpenID tokens a local user asked for (client `/user/{userId}/openid/request_token`)
-- so a third party can learn who they are through federation `/openid/userinfo`. Stored as
-- their sha256 (`store.accounts.token_hash`), as access tokens are; they expire after an
-- hour and expired rows are deleted when a new token is made.

CREATE TABLE openid_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);
