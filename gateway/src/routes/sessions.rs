//! `POST /refresh`, `POST /logout`, `PUT /users/me/password` and
//! `DELETE /users/me`: auth-service's Refresh, Logout, ChangePassword and
//! DeleteAccount.

use axum::Json;
use axum::extract::State;
use bookstore_proto::auth::v1::{ChangePasswordRequest, DeleteAccountRequest, LogoutRequest, RefreshRequest};
use bookstore_proto::errors;
use serde::Deserialize;
use tonic::Code;

use super::MessageBody;
use super::accounts::TokenBody;
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppJson, Authenticated, Call};

/// A refresh token to trade for a new token pair.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct RefreshBody {
    /// The `refresh_token` of `POST /login`, `POST /refresh` or
    /// `PUT /users/me/password`; single use.
    refresh_token: String,
}

/// Trades a refresh token for a new access token and refresh token.
///
/// The refresh token sent is spent. Sent again within a few seconds it is
/// refused (401); later, it ends its whole session (someone kept a copy).
#[utoipa::path(
    post,
    path = "/refresh",
    tag = "accounts",
    request_body = RefreshBody,
    responses(
        (status = OK, description = "A new token pair of the same session", body = TokenBody),
        (status = BAD_REQUEST, description = "Malformed JSON, or a missing or empty `refresh_token`", body = ErrorBody),
        (status = UNAUTHORIZED, description = "An unknown, expired or spent refresh token", body = ErrorBody,
            example = json!({"message": "refresh_token: is not valid"})),
    ),
)]
pub async fn refresh(
    State(state): State<AppState>,
    call: Call,
    AppJson(body): AppJson<RefreshBody>,
) -> Result<Json<TokenBody>, ApiError> {
    let request = call.request(RefreshRequest { refresh_token: body.refresh_token });
    let response = state.upstreams.auth.clone().refresh(request).await.map_err(credential_error)?.into_inner();
    Ok(Json(response.into()))
}

/// What to log out besides the access token's session.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct LogoutBody {
    /// A refresh token whose session to end too (enough on its own).
    #[serde(default)]
    refresh_token: Option<String>,
}

/// Ends the session of the access token (`x-access-tokens` or `Bearer`)
/// and/or of the refresh token in the optional JSON body.
///
/// The access token stops working on books within the revocation refresh
/// delay (`BOOKS_REVOCATION_REFRESH_SECS`, 5 s by default). A client whose
/// access token has expired may send no token and only the refresh token.
#[utoipa::path(
    post,
    path = "/logout",
    tag = "accounts",
    request_body(content = Option<LogoutBody>, description = "Optional: a refresh token to end too"),
    security(("bearer" = []), ("x-access-tokens" = [])),
    responses(
        (status = OK, description = "Logged out", body = MessageBody, example = json!({"message": "logged out"})),
        (status = BAD_REQUEST, description = "A malformed JSON body", body = ErrorBody),
        (status = UNAUTHORIZED, description = "No token at all, or an invalid one", body = ErrorBody,
            example = json!({"message": "a valid token is missing"})),
    ),
)]
pub async fn logout(
    State(state): State<AppState>,
    authenticated: Option<Authenticated>,
    call: Call,
    body: Option<AppJson<LogoutBody>>,
) -> Result<Json<MessageBody>, ApiError> {
    let refresh_token = body.and_then(|AppJson(body)| body.refresh_token).unwrap_or_default();
    if authenticated.is_none() && refresh_token.is_empty() {
        return Err(ApiError::token_missing());
    }
    let call = authenticated.map_or(call, |Authenticated(call)| call);
    let request = call.request(LogoutRequest { refresh_token });
    state.upstreams.auth.clone().logout(request).await.map_err(credential_error)?;
    Ok(Json(MessageBody { message: "logged out" }))
}

/// The password now in force and the next one.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ChangePasswordBody {
    current_password: String,
    /// 8 to 1024 bytes.
    #[schema(min_length = 8)]
    new_password: String,
}

/// Changes the caller's password.
///
/// Ends every session of the user (their other tokens stop working) and
/// answers with a new session's tokens.
#[utoipa::path(
    put,
    path = "/users/me/password",
    tag = "accounts",
    request_body = ChangePasswordBody,
    security(("bearer" = []), ("x-access-tokens" = [])),
    responses(
        (status = OK, description = "The new session's token pair", body = TokenBody),
        (status = BAD_REQUEST, description = "Malformed JSON, a missing field, or a new password the rules refuse",
            body = ErrorBody, example = json!({"message": "new_password: must be at least 8 bytes"})),
        (status = UNAUTHORIZED, description = "The token is missing or invalid, or the current password is wrong",
            body = ErrorBody, example = json!({"message": "current_password: is wrong"})),
    ),
)]
pub async fn change_password(
    State(state): State<AppState>,
    Authenticated(call): Authenticated,
    AppJson(body): AppJson<ChangePasswordBody>,
) -> Result<Json<TokenBody>, ApiError> {
    let request = call
        .request(ChangePasswordRequest { current_password: body.current_password, new_password: body.new_password });
    let response = state.upstreams.auth.clone().change_password(request).await.map_err(credential_error)?.into_inner();
    Ok(Json(response.into()))
}

/// The account's password, asked again before an irreversible step.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct DeleteAccountBody {
    password: String,
}

/// Deletes the caller's account and, shortly after, their books.
///
/// Every token of the account stops working; the name is free again.
#[utoipa::path(
    delete,
    path = "/users/me",
    tag = "accounts",
    request_body = DeleteAccountBody,
    security(("bearer" = []), ("x-access-tokens" = [])),
    responses(
        (status = OK, description = "Deleted", body = MessageBody, example = json!({"message": "account deleted"})),
        (status = BAD_REQUEST, description = "Malformed JSON or a missing `password`", body = ErrorBody),
        (status = UNAUTHORIZED, description = "The token is missing or invalid, or the password is wrong",
            body = ErrorBody, example = json!({"message": "password: is wrong"})),
    ),
)]
pub async fn delete_account(
    State(state): State<AppState>,
    Authenticated(call): Authenticated,
    AppJson(body): AppJson<DeleteAccountBody>,
) -> Result<Json<MessageBody>, ApiError> {
    let request = call.request(DeleteAccountRequest { password: body.password });
    state.upstreams.auth.clone().delete_account(request).await.map_err(credential_error)?;
    Ok(Json(MessageBody { message: "account deleted" }))
}

/// A wrong password or refresh token (auth-service's `WRONG_CREDENTIAL`
/// error reason) is 401 with auth-service's message (`current_password: is
/// wrong`); anything else maps as usual (a bad access token is the
/// tutorial's "token is invalid").
fn credential_error(status: tonic::Status) -> ApiError {
    let about_credential = errors::reason(&status).as_deref() == Some(errors::WRONG_CREDENTIAL);
    if status.code() == Code::Unauthenticated && about_credential {
        return ApiError::new(axum::http::StatusCode::UNAUTHORIZED, status.message());
    }
    ApiError::from(status)
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn a_wrong_password_keeps_its_message_and_a_bad_token_is_the_tutorials() {
        let message = "current_password: is wrong";
        let wrong =
            errors::with_reason(Code::Unauthenticated, message.into(), errors::WRONG_CREDENTIAL, "current_password");
        assert_eq!(credential_error(wrong), ApiError::new(StatusCode::UNAUTHORIZED, message));
        // The reason decides, not the message's text.
        let bare = credential_error(tonic::Status::unauthenticated(message));
        assert_eq!(bare.message, crate::error::TOKEN_INVALID);
        let expired = credential_error(tonic::Status::unauthenticated("token has expired"));
        assert_eq!(expired.message, crate::error::TOKEN_INVALID);
        assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    }
}
