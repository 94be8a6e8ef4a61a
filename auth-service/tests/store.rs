//! The `UserStore` contract, run against every backend: SQLite always,
//! PostgreSQL when a server is reachable (and always in CI).

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns, too

use auth_service::Error;
use auth_service::store::{NewUser, UserStore};
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
);
