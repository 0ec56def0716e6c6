-- 0016: accounts deactivated with `erase: true` (`POST /account/deactivate`, the admin
-- API): their profile is cleared and stays so.

ALTER TABLE users ADD COLUMN erased INTEGER NOT NULL DEFAULT 0 CHECK (erased IN (0, 1));
