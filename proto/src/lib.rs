//! Bookstore's gRPC contracts: the generated messages, clients and servers
//! of `bookstore.auth.v1` and `bookstore.books.v1`, plus the encoded file
//! descriptor set that serves server reflection.

pub mod codec;
mod time;

pub use prost;
pub use prost_types;
pub use time::UnixMicros;
pub use tonic;

/// The encoded `FileDescriptorSet` of every Bookstore .proto file (and the
/// well-known types they import), for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bookstore_descriptor.bin"));

/// Users, passwords and tokens.
pub mod auth {
    /// Version 1 of the auth API.
    #[allow(clippy::all, clippy::pedantic, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("bookstore.auth.v1");
    }
}

/// Per-user books.
pub mod books {
    /// Version 1 of the books API.
    #[allow(clippy::all, clippy::pedantic, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("bookstore.books.v1");
    }
}

/// Keyset pagination shared by the List RPCs: a page token is an opaque
/// encoding of the last id of the previous page, so inserts and deletes
/// between pages never skip or repeat a row.
pub mod pagination {
    /// Page size when the request leaves it at 0.
    pub const DEFAULT_PAGE_SIZE: u32 = 100;
    /// Largest page a request may ask for.
    pub const MAX_PAGE_SIZE: u32 = 1000;

    const PREFIX: &str = "after:";

    /// The page token that continues after `last_id`.
    #[must_use]
    pub fn page_token_after(last_id: i64) -> String {
        hex::encode(format!("{PREFIX}{last_id}"))
    }

    /// The id after which a page starts: 0 for an empty token (the first
    /// page). `None` when the token was not made by [`page_token_after`].
    #[must_use]
    pub fn parse_page_token(token: &str) -> Option<i64> {
        if token.is_empty() {
            return Some(0);
        }
        let bytes = hex::decode(token).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        text.strip_prefix(PREFIX)?.parse().ok().filter(|id| *id >= 0)
    }

    /// The page size to use for a requested `page_size`: the default for 0,
    /// capped at the maximum. `None` for a negative size.
    #[must_use]
    pub fn effective_page_size(requested: i32) -> Option<u32> {
        match u32::try_from(requested) {
            Ok(0) => Some(DEFAULT_PAGE_SIZE),
            Ok(size) => Some(size.min(MAX_PAGE_SIZE)),
            Err(_) => None,
        }
    }

    /// Splits `rows`, fetched with a limit of `page_size + 1`, into the page
    /// and the token of the next page (empty when this page is the last).
    #[must_use]
    pub fn into_page<T>(mut rows: Vec<T>, page_size: u32, id_of: impl Fn(&T) -> i64) -> (Vec<T>, String) {
        let page_size = page_size as usize;
        if rows.len() <= page_size {
            return (rows, String::new());
        }
        rows.truncate(page_size);
        let next = rows.last().map(|row| page_token_after(id_of(row))).unwrap_or_default();
        (rows, next)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn page_token_round_trips() {
            for id in [0, 1, 42, i64::MAX] {
                assert_eq!(parse_page_token(&page_token_after(id)), Some(id));
            }
            assert_eq!(parse_page_token(""), Some(0));
        }

        #[test]
        fn foreign_page_tokens_are_refused() {
            for token in ["zz", "abc", "61667465723a2d31", "6166746572", "ü"] {
                assert_eq!(parse_page_token(token), None, "{token}");
            }
        }

        #[test]
        fn page_size_defaults_and_caps() {
            assert_eq!(effective_page_size(0), Some(DEFAULT_PAGE_SIZE));
            assert_eq!(effective_page_size(5), Some(5));
            assert_eq!(effective_page_size(1_000_000), Some(MAX_PAGE_SIZE));
            assert_eq!(effective_page_size(-1), None);
        }
    }
}

/// Which calls a client may repeat: the methods the .proto files mark
/// `option idempotency_level = NO_SIDE_EFFECTS` (reads), plus the standard
/// health check. Derived from the descriptor set, so the .proto files stay
/// the one source of truth.
/// The machine-readable side of errors (`google.rpc` details, read and
/// written with `tonic-types`): callers branch on these, never on messages.
pub mod errors {
    use tonic_types::{ErrorDetails, StatusExt as _};

    /// The `ErrorInfo.domain` of Bookstore's errors.
    pub const DOMAIN: &str = "bookstore";
    /// `ErrorInfo.reason` of an `Unauthenticated` answer about a credential
    /// in the request body (a password, a refresh token), not the access
    /// token; its `metadata["field"]` names the field.
    pub const WRONG_CREDENTIAL: &str = "WRONG_CREDENTIAL";

    /// A status with an `ErrorInfo` of `reason` about request field `field`.
    #[must_use]
    pub fn with_reason(code: tonic::Code, message: String, reason: &str, field: &str) -> tonic::Status {
        let metadata = std::collections::HashMap::from([("field".to_owned(), field.to_owned())]);
        tonic::Status::with_error_details(code, message, ErrorDetails::with_error_info(reason, DOMAIN, metadata))
    }

    /// An `InvalidArgument` status whose `BadRequest` detail names the field.
    #[must_use]
    pub fn invalid_field(field: &str, reason: &str, message: String) -> tonic::Status {
        let details = ErrorDetails::with_bad_request_violation(field, reason);
        tonic::Status::with_error_details(tonic::Code::InvalidArgument, message, details)
    }

    /// The `ErrorInfo.reason` of a status from Bookstore, if it has one.
    #[must_use]
    pub fn reason(status: &tonic::Status) -> Option<String> {
        status.get_details_error_info().filter(|info| info.domain == DOMAIN).map(|info| info.reason)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// What a client reads from the headers `status` is sent in.
        fn over_the_wire(status: tonic::Status) -> tonic::Status {
            tonic::Status::from_header_map(status.into_http::<tonic::body::Body>().headers()).unwrap()
        }

        #[test]
        fn details_survive_the_trip_through_grpc_status_details() {
            let status =
                with_reason(tonic::Code::Unauthenticated, "password: is wrong".into(), WRONG_CREDENTIAL, "password");
            let received = over_the_wire(status);
            assert_eq!(reason(&received).as_deref(), Some(WRONG_CREDENTIAL));
            assert_eq!(received.get_details_error_info().unwrap().metadata["field"], "password");

            let invalid = invalid_field("name", "must not be empty", "name: must not be empty".into());
            let received = over_the_wire(invalid);
            let violations = received.get_details_bad_request().unwrap().field_violations;
            assert_eq!(
                (violations[0].field.as_str(), violations[0].description.as_str()),
                ("name", "must not be empty")
            );
            assert_eq!(reason(&received), None);
        }
    }
}

pub mod idempotency {
    use std::collections::HashSet;
    use std::sync::LazyLock;

    use prost::Message as _;
    use prost_types::method_options::IdempotencyLevel;

    static SIDE_EFFECT_FREE: LazyLock<HashSet<String>> = LazyLock::new(|| {
        let mut paths = HashSet::from(["/grpc.health.v1.Health/Check".to_owned()]);
        let Ok(set) = prost_types::FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET) else {
            return paths;
        };
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    let level = method.options.as_ref().map(prost_types::MethodOptions::idempotency_level);
                    if level == Some(IdempotencyLevel::NoSideEffects) {
                        paths.insert(format!("/{}.{}/{}", file.package(), service.name(), method.name()));
                    }
                }
            }
        }
        paths
    });

    /// Whether the method at `path` (`/package.Service/Method`) has no side
    /// effects, so that repeating it on another replica is safe.
    #[must_use]
    pub fn is_side_effect_free(path: &str) -> bool {
        SIDE_EFFECT_FREE.contains(path)
    }

    #[cfg(test)]
    mod tests {
        use super::is_side_effect_free;

        #[test]
        fn reads_are_side_effect_free_and_writes_are_not() {
            for read in [
                "/bookstore.books.v1.BooksService/GetBook",
                "/bookstore.books.v1.BooksService/ListBooks",
                "/bookstore.auth.v1.AuthService/GetJwks",
                "/bookstore.auth.v1.AuthService/ListRevocations",
                "/bookstore.auth.v1.AuthService/FindExistingUsers",
                "/grpc.health.v1.Health/Check",
            ] {
                assert!(is_side_effect_free(read), "{read}");
            }
            for write in [
                "/bookstore.books.v1.BooksService/CreateBook",
                "/bookstore.books.v1.BooksService/UpdateBook",
                "/bookstore.books.v1.BooksService/DeleteBook",
                "/bookstore.auth.v1.AuthService/Register",
                // It starts a session.
                "/bookstore.auth.v1.AuthService/Login",
                "/bookstore.auth.v1.AuthService/Refresh",
                "/bookstore.auth.v1.AuthService/Logout",
                "/bookstore.auth.v1.AuthService/ChangePassword",
                "/bookstore.auth.v1.AuthService/DeleteAccount",
            ] {
                assert!(!is_side_effect_free(write), "{write}");
            }
        }
    }
}
