-- 045_login_throttle: panel login attempts are counted per username as typed, for real
-- accounts and unknown names alike (so the answers cannot tell them apart), and an attempt
-- is reserved here, in one atomic statement, BEFORE its password is checked: however many
-- logins run at once, no more than [web] lockout_attempts password checks run per window.
-- Replaces users.failed_logins / users.locked_until, which were counted after the check.

CREATE TABLE login_throttle (
    username     text PRIMARY KEY CHECK (length(username) <= 256),
    failures     integer NOT NULL DEFAULT 0,  -- attempts of this window not proven right
    locked_until timestamptz,                 -- set by the attempt that reached the limit
    updated_at   timestamptz NOT NULL DEFAULT now()  -- the last attempt let through
);
-- the sweep of expired rows (unknown usernames must not fill the table)
CREATE INDEX login_throttle_updated ON login_throttle (updated_at);

INSERT INTO login_throttle (username, failures, locked_until)
    SELECT username, failed_logins, locked_until FROM users
    WHERE failed_logins > 0 OR locked_until > now();

ALTER TABLE users DROP COLUMN failed_logins, DROP COLUMN locked_until;
