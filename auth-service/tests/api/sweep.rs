//! The periodic sweep runs while the service serves and stops with it.
//! (What it deletes is proved by the store contract suite, which can pass
//! the future as `now`.)

use std::time::Duration;

use auth_service::App;
use bookstore_testing::eventually;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::settings;

async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    text
}

#[tokio::test]
async fn the_sweep_runs_while_serving_and_stops_with_the_server() {
    // Arrange
    if std::env::var_os("TEST_LOG").is_some() {
        bookstore_runtime::init_tracing("info");
    }
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(&dir);
    settings.sweep_interval_secs = 1;
    settings.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    let app = App::build(&settings).await.unwrap();
    let metrics = app.server().metrics_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();

    // Act
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));

    // Assert: a sweep has run (its first within one interval) ...
    eventually(Duration::from_secs(10), || async {
        let scraped = scrape(metrics).await;
        if scraped.contains(r#"db_rows_swept_total{table="sessions"} 0"#) {
            Ok(())
        } else {
            Err(format!("no sweep yet: {scraped}"))
        }
    })
    .await;
    // ... and the server, sweep included, stops when asked.
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server).await.unwrap().unwrap().unwrap();
}
