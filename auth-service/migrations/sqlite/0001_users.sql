-- Users of Bookstore. Passwords are stored only as argon2id PHC strings.
create table users (
    -- Internal key; also the keyset cursor of ListUsers. autoincrement: never reused.
    id integer primary key autoincrement,
    -- The id users and tokens see (a UUID, the token's `sub`).
    public_id text not null,
    -- The name as registered (trimmed).
    name text not null,
    -- lowercase(name): names are unique case-insensitively (Unicode-aware,
    -- computed by the service so both backends agree).
    name_key text not null,
    password_hash text not null,
    admin integer not null default 0 check (admin in (0, 1)),
    -- Unix time in microseconds.
    created_at integer not null,
    constraint users_public_id_key unique (public_id),
    constraint users_name_key_key unique (name_key)
);
