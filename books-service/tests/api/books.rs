use std::collections::HashSet;

use bookstore_proto::books::v1::{
    CreateBookRequest, CreateBookResponse, DeleteBookRequest, GetBookRequest, ListBooksRequest, UpdateBookRequest,
};
use bookstore_proto::codec::{ProtoCodec, SliceDecoder};
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::helpers::{self, spawn_app, spawn_app_with_user, with_token};

fn book(name: &str, author: &str, prize: i64) -> CreateBookRequest {
    CreateBookRequest { name: name.into(), author: author.into(), publisher: "Penguin".into(), book_prize: prize }
}

#[tokio::test]
async fn book_lifecycle_create_get_list_update_delete() {
    let (app, token) = spawn_app_with_user("alice").await;
    let mut books = app.books_client.clone();

    let created = books.create_book(with_token(&token, book("Dune", "Frank Herbert", 250))).await.unwrap();
    let created = created.into_inner().book.unwrap();
    assert!(created.id > 0);
    assert_eq!((created.name.as_str(), created.author.as_str(), created.book_prize), ("Dune", "Frank Herbert", 250));
    assert!(created.created_at.is_some() && created.updated_at.is_some());

    let fetched = books.get_book(with_token(&token, GetBookRequest { id: created.id })).await.unwrap();
    assert_eq!(fetched.into_inner().book.unwrap(), created);

    let listed = books.list_books(with_token(&token, ListBooksRequest::default())).await.unwrap().into_inner();
    assert_eq!(listed.books, vec![created.clone()]);
    assert!(listed.next_page_token.is_empty());

    let update = UpdateBookRequest { id: created.id, book_prize: Some(300), ..Default::default() };
    let updated = books.update_book(with_token(&token, update)).await.unwrap().into_inner().book.unwrap();
    assert_eq!(updated.book_prize, 300);
    assert_eq!((updated.name.as_str(), updated.author.as_str()), ("Dune", "Frank Herbert"), "only set fields change");

    books.delete_book(with_token(&token, DeleteBookRequest { id: created.id })).await.unwrap();
    let gone = books.get_book(with_token(&token, GetBookRequest { id: created.id })).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let again = books.delete_book(with_token(&token, DeleteBookRequest { id: created.id })).await.unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
}

#[tokio::test]
async fn another_users_book_is_not_found_and_stays_intact() {
    let app = spawn_app().await;
    let (alice, mallory) = (app.user_token("alice").await, app.user_token("mallory").await);
    let id = app.create_book(&alice, "Emma", "Jane Austen").await;
    let mut books = app.books_client.clone();

    let get = books.get_book(with_token(&mallory, GetBookRequest { id })).await.unwrap_err();
    let update = UpdateBookRequest { id, name: Some("Mine now".into()), ..Default::default() };
    let update = books.update_book(with_token(&mallory, update)).await.unwrap_err();
    let delete = books.delete_book(with_token(&mallory, DeleteBookRequest { id })).await.unwrap_err();
    for status in [get, update, delete] {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    let listed = books.list_books(with_token(&mallory, ListBooksRequest::default())).await.unwrap();
    assert!(listed.into_inner().books.is_empty());

    let still = books.get_book(with_token(&alice, GetBookRequest { id })).await.unwrap().into_inner().book.unwrap();
    assert_eq!(still.name, "Emma");
}

#[tokio::test]
async fn bad_fields_are_invalid_argument_naming_the_field() {
    let (app, token) = spawn_app_with_user("bob").await;
    let mut books = app.books_client.clone();
    let cases = [
        (book("", "A", 1), "name"),
        (book("   ", "A", 1), "name"),
        (book(&"x".repeat(51), "A", 1), "name"),
        (book("N", "", 1), "author"),
        (CreateBookRequest { publisher: String::new(), ..book("N", "A", 1) }, "publisher"),
        (book("N", "A", -5), "book_prize"),
    ];
    for (request, field) in cases {
        let status = books.create_book(with_token(&token, request)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().starts_with(field), "{field}: {}", status.message());
        let violations = status.get_details_bad_request().expect("a BadRequest detail").field_violations;
        assert_eq!(violations[0].field, field, "the detail names the field");
    }
    for id in [0, -1] {
        let status = books.get_book(with_token(&token, GetBookRequest { id })).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
    }
    let bad_page = ListBooksRequest { page_size: 0, page_token: "not-a-token".into() };
    assert_eq!(books.list_books(with_token(&token, bad_page)).await.unwrap_err().code(), Code::InvalidArgument);
    let listed = books.list_books(with_token(&token, ListBooksRequest::default())).await.unwrap();
    assert!(listed.into_inner().books.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn fifty_character_names_count_characters_not_bytes() {
    let (app, token) = spawn_app_with_user("ivan").await;
    let name = "Ж".repeat(50);
    let created = app.books_client.clone().create_book(with_token(&token, book(&name, "Толстой 📚", 0))).await.unwrap();
    assert_eq!(created.into_inner().book.unwrap().name, name);
}

#[tokio::test]
async fn two_users_may_own_the_same_title_and_an_author_many_books() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user_token("alice").await, app.user_token("bob").await);
    app.create_book(&alice, "Dune", "Frank Herbert").await;
    app.create_book(&bob, "Dune", "Frank Herbert").await;
    app.create_book(&alice, "Dune Messiah", "Frank Herbert").await;
    let listed = app.books_client.clone().list_books(with_token(&alice, ListBooksRequest::default())).await;
    assert_eq!(listed.unwrap().into_inner().books.len(), 2);
}

#[tokio::test]
async fn ids_are_never_reused_after_a_delete() {
    let (app, token) = spawn_app_with_user("carol").await;
    let first = app.create_book(&token, "One", "A").await;
    app.books_client.clone().delete_book(with_token(&token, DeleteBookRequest { id: first })).await.unwrap();
    let second = app.create_book(&token, "Two", "A").await;
    assert!(second > first, "{second} must be a new id after {first}");
}

#[tokio::test]
async fn pages_walk_every_book_exactly_once() {
    let (app, token) = spawn_app_with_user("dave").await;
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(app.create_book(&token, &format!("Book {i}"), "A").await);
    }
    let (mut seen, mut page_token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let request = ListBooksRequest { page_size: 3, page_token: page_token.clone() };
        let page = app.books_client.clone().list_books(with_token(&token, request)).await.unwrap().into_inner();
        assert!(page.books.len() <= 3);
        seen.extend(page.books.iter().map(|book| book.id));
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(seen, created);
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn parallel_creates_by_several_users_are_each_listed_exactly_once() {
    let app = spawn_app().await;
    const USERS: usize = 4;
    const BOOKS_EACH: usize = 40;
    let mut tokens = Vec::new();
    for i in 0..USERS {
        tokens.push(app.user_token(&format!("writer{i}")).await);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (user, token) in tokens.iter().enumerate() {
        for i in 0..BOOKS_EACH {
            let (mut books, token) = (app.books_client.clone(), token.clone());
            tasks.spawn(async move {
                let request = book(&format!("Book {user}-{i}"), "Same Author", 1);
                let created = books.create_book(with_token(&token, request)).await.unwrap();
                (user, created.into_inner().book.unwrap().id)
            });
        }
    }
    let mut acknowledged = vec![HashSet::new(); USERS];
    while let Some(result) = tasks.join_next().await {
        let (user, id) = result.unwrap();
        assert!(acknowledged[user].insert(id), "id {id} acknowledged twice");
    }
    for (user, token) in tokens.iter().enumerate() {
        let request = ListBooksRequest { page_size: 1000, page_token: String::new() };
        let listed = app.books_client.clone().list_books(with_token(token, request)).await.unwrap().into_inner();
        let ids: Vec<i64> = listed.books.iter().map(|book| book.id).collect();
        let unique: HashSet<i64> = ids.iter().copied().collect();
        assert_eq!(ids.len(), unique.len(), "a book is listed twice");
        assert_eq!(unique, acknowledged[user], "user {user} lists exactly the acknowledged books");
        assert_eq!(ids.len(), BOOKS_EACH);
    }
}

#[tokio::test]
async fn acknowledged_books_survive_a_restart() {
    let (mut app, token) = spawn_app_with_user("erin").await;
    let id = app.create_book(&token, "Persist", "A").await;
    app.books.stop().await;
    app.books = crate::helpers::start_books(&app.dir, app.auth.addr).await;
    let mut books = bookstore_proto::books::v1::books_service_client::BooksServiceClient::new(crate::helpers::channel(
        app.books.addr,
    ));
    let book = books.get_book(with_token(&token, GetBookRequest { id })).await.unwrap().into_inner().book.unwrap();
    assert_eq!(book.name, "Persist");
}

/// Sends its bytes as the message, whatever they are.
#[derive(Clone, Copy, Default)]
struct RawBytes;

impl tonic::codec::Encoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Codec for RawBytes {
    type Encode = Vec<u8>;
    type Decode = CreateBookResponse;
    type Encoder = Self;
    type Decoder = SliceDecoder<CreateBookResponse>;

    fn encoder(&mut self) -> Self {
        *self
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProtoCodec::<CreateBookResponse, CreateBookResponse>::default().decoder()
    }
}

#[tokio::test]
async fn malformed_messages_are_internal_naming_the_field_and_store_nothing() {
    let (app, token) = spawn_app_with_user("mallory").await;
    let mut grpc = tonic::client::Grpc::new(helpers::channel(app.books.addr));
    let path = http::uri::PathAndQuery::from_static("/bookstore.books.v1.BooksService/CreateBook");
    let cases: [(&[u8], &str); 3] = [
        // name = 1 holds two bytes that are not UTF-8.
        (&[0x0a, 0x02, 0xff, 0xfe], "CreateBookRequest.name: invalid string value: data is not UTF-8 encoded"),
        // name = 1 announces five bytes and has one.
        (&[0x0a, 0x05, b'a'], "CreateBookRequest.name: buffer underflow"),
        // book_prize = 4 is a varint, sent as a length-delimited field.
        (&[0x22, 0x01, 0x01], "CreateBookRequest.book_prize: invalid wire type: LengthDelimited (expected Varint)"),
    ];
    for (message, error) in cases {
        grpc.ready().await.unwrap();
        let status = grpc.unary(with_token(&token, message.to_vec()), path.clone(), RawBytes).await.unwrap_err();
        assert_eq!(status.code(), Code::Internal, "{message:x?}: {status:?}");
        assert!(status.message().contains(error), "{message:x?}: {}", status.message());
    }
    let listed = app.books_client.clone().list_books(with_token(&token, ListBooksRequest::default())).await.unwrap();
    assert!(listed.into_inner().books.is_empty(), "nothing was stored");
}
