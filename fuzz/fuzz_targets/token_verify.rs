//! Any string as a token: `verify` and `token_from_headers` answer, never
//! panic. A fixed key makes a valid token possible for the fuzzer to find
//! (it cannot forge one, but it can mutate one).
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use bookstore_proto::tonic::codegen::http;
use bookstore_tokens::{SigningKey, TokenPolicy, TokenSigner, TokenVerifier};
use libfuzzer_sys::fuzz_target;

fn verifier() -> &'static (TokenVerifier, String) {
    static VERIFIER: OnceLock<(TokenVerifier, String)> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let key = SigningKey::generate();
        let policy = TokenPolicy { issuer: "bookstore-auth".into(), audience: "bookstore".into() };
        let signer = TokenSigner::new(&key, policy.clone(), Duration::from_secs(3600)).unwrap();
        let token = signer.issue("user", "name", false, "session").unwrap().token;
        let verifier = TokenVerifier::new(&policy, [key.public_jwk()]).unwrap();
        (verifier, token)
    })
}

fuzz_target!(|data: &[u8]| {
    let (verifier, valid) = verifier();
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = verifier.verify(text);
    // Splice the input into a valid token's parts, where mutations matter.
    let _ = verifier.verify(&format!("{valid}{text}"));
    if let Some((header, _)) = valid.split_once('.') {
        let _ = verifier.verify(&format!("{header}.{text}"));
    }
    let mut headers = http::HeaderMap::new();
    if let Ok(value) = http::HeaderValue::from_str(text) {
        headers.insert("authorization", value.clone());
        headers.insert("x-access-tokens", value);
    }
    if let Ok(token) = bookstore_tokens::token_from_headers(&headers) {
        let _ = verifier.verify(token);
    }
});
