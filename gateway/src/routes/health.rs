//! `GET /healthz` (the gateway runs) and `GET /readyz` (both upstreams
//! answer their gRPC health checks).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Call;

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(examples(json!({"status": "ok"})))]
pub struct StatusBody {
    /// Always `ok`.
    status: &'static str,
}

/// Liveness: answers as long as the gateway serves HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = OK, description = "The gateway is running", body = StatusBody)),
)]
pub async fn healthz() -> Json<StatusBody> {
    Json(StatusBody { status: "ok" })
}

/// Readiness: 200 when auth-service and books-service both report SERVING
/// within a second, else 503 naming the ones that do not.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = OK, description = "auth-service and books-service both report SERVING", body = StatusBody),
        (status = SERVICE_UNAVAILABLE, description = "An upstream is not serving (`detail` says why), or the \
            gateway is overloaded",
            body = ErrorBody,
            example = json!({"message": "not ready: books-service not serving", "detail": "books-service: status NOT_SERVING"})),
    ),
)]
pub async fn readyz(State(state): State<AppState>, call: Call) -> Result<Json<StatusBody>, ApiError> {
    let not_ready = state.upstreams.not_ready(|check| call.request(check)).await;
    if not_ready.is_empty() {
        return Ok(Json(StatusBody { status: "ok" }));
    }
    let names: Vec<&str> = not_ready.iter().map(|(name, _)| *name).collect();
    let reasons: Vec<String> = not_ready.iter().map(|(name, reason)| format!("{name}: {reason}")).collect();
    tracing::warn!(reasons = %reasons.join("; "), "not ready");
    Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {} not serving", names.join(" and ")))
        .with_detail(reasons.join("; ")))
}
