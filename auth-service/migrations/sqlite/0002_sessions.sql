-- Sessions, their refresh tokens, and the revocation feed books-service
-- polls. Same version and shape as migrations/postgres/0002_sessions.sql.

-- One login: the access tokens it issues carry its id as `sid`, and its
-- refresh tokens form one rotation family.
create table sessions (
    -- A UUID, the `sid` claim.
    id text primary key,
    user_id integer not null references users (id) on delete cascade,
    -- Unix time in microseconds.
    created_at integer not null,
    -- Set when the session ends (logout, password change, reuse of a spent
    -- refresh token, admin revoke-sessions); its tokens are refused since.
    revoked_at integer
);
create index sessions_user_id on sessions (user_id);

-- Refresh tokens, stored only as SHA-256 hashes (hex) of the 256-bit
-- random tokens: a leaked table does not let anyone refresh.
create table refresh_tokens (
    token_hash text primary key,
    session_id text not null references sessions (id) on delete cascade,
    created_at integer not null,
    expires_at integer not null,
    -- When it was spent (traded for the next one). Presented again after
    -- the grace window, it ends the session: someone kept a copy.
    rotated_at integer
);
create index refresh_tokens_session_id on refresh_tokens (session_id);

-- The outbox of revocations: written in the same transaction as the change
-- that causes it, read by books-service through ListRevocations.
create table revocations (
    -- Page cursor of the feed. autoincrement: never reused.
    id integer primary key autoincrement,
    -- 'session': tokens with sid = subject; 'user': tokens with sub =
    -- subject (the account was deleted; so must be its data elsewhere).
    kind text not null check (kind in ('session', 'user')),
    subject text not null,
    -- Unix time in microseconds.
    revoked_at integer not null,
    -- When the last token it covers expires; session rows are purged after.
    relevant_until integer not null
);
create index revocations_revoked_at on revocations (revoked_at);
create index revocations_relevant_until on revocations (relevant_until);
