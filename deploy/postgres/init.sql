-- One database per service: each service owns its tables and its sqlx
-- migration history (they would collide in one database).
create database bookstore_auth owner bookstore;
create database bookstore_books owner bookstore;
