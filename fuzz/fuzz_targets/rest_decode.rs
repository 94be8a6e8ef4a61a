//! Any bytes as a REST request's body, Basic credentials, book id or query:
//! the gateway's decoding answers Ok or a 4xx error, never panics or 5xx.
#![no_main]

use std::sync::OnceLock;

use gateway::fuzzing::{decode_basic, decode_body, decode_path_and_query};
use libfuzzer_sys::fuzz_target;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().unwrap_or_else(|_| unreachable!()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&route, rest)) = data.split_first() else { return };
    let _ = decode_basic(rest);
    let result = runtime().block_on(decode_body(route, b"application/json", rest.to_vec()));
    if let Err(error) = result {
        assert!(error.status.is_client_error(), "{error:?}");
    }
    if let Ok(text) = std::str::from_utf8(rest) {
        let (id, query) = text.split_once('?').unwrap_or((text, ""));
        if let Err(error) = runtime().block_on(decode_path_and_query(id, query)) {
            assert!(error.status.is_client_error(), "{error:?}");
        }
    }
});
