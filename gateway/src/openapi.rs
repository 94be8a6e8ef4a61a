//! The OpenAPI 3.1 document of the REST API, served at `/openapi.json`, and
//! the Swagger UI page at `/docs`, both from the binary (no CDN).
//!
//! Each handler documents itself with `#[utoipa::path]`, and `routes.rs`
//! registers handlers only through `utoipa_axum::routes!`, which takes the
//! path and method from that attribute: a route is served if and only if it
//! is documented. What many routes share is added here, in one place, rather
//! than on each handler: what every upstream call may answer (500, 503, 504),
//! 401 on the routes that take a token, 413 and 415 on those that take a
//! JSON body.

use axum::Router;
use axum::http::StatusCode;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Required, ResponseBuilder};
use utoipa::{Modify, OpenApi as _};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::error::TOKEN_MISSING;
use crate::extract::NOT_JSON;

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/openapi.json";
/// Where the Swagger UI page is served.
pub const DOCS_PATH: &str = "/docs";

/// Security scheme: `Authorization: Bearer <token>`.
pub const BEARER: &str = "bearer";
/// Security scheme: the tutorial's `x-access-tokens: <token>` header.
pub const ACCESS_TOKENS_HEADER: &str = "x-access-tokens";
/// Security scheme: HTTP Basic, for `POST /login` only.
pub const BASIC: &str = "basic";

/// Routes that answer without calling an upstream, so the upstream failures
/// are not theirs.
const LOCAL_ROUTES: &[&str] = &["/healthz", "/readyz"];

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Bookstore REST API",
        description = "The Flask JWT tutorial's REST API: register, log in with HTTP Basic for a JWT, \
            then manage your own books. Send the token as `x-access-tokens: <token>` (the tutorial's \
            header) or `Authorization: Bearer <token>`. Every error is JSON `{\"message\": ..}`, \
            sometimes with a `detail`; every response carries an `x-request-id`.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
    ),
    tags(
        (name = "accounts", description = "Registering, logging in, listing users"),
        (name = "books", description = "The caller's own books"),
        (name = "health", description = "Liveness and readiness"),
    ),
    components(schemas(crate::error::ErrorBody)),
    modifiers(&SecuritySchemes),
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("The `token` of `POST /login`, as `Authorization: Bearer <token>`."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            ACCESS_TOKENS_HEADER,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                ACCESS_TOKENS_HEADER,
                "The `token` of `POST /login`, in the tutorial's header.",
            ))),
        );
        components.add_security_scheme(
            BASIC,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("The user's name and password, for `POST /login`."))
                    .build(),
            ),
        );
    }
}

/// The document's skeleton (info, tags, security schemes) before the routes
/// add their paths.
pub fn base() -> OpenApi {
    ApiDoc::openapi()
}

/// Adds what is common to many operations: the middleware's answers (every
/// route), the upstream failures (every route that calls an upstream), 401
/// (every route that takes a token), 413 and 415 (every route that takes a
/// JSON body), the `Retry-After` of 429 and 503, and the `x-request-id` of
/// every response. An operation's own description of a status wins.
pub fn complete(mut openapi: OpenApi) -> OpenApi {
    for (path, item) in &mut openapi.paths.paths {
        let calls_upstream = !LOCAL_ROUTES.contains(&path.as_str());
        for operation in operations(item) {
            if takes_token(operation) {
                add_errors(operation, TOKEN_ERRORS);
            }
            match operation.request_body.as_ref().map(|body| body.required == Some(Required::True)) {
                Some(true) => add_errors(operation, JSON_BODY_ERRORS),
                Some(false) => add_errors(operation, OPTIONAL_JSON_BODY_ERRORS),
                None => {}
            }
            if calls_upstream {
                add_errors(operation, UPSTREAM_FAILURES);
            }
            add_errors(operation, MIDDLEWARE_ERRORS);
            add_headers(operation);
        }
    }
    openapi
}

/// Whether the operation takes an access token (`Authorization: Bearer`
/// or `x-access-tokens`), as opposed to none or HTTP Basic.
fn takes_token(operation: &Operation) -> bool {
    let bearer = SecurityRequirement::new(BEARER, Vec::<String>::new());
    operation.security.iter().flatten().any(|requirement| *requirement == bearer)
}

/// What `Authenticated` answers when the token is missing, and any upstream
/// when it is invalid.
const TOKEN_ERRORS: &[(StatusCode, &str, &str)] =
    &[(StatusCode::UNAUTHORIZED, "The token is missing or invalid", TOKEN_MISSING)];

/// What `AppJson` answers before the handler runs, for a required body.
const JSON_BODY_ERRORS: &[(StatusCode, &str, &str)] =
    &[BODY_TOO_LARGE, (StatusCode::UNSUPPORTED_MEDIA_TYPE, "No `Content-Type: application/json`", NOT_JSON)];

/// The same for an optional body: a request with no `Content-Type` has none.
const OPTIONAL_JSON_BODY_ERRORS: &[(StatusCode, &str, &str)] =
    &[BODY_TOO_LARGE, (StatusCode::UNSUPPORTED_MEDIA_TYPE, "A body that is not `application/json`", NOT_JSON)];

const BODY_TOO_LARGE: (StatusCode, &str, &str) = (
    StatusCode::PAYLOAD_TOO_LARGE,
    "The body is over `GATEWAY_MAX_BODY_BYTES`",
    "Failed to buffer the request body: length limit exceeded",
);

/// What the gateway's middleware may answer on any route.
const MIDDLEWARE_ERRORS: &[(StatusCode, &str, &str)] = &[
    (
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "The request's headers are over `GATEWAY_MAX_HEADER_BYTES`",
        "request headers are 20000 bytes, more than the limit of 16384",
    ),
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "The gateway is overloaded (`GATEWAY_MAX_CONCURRENT_REQUESTS`): retry later",
        "the gateway is overloaded, retry later",
    ),
];

/// What any upstream call may end in.
const UPSTREAM_FAILURES: &[(StatusCode, &str, &str)] = &[
    (
        StatusCode::TOO_MANY_REQUESTS,
        "An upstream service is at its limit of requests in progress: retry later",
        "server is overloaded (1024 requests in progress), retry later",
    ),
    (StatusCode::INTERNAL_SERVER_ERROR, "An upstream service failed (details only in the logs)", "internal error"),
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "auth-service or books-service is unreachable, or the gateway is overloaded: retry later",
        "service unavailable, retry later",
    ),
    (
        StatusCode::GATEWAY_TIMEOUT,
        "An upstream service did not answer in time: retry later",
        "upstream service timed out, retry later",
    ),
];

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch, &mut item.head]
        .into_iter()
        .filter_map(Option::as_mut)
}

/// Adds each error the operation does not document yet (its own
/// description wins).
fn add_errors(operation: &mut Operation, errors: &[(StatusCode, &str, &str)]) {
    for (status, description, message) in errors {
        operation
            .responses
            .responses
            .entry(status.as_u16().to_string())
            .or_insert_with(|| RefOr::T(error_response(description, message)));
    }
}

/// A response with the JSON error body, `message` as its example.
fn error_response(description: &str, message: &str) -> utoipa::openapi::Response {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ErrorBody")))
        .example(Some(serde_json::json!({ "message": message })))
        .build();
    ResponseBuilder::new().description(description).content("application/json", content).build()
}

fn add_headers(operation: &mut Operation) {
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let request_id = HeaderBuilder::new()
        .schema(string())
        .description(Some("The request's id: the caller's own `x-request-id`, else a new UUID"))
        .build();
    let retry_after = HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)))
        .description(Some("Seconds to wait before trying again"))
        .build();
    for (status, response) in &mut operation.responses.responses {
        let RefOr::T(response) = response else { continue };
        response.headers.entry(bookstore_runtime::REQUEST_ID_HEADER.to_owned()).or_insert_with(|| request_id.clone());
        if status == "429" || status == "503" {
            response.headers.entry("retry-after".to_owned()).or_insert_with(|| retry_after.clone());
        }
    }
}

/// `/openapi.json` and the Swagger UI at `/docs`, whose assets are compiled
/// into the binary.
pub fn docs_router<S: Clone + Send + Sync + 'static>(openapi: OpenApi) -> Router<S> {
    let config = Config::new([OPENAPI_PATH])
        // Swagger UI's default validator is an online service; this page
        // must work with no internet.
        .validator_url("none")
        .try_it_out_enabled(false)
        .persist_authorization(false)
        .display_request_duration(true);
    SwaggerUi::new(DOCS_PATH).url(OPENAPI_PATH, openapi).config(config).into()
}

#[cfg(test)]
mod tests {
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem, PathsBuilder};
    use utoipa::openapi::request_body::RequestBodyBuilder;

    use super::*;

    /// The answers `complete` gives a `POST /book`-like operation.
    fn completed(operation: OperationBuilder) -> Operation {
        let mut openapi = base();
        openapi.paths = PathsBuilder::new().path("/book", PathItem::new(HttpMethod::Post, operation)).build();
        let mut openapi = complete(openapi);
        openapi.paths.paths.remove("/book").and_then(|item| item.post).unwrap()
    }

    fn description(operation: &Operation, status: &str) -> Option<String> {
        match operation.responses.responses.get(status)? {
            RefOr::T(response) => Some(response.description.clone()),
            RefOr::Ref(_) => None,
        }
    }

    fn body(required: Required) -> Option<utoipa::openapi::request_body::RequestBody> {
        Some(RequestBodyBuilder::new().required(Some(required)).build())
    }

    #[test]
    fn token_routes_get_401_and_json_body_routes_get_413_and_415() {
        let operation = completed(
            OperationBuilder::new()
                .security(SecurityRequirement::new(BEARER, Vec::<String>::new()))
                .security(SecurityRequirement::new(ACCESS_TOKENS_HEADER, Vec::<String>::new()))
                .request_body(body(Required::True)),
        );

        assert_eq!(description(&operation, "401").as_deref(), Some("The token is missing or invalid"));
        assert_eq!(description(&operation, "413").as_deref(), Some("The body is over `GATEWAY_MAX_BODY_BYTES`"));
        assert_eq!(description(&operation, "415").as_deref(), Some("No `Content-Type: application/json`"));
    }

    #[test]
    fn routes_without_a_token_or_a_body_get_neither() {
        let basic = completed(OperationBuilder::new().security(SecurityRequirement::new(BASIC, Vec::<String>::new())));

        for status in ["401", "413", "415"] {
            assert_eq!(description(&basic, status), None, "{status}");
        }
    }

    #[test]
    fn an_operations_own_answer_wins_and_an_optional_body_has_its_own_415() {
        let own_401 = ResponseBuilder::new().description("No token at all, or an invalid one").build();
        let operation = completed(
            OperationBuilder::new()
                .security(SecurityRequirement::new(BEARER, Vec::<String>::new()))
                .request_body(body(Required::False))
                .response("401", own_401),
        );

        assert_eq!(description(&operation, "401").as_deref(), Some("No token at all, or an invalid one"));
        assert_eq!(description(&operation, "415").as_deref(), Some("A body that is not `application/json`"));
    }
}
