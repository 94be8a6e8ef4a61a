-- Data migrations done by the service's code (what SQL alone cannot do,
-- such as recomputing user name keys with the PRECIS profile), by name, so
-- each runs once.
create table data_migrations (
    name text primary key,
    -- Unix seconds.
    done_at bigint not null
);
