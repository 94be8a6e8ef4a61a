//! gateway: the Flask tutorial's REST API (`/register`, `/login`, `/book`,
//! `/books`, `/users`) as HTTP-JSON, answered by calling auth-service and
//! books-service over gRPC.

mod app;
pub mod config;
mod error;
mod extract;
mod openapi;
mod routes;
mod upstream;

pub use app::App;
pub use config::Settings;
pub use error::ApiError;
