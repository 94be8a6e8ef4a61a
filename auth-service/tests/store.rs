//! The `UserStore` contract, run against every backend: SQLite always,
//! PostgreSQL when a server is reachable (and always in CI).

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns, too

use auth_service::Error;
use auth_service::store::{NewSession, NewUser, NextRefreshToken, Rotation, UserStore};
use bookstore_testing::TestDatabase;

fn new_user(name: &str) -> NewUser {
    NewUser {
        public_id: uuid::Uuid::new_v4().to_string(),
        name: name.to_owned(),
        name_key: name.to_lowercase(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        admin: false,
        created_at: 1_700_000_000_000_000,
    }
}

async fn created_users_are_found_by_name_key_and_public_id(store: &dyn UserStore) {
    let created = store.create_user(new_user("Alice")).await.unwrap();
    assert!(created.id > 0);
    let by_name = store.find_user_by_name_key("alice").await.unwrap().unwrap();
    assert_eq!(by_name, created);
    let by_id = store.find_user_by_public_id(&created.public_id).await.unwrap().unwrap();
    assert_eq!(by_id, created);
    assert!(store.find_user_by_name_key("bob").await.unwrap().is_none());
}

async fn a_taken_name_key_is_already_exists(store: &dyn UserStore) {
    store.create_user(new_user("Alice")).await.unwrap();
    let error = store.create_user(new_user("ALICE")).await.unwrap_err();
    assert!(matches!(error, Error::AlreadyExists(_)), "{error:?}");
}

async fn users_list_in_id_order_after_a_cursor(store: &dyn UserStore) {
    let mut ids = Vec::new();
    for name in ["a", "b", "c", "d"] {
        ids.push(store.create_user(new_user(name)).await.unwrap().id);
    }
    let first: Vec<i64> = store.list_users(0, 2).await.unwrap().iter().map(|user| user.id).collect();
    assert_eq!(first, ids[..2]);
    let rest: Vec<i64> = store.list_users(ids[1], 10).await.unwrap().iter().map(|user| user.id).collect();
    assert_eq!(rest, ids[2..]);
}

async fn set_admin_flips_the_flag_or_is_not_found(store: &dyn UserStore) {
    store.create_user(new_user("carol")).await.unwrap();
    assert!(store.set_admin("carol", true).await.unwrap().admin);
    assert!(store.find_user_by_name_key("carol").await.unwrap().unwrap().admin);
    assert!(!store.set_admin("carol", false).await.unwrap().admin);
    assert!(matches!(store.set_admin("nobody", true).await.unwrap_err(), Error::NotFound(_)));
}

const NOW: i64 = 1_700_000_000_000_000;
const LATER: i64 = NOW + 3_600_000_000;

fn new_session(id: &str, user_id: i64, token_hash: &str) -> NewSession {
    NewSession {
        id: id.to_owned(),
        user_id,
        refresh_token_hash: token_hash.to_owned(),
        created_at: NOW,
        refresh_expires_at: LATER,
    }
}

fn next_token(hash: &str, now: i64) -> NextRefreshToken {
    NextRefreshToken { hash: hash.to_owned(), now, expires_at: LATER }
}

async fn a_refresh_token_rotates_once_and_is_then_spent(store: &dyn UserStore) {
    let user = store.create_user(new_user("erin")).await.unwrap();
    store.create_session(new_session("s1", user.id, "h1")).await.unwrap();
    assert_eq!(store.find_active_session_user("s1").await.unwrap(), Some(user.clone()));

    let rotated = store.rotate_refresh_token("h1", next_token("h2", NOW + 1)).await.unwrap();
    assert_eq!(rotated, Rotation::Rotated { session_id: "s1".into(), user: user.clone() });
    let again = store.rotate_refresh_token("h1", next_token("h3", NOW + 2)).await.unwrap();
    assert_eq!(again, Rotation::AlreadySpent { session_id: "s1".into(), rotated_at: NOW + 1 });
    let unknown = store.rotate_refresh_token("nope", next_token("h4", NOW + 2)).await.unwrap();
    assert_eq!(unknown, Rotation::Invalid);
    let expired = store.rotate_refresh_token("h2", next_token("h5", LATER + 1)).await.unwrap();
    assert_eq!(expired, Rotation::Invalid);
    assert!(matches!(
        store.rotate_refresh_token("h2", next_token("h6", NOW + 3)).await.unwrap(),
        Rotation::Rotated { .. }
    ));
    assert_eq!(store.session_of_refresh_token("h1").await.unwrap().as_deref(), Some("s1"));
}

async fn a_revoked_session_refreshes_no_more_and_enters_the_feed(store: &dyn UserStore) {
    let user = store.create_user(new_user("frank")).await.unwrap();
    store.create_session(new_session("s1", user.id, "h1")).await.unwrap();
    store.create_session(new_session("s2", user.id, "h2")).await.unwrap();

    assert!(store.revoke_session("s1", NOW + 10, LATER).await.unwrap());
    assert!(!store.revoke_session("s1", NOW + 11, LATER).await.unwrap(), "ending an ended session");

    assert_eq!(store.rotate_refresh_token("h1", next_token("h3", NOW + 12)).await.unwrap(), Rotation::Invalid);
    assert_eq!(store.find_active_session_user("s1").await.unwrap(), None);
    assert!(store.find_active_session_user("s2").await.unwrap().is_some());
    let feed = store.list_revocations(0, 0, 10).await.unwrap();
    assert_eq!(feed.len(), 1);
    assert_eq!((feed[0].kind.as_str(), feed[0].subject.as_str()), ("session", "s1"));
    assert_eq!((feed[0].revoked_at, feed[0].relevant_until), (NOW + 10, LATER));
    assert!(store.list_revocations(NOW + 11, 0, 10).await.unwrap().is_empty(), "since filters");
    assert!(store.list_revocations(0, feed[0].id, 10).await.unwrap().is_empty(), "cursor pages");
}

async fn a_password_change_ends_every_session_in_one_go(store: &dyn UserStore) {
    let user = store.create_user(new_user("grace")).await.unwrap();
    let other = store.create_user(new_user("heidi")).await.unwrap();
    for (session, hash) in [("g1", "gh1"), ("g2", "gh2")] {
        store.create_session(new_session(session, user.id, hash)).await.unwrap();
    }
    store.create_session(new_session("o1", other.id, "oh1")).await.unwrap();

    let ended = store.change_password(user.id, "$argon2id$new", NOW + 5, LATER).await.unwrap();

    assert_eq!(ended, 2);
    assert_eq!(store.find_user_by_public_id(&user.public_id).await.unwrap().unwrap().password_hash, "$argon2id$new");
    assert_eq!(store.find_active_session_user("g1").await.unwrap(), None);
    assert_eq!(store.find_active_session_user("g2").await.unwrap(), None);
    assert!(store.find_active_session_user("o1").await.unwrap().is_some(), "another user's session stays");
    let mut revoked: Vec<String> =
        store.list_revocations(0, 0, 10).await.unwrap().into_iter().map(|row| row.subject).collect();
    revoked.sort();
    assert_eq!(revoked, ["g1", "g2"]);
    assert_eq!(store.revoke_user_sessions(other.id, NOW + 6, LATER).await.unwrap(), 1);
}

async fn expired_session_revocations_are_purged_but_deleted_users_stay(store: &dyn UserStore) {
    let user = store.create_user(new_user("ivan")).await.unwrap();
    let gone = store.create_user(new_user("judy")).await.unwrap();
    store.create_session(new_session("s1", user.id, "h1")).await.unwrap();
    store.create_session(new_session("s2", user.id, "h2")).await.unwrap();
    store.revoke_session("s1", NOW, NOW + 10).await.unwrap();
    assert!(store.delete_user(gone.id, NOW, NOW + 10).await.unwrap());

    // A later revocation purges the one whose tokens have all expired.
    store.revoke_session("s2", NOW + 20, LATER).await.unwrap();

    let feed: Vec<(String, String)> =
        store.list_revocations(0, 0, 10).await.unwrap().into_iter().map(|row| (row.kind, row.subject)).collect();
    assert_eq!(feed, [("user".to_owned(), gone.public_id.clone()), ("session".to_owned(), "s2".to_owned())]);
}

async fn deleting_a_user_removes_sessions_and_frees_the_name(store: &dyn UserStore) {
    let user = store.create_user(new_user("kate")).await.unwrap();
    store.create_session(new_session("s1", user.id, "h1")).await.unwrap();

    assert!(store.delete_user(user.id, NOW, LATER).await.unwrap());
    assert!(!store.delete_user(user.id, NOW, LATER).await.unwrap(), "already gone");

    assert_eq!(store.find_user_by_name_key("kate").await.unwrap(), None);
    assert_eq!(store.find_active_session_user("s1").await.unwrap(), None);
    assert_eq!(store.session_of_refresh_token("h1").await.unwrap(), None);
    assert_eq!(store.rotate_refresh_token("h1", next_token("h2", NOW + 1)).await.unwrap(), Rotation::Invalid);
    let feed = store.list_revocations(0, 0, 10).await.unwrap();
    assert_eq!(feed.len(), 1);
    assert_eq!((feed[0].kind.as_str(), feed[0].subject.as_str()), ("user", user.public_id.as_str()));
    let again = store.create_user(new_user("kate")).await.unwrap();
    assert_ne!(again.public_id, user.public_id);
}

async fn a_rehash_replaces_only_the_hash_it_read(store: &dyn UserStore) {
    let user = store.create_user(new_user("leo")).await.unwrap();
    assert!(!store.update_password_hash(user.id, "$other", "$rehashed").await.unwrap());
    assert!(store.update_password_hash(user.id, &user.password_hash, "$rehashed").await.unwrap());
    assert_eq!(store.find_user_by_name_key("leo").await.unwrap().unwrap().password_hash, "$rehashed");
}

macro_rules! user_store_contract {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let database = bookstore_testing::TestDatabase::sqlite();
                    let store = auth_service::store::connect(&database.url).await.unwrap();
                    super::$test(&*store).await;
                    store.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    let Some(database) = super::TestDatabase::postgres().await else { return };
                    let store = auth_service::store::connect(&database.url).await.unwrap();
                    super::$test(&*store).await;
                    store.close().await;
                    database.cleanup().await;
                }
            )*
        }
    };
}

user_store_contract!(
    created_users_are_found_by_name_key_and_public_id,
    a_taken_name_key_is_already_exists,
    users_list_in_id_order_after_a_cursor,
    set_admin_flips_the_flag_or_is_not_found,
    a_refresh_token_rotates_once_and_is_then_spent,
    a_revoked_session_refreshes_no_more_and_enters_the_feed,
    a_password_change_ends_every_session_in_one_go,
    expired_session_revocations_are_purged_but_deleted_users_stay,
    deleting_a_user_removes_sessions_and_frees_the_name,
    a_rehash_replaces_only_the_hash_it_read,
);
