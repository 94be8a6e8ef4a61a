-- What the periodic sweep (UserStore::sweep) looks rows up by: expired
-- refresh tokens, ended sessions, and open sessions old enough to have
-- finished. Same version and shape as migrations/sqlite/0005_sweep_indexes.sql.
create index refresh_tokens_expires_at on refresh_tokens (expires_at);
create index sessions_revoked_at on sessions (revoked_at);
create index sessions_created_at on sessions (created_at);
