//! The store contract suites' instantiation: each generic test fn once per
//! backend (quickwit's `metastore_test_suite!`).

/// Runs each test fn of a store contract suite against a fresh SQLite and a
/// fresh PostgreSQL database (skipped without a server, see
/// [`TestDatabase::postgres`](crate::TestDatabase::postgres)), as
/// `sqlite::TEST` and `postgres::TEST`.
///
/// `connect` opens the store from a database URL; `|store| ARG` is what each
/// test fn is called with, given the opened store.
#[macro_export]
macro_rules! store_contract {
    (connect: $connect:expr, call: |$store:ident| $argument:expr; $($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let database = $crate::TestDatabase::sqlite();
                    let $store = $connect(&database.url).await.unwrap();
                    super::$test($argument).await;
                    $store.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    let Some(database) = $crate::TestDatabase::postgres().await else { return };
                    let $store = $connect(&database.url).await.unwrap();
                    super::$test($argument).await;
                    $store.close().await;
                    database.cleanup().await;
                }
            )*
        }
    };
}
