//! Any string as a page token: parsing answers, never panics, and whatever
//! parses is an id that round-trips.
#![no_main]

use bookstore_proto::pagination::{page_token_after, parse_page_token};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some(id) = parse_page_token(text) {
        assert!(id >= 0, "a negative id parsed from {text:?}");
        assert_eq!(parse_page_token(&page_token_after(id)), Some(id));
    }
});
