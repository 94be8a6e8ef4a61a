-- Login attempts per user name that have not (yet) ended in a success:
-- the per-name throttle. Keyed by the normalized submitted name whether or
-- not a user has it, so the throttle tells nobody which names exist. A
-- success deletes the row; rows idle for a day are forgotten.
create table login_failures (
    -- lowercase(trimmed name), as users.name_key.
    name_key text primary key,
    -- Attempts since the last success (or since the count was forgotten).
    failures bigint not null,
    -- Unix seconds before which the next attempt is refused.
    locked_until bigint not null,
    -- Unix seconds of the last counted attempt.
    last_attempt bigint not null
);
create index login_failures_last_attempt on login_failures (last_attempt);
