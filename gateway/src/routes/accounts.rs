//! `POST /register`, `POST /login` (HTTP Basic) and `GET /users` (admins):
//! auth-service's Register, Login and ListUsers.

use axum::Json;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bookstore_proto::auth::v1::{
    ChangePasswordResponse, ListUsersRequest, LoginRequest, LoginResponse, RefreshResponse, RegisterRequest, User,
};
use serde::{Deserialize, Serialize};
use tonic::Code;

use super::{MessageBody, PageQuery, next_page};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppJson, AppQuery, Authenticated, Call};

/// The challenge sent with every failed login.
const BASIC_CHALLENGE: &str = r#"Basic realm="login required""#;

/// Standard base64, with or without the trailing `=` (some clients drop it).
const BASIC_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A new user. Unknown fields are ignored.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"name": "alice", "password": "wonderland1"})))]
pub struct RegisterBody {
    /// 1 to 64 characters after trimming, no `:` or control characters,
    /// unique ignoring case.
    #[schema(min_length = 1, max_length = 64)]
    name: String,
    /// 8 to 1024 bytes.
    #[schema(min_length = 8)]
    password: String,
}

/// Registers a user (never an admin).
#[utoipa::path(
    post,
    path = "/register",
    tag = "accounts",
    request_body = RegisterBody,
    responses(
        (status = CREATED, description = "Registered", body = MessageBody),
        (status = BAD_REQUEST, description = "Malformed JSON, a missing field or a wrong type, or a name or \
            password the rules refuse", body = ErrorBody, example = json!({"message": "name: must not be empty"})),
        (status = CONFLICT, description = "The name is taken", body = ErrorBody),
        (status = TOO_MANY_REQUESTS, description = "Too many attempts from this client (or, logging in, for this \
            name), or too many password checks in progress: retry after `Retry-After` seconds", body = ErrorBody),
    ),
)]
pub async fn register(
    State(state): State<AppState>,
    call: Call,
    AppJson(body): AppJson<RegisterBody>,
) -> Result<(StatusCode, Json<MessageBody>), ApiError> {
    let request = call.request(RegisterRequest { name: body.name, password: body.password });
    state.upstreams.auth.clone().register(request).await?;
    Ok((StatusCode::CREATED, Json(MessageBody { message: "registered successfully" })))
}

/// The tutorial's `{"token"}`, plus the token's type and lifetime and the
/// session's refresh token (tutorial clients ignore what they do not know).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(examples(json!({"token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSJ9...", "token_type": "Bearer", "expires_in": 2700,
    "refresh_token": "3q2-7wAAAAD5dvsNJ2JbC0yZQm6dXn0O3k2TzbPaRUk"})))]
pub struct TokenBody {
    /// An EdDSA-signed JWT, for `x-access-tokens` or `Authorization: Bearer`.
    pub token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: i64,
    /// Opaque and single-use: trade it at `POST /refresh` for a new pair.
    pub refresh_token: String,
}

/// Login, Refresh and ChangePassword answer with the same four fields, each
/// in a response message of its own.
macro_rules! token_body_from {
    ($($response:ty),+) => {$(
        impl From<$response> for TokenBody {
            fn from(response: $response) -> Self {
                Self {
                    token: response.access_token,
                    token_type: response.token_type,
                    expires_in: response.expires_in,
                    refresh_token: response.refresh_token,
                }
            }
        }
    )+};
}

token_body_from!(LoginResponse, RefreshResponse, ChangePasswordResponse);

/// Logs a user in with HTTP Basic and returns a token.
///
/// Every failure is 401 "could not verify" with a Basic challenge, whatever
/// went wrong (no header, malformed header, unknown user, wrong password),
/// so an answer never tells which user names exist. An unreachable
/// auth-service is still a 503.
#[utoipa::path(
    post,
    path = "/login",
    tag = "accounts",
    security(("basic" = [])),
    responses(
        (status = OK, description = "A token for the user", body = TokenBody),
        (status = UNAUTHORIZED, description = "No, malformed or wrong credentials (the same answer for each)",
            body = ErrorBody, headers(("www-authenticate" = String, description = "`Basic realm=\"login required\"`")),
            example = json!({"message": "could not verify"})),
        (status = TOO_MANY_REQUESTS, description = "Too many attempts from this client (or, logging in, for this \
            name), or too many password checks in progress: retry after `Retry-After` seconds", body = ErrorBody),
    ),
)]
pub async fn login(State(state): State<AppState>, call: Call, headers: HeaderMap) -> Result<Json<TokenBody>, Response> {
    let Some((name, password)) = basic_credentials(&headers) else {
        return Err(could_not_verify());
    };
    let response = state
        .upstreams
        .auth
        .clone()
        .login(call.request(LoginRequest { name, password }))
        .await
        .map_err(|status| match status.code() {
            Code::Unauthenticated | Code::InvalidArgument => could_not_verify(),
            _ => ApiError::from(status).into_response(),
        })?
        .into_inner();
    Ok(Json(response.into()))
}

fn could_not_verify() -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, "could not verify").into_response();
    response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static(BASIC_CHALLENGE));
    response
}

/// The name and password of `Authorization: Basic base64(name:password)`,
/// decoded as UTF-8 and split at the first `:`; `None` unless both are
/// non-empty.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(BASIC_BASE64.decode(encoded.trim()).ok()?).ok()?;
    let (name, password) = decoded.split_once(':')?;
    if name.is_empty() || password.is_empty() {
        return None;
    }
    Some((name.to_owned(), password.to_owned()))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UsersBody {
    users: Vec<UserJson>,
    /// Present when there are more users: pass it as `page_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    next_page_token: Option<String>,
}

/// A user as the tutorial listed one, minus its password hash.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct UserJson {
    /// The user's id (a UUID), the tokens' `sub`.
    public_id: String,
    name: String,
    admin: bool,
}

impl From<User> for UserJson {
    fn from(user: User) -> Self {
        Self { public_id: user.public_id, name: user.name, admin: user.admin }
    }
}

/// Lists every user, a page at a time (admins only).
#[utoipa::path(
    get,
    path = "/users",
    tag = "accounts",
    params(PageQuery),
    security(("bearer" = []), ("x-access-tokens" = [])),
    responses(
        (status = OK, description = "A page of users", body = UsersBody),
        (status = BAD_REQUEST, description = "A bad `limit` or `page_token`", body = ErrorBody),
        (status = FORBIDDEN, description = "The caller is not an admin", body = ErrorBody,
            example = json!({"message": "listing users needs an admin"})),
    ),
)]
pub async fn list_users(
    State(state): State<AppState>,
    Authenticated(call): Authenticated,
    AppQuery(mut query): AppQuery<PageQuery>,
) -> Result<Json<UsersBody>, ApiError> {
    let request =
        ListUsersRequest { page_size: query.page_size(state.default_page_size)?, page_token: query.page_token() };
    let page = state.upstreams.auth.clone().list_users(call.request(request)).await?.into_inner();
    Ok(Json(UsersBody {
        users: page.users.into_iter().map(UserJson::from).collect(),
        next_page_token: next_page(page.next_page_token),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    fn encode(credentials: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials))
    }

    #[test]
    fn basic_credentials_split_at_the_first_colon() {
        assert_eq!(basic_credentials(&basic(&encode("alice:pa:ss"))), Some(("alice".into(), "pa:ss".into())));
        assert_eq!(
            basic_credentials(&basic(&encode("ユーザー:pässwörd"))),
            Some(("ユーザー".into(), "pässwörd".into()))
        );
    }

    #[test]
    fn basic_scheme_is_case_insensitive_and_padding_optional() {
        assert_eq!(basic_credentials(&basic("basic YWxpY2U6cHc=")), Some(("alice".into(), "pw".into())));
        assert_eq!(basic_credentials(&basic("BASIC YWxpY2U6cHc")), Some(("alice".into(), "pw".into())));
    }

    #[test]
    fn malformed_basic_credentials_are_none() {
        assert_eq!(basic_credentials(&HeaderMap::new()), None);
        for value in [
            "Basic !!!notbase64".to_owned(),
            encode("no-colon"),
            encode("alice:"),
            encode(":password"),
            "Bearer eyJhbGciOi.x.y".to_owned(),
            "Basic".to_owned(),
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode([0xff, b':', 0xfe])),
        ] {
            assert_eq!(basic_credentials(&basic(&value)), None, "{value}");
        }
    }
}
