//! The `BookStore` contract, run against every backend: SQLite always,
//! PostgreSQL when a server is reachable (and always in CI).

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns, too

use std::collections::HashSet;
use std::sync::Arc;

use books_service::store::testing::{book, id, patch};
use books_service::store::{BookStore, OwnedBook};

const NOW: i64 = 1_700_000_000_000_000;

async fn created_books_are_scoped_to_their_owner(store: Arc<dyn BookStore>) {
    let created = store.create_book("alice", book("Dune", "Herbert", 250), NOW).await.unwrap();
    assert_eq!((created.name.as_str(), created.book_prize), ("Dune", 250));
    let exported = store.export_books(created.id - 1, 1).await.unwrap();
    assert_eq!(exported, [OwnedBook { book: created.clone(), owner_id: "alice".into() }], "an export names the owner");
    assert_eq!(store.get_book("alice", id(created.id)).await.unwrap(), Some(created.clone()));
    assert_eq!(store.get_book("mallory", id(created.id)).await.unwrap(), None);
    assert!(store.list_books("mallory", 0, 10).await.unwrap().is_empty());
    assert!(!store.delete_book("mallory", id(created.id)).await.unwrap());
    let stolen = store.update_book("mallory", id(created.id), patch(Some("Mine"), None), NOW + 1).await.unwrap();
    assert_eq!(stolen, None);
    assert_eq!(store.get_book("alice", id(created.id)).await.unwrap(), Some(created));
}

async fn same_title_and_author_are_allowed_many_times(store: Arc<dyn BookStore>) {
    for owner in ["alice", "bob", "alice"] {
        store.create_book(owner, book("Dune", "Herbert", 1), NOW).await.unwrap();
    }
    assert_eq!(store.list_books("alice", 0, 10).await.unwrap().len(), 2);
}

async fn updates_change_only_the_fields_set(store: Arc<dyn BookStore>) {
    let created = store.create_book("alice", book("Dune", "Herbert", 250), NOW).await.unwrap();
    let updated = store.update_book("alice", id(created.id), patch(None, Some(300)), NOW + 5).await.unwrap().unwrap();
    assert_eq!((updated.name.as_str(), updated.author.as_str(), updated.book_prize), ("Dune", "Herbert", 300));
    assert_eq!((updated.created_at, updated.updated_at), (NOW, NOW + 5));
}

async fn deleting_an_owners_books_leaves_the_others_and_may_be_repeated(store: Arc<dyn BookStore>) {
    for owner in ["gone", "gone", "kept"] {
        store.create_book(owner, book("Dune", "Herbert", 1), NOW).await.unwrap();
    }
    assert_eq!(store.delete_books_of_owner("gone").await.unwrap(), 2);
    assert_eq!(store.delete_books_of_owner("gone").await.unwrap(), 0);
    assert!(store.list_books("gone", 0, 10).await.unwrap().is_empty());
    assert_eq!(store.list_books("kept", 0, 10).await.unwrap().len(), 1);
}

async fn owners_are_listed_once_each_in_order_after_a_cursor(store: Arc<dyn BookStore>) {
    for owner in ["carol", "alice", "bob", "alice", "dave", "carol"] {
        store.create_book(owner, book("Dune", "Herbert", 1), NOW).await.unwrap();
    }
    assert_eq!(store.list_owners("", 2).await.unwrap(), ["alice", "bob"]);
    assert_eq!(store.list_owners("bob", 10).await.unwrap(), ["carol", "dave"]);
    assert!(store.list_owners("dave", 10).await.unwrap().is_empty());
    store.delete_books_of_owner("carol").await.unwrap();
    assert_eq!(store.list_owners("", 10).await.unwrap(), ["alice", "bob", "dave"]);
}

async fn deleted_ids_are_never_reused(store: Arc<dyn BookStore>) {
    let first = store.create_book("alice", book("One", "A", 1), NOW).await.unwrap().id;
    assert!(store.delete_book("alice", id(first)).await.unwrap());
    assert!(!store.delete_book("alice", id(first)).await.unwrap());
    let second = store.create_book("alice", book("Two", "A", 1), NOW).await.unwrap().id;
    assert!(second > first);
}

/// Walks pages while other tasks insert and delete: every book that existed
/// before the walk and was not deleted is seen exactly once.
async fn keyset_pages_stay_correct_under_concurrent_writes(store: Arc<dyn BookStore>) {
    let mut before = Vec::new();
    for i in 0..60 {
        before.push(store.create_book("alice", book(&format!("B{i}"), "A", i), NOW).await.unwrap().id);
    }
    let doomed: HashSet<i64> = before.iter().copied().filter(|id| id % 3 == 0).collect();
    let writer = {
        let (store, doomed) = (Arc::clone(&store), doomed.clone());
        tokio::spawn(async move {
            for (i, book_id) in doomed.into_iter().enumerate() {
                store.delete_book("alice", id(book_id)).await.unwrap();
                store.create_book("alice", book(&format!("New{i}"), "A", 1), NOW).await.unwrap();
            }
        })
    };
    let (mut seen, mut after) = (Vec::new(), 0);
    loop {
        let page = store.list_books("alice", after, 7).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.id;
        seen.extend(page.iter().map(|book| book.id));
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    let unique: HashSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no book is listed twice");
    assert!(seen.windows(2).all(|pair| pair[0] < pair[1]), "ids ascend");
    for book_id in before.iter().filter(|book_id| !doomed.contains(book_id)) {
        assert!(unique.contains(book_id), "surviving book {book_id} was skipped");
    }
}

bookstore_testing::store_contract!(
    connect: books_service::store::connect,
    call: |store| store.clone();
    created_books_are_scoped_to_their_owner,
    same_title_and_author_are_allowed_many_times,
    updates_change_only_the_fields_set,
    deleted_ids_are_never_reused,
    keyset_pages_stay_correct_under_concurrent_writes,
    deleting_an_owners_books_leaves_the_others_and_may_be_repeated,
    owners_are_listed_once_each_in_order_after_a_cursor,
);
