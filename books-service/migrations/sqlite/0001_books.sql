-- Books, each owned by one user. No uniqueness on name or author: two users
-- may own the same title and an author may write many books.
create table books (
    -- autoincrement: an id is never reused after a delete, so a stale id
    -- can never reach someone's new book.
    id integer primary key autoincrement,
    -- The owner's public_id (the token's `sub`); users live in auth-service.
    owner_id text not null,
    name text not null,
    author text not null,
    publisher text not null,
    -- The tutorial's "book_prize" (a price).
    book_prize integer not null check (book_prize >= 0),
    -- Unix time in microseconds.
    created_at integer not null,
    updated_at integer not null
);

-- Every query filters by owner and pages by id.
create index books_owner_id_id_idx on books (owner_id, id);
