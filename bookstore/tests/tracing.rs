//! One trace across processes: the gateway, auth-service and books-service
//! run as separate processes exporting spans over OTLP/HTTP to a collector in
//! this test; a REST request with a known `traceparent` yields spans from
//! all three in that trace, each service's request span a child of the
//! gateway's, and JSON log lines carrying the request id and trace id.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns, too

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use bookstore_proto::prost::Message as _;
use bookstore_testing::eventually;
use bookstore_testing::net::free_addr;
use bookstore_testing::processes::{Process, auth_service_env, books_service_env, wait_ready};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;

const BIN: &str = env!("CARGO_BIN_EXE_bookstore");
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

/// A span as the collector received it.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
}

/// An OTLP/HTTP (protobuf) trace collector on an ephemeral port.
async fn start_collector() -> (SocketAddr, Arc<Mutex<Vec<ReceivedSpan>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&received);
    let router = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let sink = Arc::clone(&sink);
            async move {
                let export = ExportTraceServiceRequest::decode(body).unwrap();
                for resource_spans in export.resource_spans {
                    let service = resource_spans
                        .resource
                        .iter()
                        .flat_map(|resource| &resource.attributes)
                        .find(|attribute| attribute.key == "service.name")
                        .and_then(|attribute| match attribute.value.as_ref()?.value.as_ref()? {
                            Value::StringValue(name) => Some(name.clone()),
                            _ => None,
                        })
                        .unwrap_or_default();
                    for span in resource_spans.scope_spans.into_iter().flat_map(|scope| scope.spans) {
                        sink.lock().unwrap().push(ReceivedSpan {
                            service: service.clone(),
                            name: span.name,
                            trace_id: hex::encode(&span.trace_id),
                            span_id: hex::encode(&span.span_id),
                            parent_span_id: hex::encode(&span.parent_span_id),
                        });
                    }
                }
                ([("content-type", "application/x-protobuf")], ExportTraceServiceResponse::default().encode_to_vec())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (addr, received)
}

/// One service process with JSON logs and OTLP export; killed when dropped.
fn start(dir: &Path, command: &str, collector: SocketAddr, env: &[(&str, String)]) -> Process {
    let mut env = env.to_vec();
    env.extend([
        ("RUST_LOG", "info".to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}")),
        ("OTEL_SERVICE_NAME", command.to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
    ]);
    Process::start(BIN, dir, command, &[command.to_owned()], &env)
}

/// The JSON log lines of `process` so far.
fn log_lines(process: &Process) -> Vec<serde_json::Value> {
    process
        .log()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traceparent_sent_to_the_gateway_continues_through_both_services() {
    // Arrange: three processes exporting to one collector.
    let (collector, received) = start_collector().await;
    let dir = tempfile::tempdir().unwrap();
    let (auth, books, gateway) = (free_addr(), free_addr(), free_addr());
    let sqlite = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    let processes = [
        start(
            dir.path(),
            "auth-service",
            collector,
            &auth_service_env(auth, &sqlite("auth.db"), &dir.path().join("key.pem")),
        ),
        start(
            dir.path(),
            "books-service",
            collector,
            &books_service_env(books, &sqlite("books.db"), &format!("http://{auth}")),
        ),
        start(
            dir.path(),
            "gateway",
            collector,
            &[
                ("GATEWAY_LISTEN_ADDR", gateway.to_string()),
                ("GATEWAY_AUTH_URL", format!("http://{auth}")),
                ("GATEWAY_BOOKS_URL", format!("http://{books}")),
            ],
        ),
    ];
    let http = reqwest::Client::new();
    let base = format!("http://{gateway}");
    wait_ready(&http, &base, Duration::from_secs(60), || "the stack".to_owned()).await;
    let credentials = serde_json::json!({"name": "traced", "password": "traced-password"});
    assert_eq!(http.post(format!("{base}/register")).json(&credentials).send().await.unwrap().status(), 201);
    let login = http.post(format!("{base}/login")).basic_auth("traced", Some("traced-password")).send().await;
    let token = login.unwrap().json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_owned();

    // Act: one request, with the caller's trace context and request id.
    let listed = http
        .get(format!("{base}/books"))
        .header("x-access-tokens", &token)
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01"))
        .header("x-request-id", "traced-request-1")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);

    // Assert: the gateway's span continues the caller's; books-service's
    // request span is a child of the gateway's.
    let (gateway_span, books_span) = eventually(Duration::from_secs(30), || async {
        let spans: Vec<ReceivedSpan> =
            received.lock().unwrap().iter().filter(|s| s.trace_id == TRACE_ID).cloned().collect();
        let gateway_span = spans.iter().find(|span| span.service == "gateway" && span.name == "http").cloned();
        let books_span = spans.iter().find(|span| span.service == "books-service" && span.name == "grpc").cloned();
        if let (Some(gateway_span), Some(books_span)) = (gateway_span, books_span) {
            return Ok((gateway_span, books_span));
        }
        let all = received.lock().unwrap().clone();
        Err(format!("spans of trace {TRACE_ID} missing; received {all:#?}"))
    })
    .await;
    assert_eq!(gateway_span.parent_span_id, CALLER_SPAN_ID);
    assert_eq!(books_span.parent_span_id, gateway_span.span_id);
    // auth-service's spans of other requests are exported too, in other traces.
    assert!(received.lock().unwrap().iter().any(|span| span.service == "auth-service" && span.name == "grpc"));

    // ... and the JSON log lines of that request carry its ids, in both processes.
    for process in [&processes[2], &processes[1]] {
        let lines = log_lines(process);
        let finished = lines
            .iter()
            .find(|line| {
                line["span"]["request_id"] == "traced-request-1" && line["fields"]["message"] == "request finished"
            })
            .unwrap_or_else(|| panic!("no JSON line of the request in {lines:#?}"));
        assert_eq!(finished["span"]["trace_id"], TRACE_ID, "{finished}");
        // Lines inside nested spans list the request's span too.
        let of_request = lines.iter().filter(|line| line["spans"][0]["request_id"] == "traced-request-1").count();
        assert!(of_request >= 1, "{lines:#?}");
    }
    let auth_lines = log_lines(&processes[0]);
    let nested = auth_lines
        .iter()
        .find(|line| line["fields"]["message"] == "session started")
        .unwrap_or_else(|| panic!("no login line in {auth_lines:#?}"));
    assert_eq!(nested["spans"][0]["name"], "grpc", "{nested}");
    assert!(nested["spans"][0]["request_id"].is_string(), "{nested}");
    assert_eq!(nested["spans"][0]["trace_id"].as_str().map(str::len), Some(32), "{nested}");
}
