//! An upstream that vanishes mid-call (its process killed, its connection
//! reset) is 503, as an unreachable one is, never 500.

use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::AsyncReadExt as _;

use crate::helpers::{book, json_of, spawn_app_with};

#[tokio::test]
async fn an_upstream_that_drops_the_connection_mid_call_gives_503() {
    // Arrange: books-service's address takes the call, reads all of it, and
    // closes the connection without answering, as a killed process's does.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let vanishing = tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut frames = vec![0; 64 * 1024];
            // Until the client has sent everything it will send unanswered.
            while let Ok(Ok(read)) = tokio::time::timeout(Duration::from_millis(300), socket.read(&mut frames)).await {
                if read == 0 {
                    break;
                }
            }
            drop(socket);
        }
    });
    let app = spawn_app_with(|settings| settings.books_url = format!("http://{addr}")).await;
    let token = app.new_user("alice").await;

    // Act: a write, which the gateway never repeats.
    let (status, body) = json_of(app.create_book(&token, &book("Dune", "Frank Herbert")).await).await;

    // Assert
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    vanishing.abort();
}
