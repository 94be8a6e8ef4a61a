//! Logs and traces: the global `tracing` subscriber (text or JSON lines),
//! W3C trace context (`traceparent`) continued from callers and passed on to
//! callees, and optional OTLP export of spans configured by the standard
//! `OTEL_*` variables.

use std::io::IsTerminal as _;
use std::sync::OnceLock;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The variable that picks the log format: `text` (default) or `json`.
pub const LOG_FORMAT_VAR: &str = "LOG_FORMAT";

static TRACER_PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Installs the global `tracing` subscriber: lines on stderr, human-readable
/// or, with `LOG_FORMAT=json`, one JSON object per line (with the fields of
/// the enclosing spans, so a request's lines carry `request_id` and
/// `trace_id`), filtered by `RUST_LOG` or
/// else by `default_filter` (e.g. `"info"`). Every span also gets an
/// OpenTelemetry trace context; spans are exported over OTLP/HTTP (protobuf)
/// when `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
/// or `OTEL_TRACES_EXPORTER=otlp` is set (and `OTEL_SDK_DISABLED` is not
/// `true`), as service `OTEL_SERVICE_NAME` (default: the binary's name).
/// Calling it again (tests, the all-in-one launcher) is harmless; call
/// [`shutdown_tracing`] before exiting to flush spans not yet exported.
pub fn init_tracing(default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let format = std::env::var(LOG_FORMAT_VAR).unwrap_or_default();
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if format.eq_ignore_ascii_case("json") {
        // `span`: the innermost span; `spans`: all of them, outermost (the
        // request's, with `request_id` and `trace_id`) first.
        fmt.json().with_current_span(true).with_span_list(true).boxed()
    } else {
        fmt.with_ansi(std::io::stderr().is_terminal()).boxed()
    };
    let (provider, export_error) = tracer_provider();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("bookstore"));
    let installed = tracing_subscriber::registry().with(filter).with(fmt).with(otel).try_init().is_ok();
    if !installed {
        return; // Already set up, by an earlier call in this process.
    }
    let _first = TRACER_PROVIDER.set(provider);
    if !format.is_empty() && !["json", "text"].iter().any(|known| format.eq_ignore_ascii_case(known)) {
        tracing::warn!(value = %format, "unknown {LOG_FORMAT_VAR}: expected `text` or `json`; using text");
    }
    if let Some(error) = export_error {
        tracing::error!(%error, "cannot set up OTLP span export; spans are not exported");
    }
}

/// Exports the spans not yet exported (when OTLP export is on) and stops
/// exporting. For the end of `main`.
pub fn shutdown_tracing() {
    if let Some(provider) = TRACER_PROVIDER.get()
        && let Err(error) = provider.shutdown()
    {
        tracing::warn!(%error, "cannot flush the spans");
    }
}

/// Whether the `OTEL_*` variables ask for OTLP span export.
fn otlp_export_wanted() -> bool {
    let var = |name| std::env::var(name).ok().filter(|value| !value.trim().is_empty());
    if var("OTEL_SDK_DISABLED").is_some_and(|value| value.eq_ignore_ascii_case("true")) {
        return false;
    }
    match var("OTEL_TRACES_EXPORTER") {
        Some(exporters) => exporters.split(',').any(|exporter| exporter.trim() == "otlp"),
        None => var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() || var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some(),
    }
}

/// A tracer provider that gives every span a trace context, exporting
/// them only when asked to; the error, if export was asked for and cannot
/// be set up.
fn tracer_provider() -> (SdkTracerProvider, Option<String>) {
    use opentelemetry_otlp::{Protocol, WithExportConfig as _};

    let builder = SdkTracerProvider::builder();
    if !otlp_export_wanted() {
        return (builder.build(), None);
    }
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        let binary = std::env::current_exe().ok().and_then(|path| path.file_stem()?.to_str().map(str::to_owned));
        resource = resource.with_service_name(binary.unwrap_or_else(|| "bookstore".to_owned()));
    }
    // Only OTLP over HTTP with protobuf bodies is built in (no second gRPC
    // stack for exporting); the endpoint, headers, timeout and compression
    // come from the OTEL_EXPORTER_OTLP_* variables.
    let protocol = std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_default();
    if !protocol.is_empty() && protocol != "http/protobuf" {
        let error = format!("OTLP protocol {protocol:?} is not supported, only http/protobuf");
        return (builder.build(), Some(error));
    }
    match opentelemetry_otlp::SpanExporter::builder().with_http().with_protocol(Protocol::HttpBinary).build() {
        Ok(exporter) => (builder.with_batch_exporter(exporter).with_resource(resource.build()).build(), None),
        Err(error) => (builder.build(), Some(error.to_string())),
    }
}

/// Makes the trace context in `headers` (a `traceparent` from the caller),
/// if any, the parent of `span`, and records the span's trace id in its
/// `trace_id` field (declare it `tracing::field::Empty`). Without one the
/// span starts a new trace.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        // Fails only when the OpenTelemetry layer is not installed.
        let _ = span.set_parent(parent);
    }
    let trace_id = span.context().span().span_context().trace_id();
    if trace_id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }
}

/// The W3C `traceparent` (and `tracestate`) of the current span, to send
/// with a call so that the callee continues this trace.
#[must_use]
pub fn current_trace_headers() -> Vec<(&'static str, String)> {
    let mut headers = TraceHeaders(Vec::new());
    TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut headers);
    headers.0
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct TraceHeaders(Vec<(&'static str, String)>);

impl Injector for TraceHeaders {
    fn set(&mut self, key: &str, value: String) {
        let key = match key {
            "traceparent" => "traceparent",
            "tracestate" => "tracestate",
            _ => return,
        };
        if !value.is_empty() {
            self.0.push((key, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incoming_traceparent_becomes_the_parent_and_is_passed_on() {
        init_tracing("info");
        let mut headers = http::HeaderMap::new();
        headers.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
        let span = tracing::info_span!("request", trace_id = tracing::field::Empty);
        continue_trace(&span, &headers);
        let sent = span.in_scope(current_trace_headers);
        let (name, traceparent) = &sent[0];
        assert_eq!(*name, "traceparent");
        assert!(traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{traceparent}");
        assert!(!traceparent.contains("00f067aa0ba902b7"), "the callee's parent is this span: {traceparent}");
    }

    #[test]
    fn without_a_traceparent_a_new_trace_starts() {
        init_tracing("info");
        let span = tracing::info_span!("request", trace_id = tracing::field::Empty);
        continue_trace(&span, &http::HeaderMap::new());
        let sent = span.in_scope(current_trace_headers);
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert!(!sent[0].1.starts_with("00-00000000000000000000000000000000"), "{sent:?}");
    }
}
