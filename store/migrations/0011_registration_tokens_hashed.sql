-- 0011: registration tokens are stored as their sha256 (hex of the UTF-8), as access
-- tokens are: a copy of relay.db (a backup, a lost SD card) no longer holds tokens that
-- let anyone register. `hint` is what `relay token list` shows: the first quarter of the
-- token (nothing of a short one). `relay_token_hash` is `store.accounts.token_hash`,
-- registered on the connection by `store.db.migrate`.

CREATE TABLE registration_tokens_hashed (
    token_hash TEXT PRIMARY KEY,
    hint TEXT NOT NULL,
    uses_allowed INTEGER,  -- NULL: unlimited
    pending INTEGER NOT NULL DEFAULT 0,
    completed INTEGER NOT NULL DEFAULT 0,
    expiry_time INTEGER  -- ms; NULL: never
);

INSERT INTO registration_tokens_hashed
    (token_hash, hint, uses_allowed, pending, completed, expiry_time)
SELECT relay_token_hash(token), substr(token, 1, length(token) / 4),
       uses_allowed, pending, completed, expiry_time
FROM registration_tokens;

DROP TABLE registration_tokens;

ALTER TABLE registration_tokens_hashed RENAME TO registration_tokens;
