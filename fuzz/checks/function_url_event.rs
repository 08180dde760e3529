//! Function URL / HTTP API events as Lambda delivers them, decoded as the webhook function
//! decodes them: any JSON is a delivery or a named reason for a 400, never a panic.
//!
//! Finds so far, each kept in `fuzz/regressions/function_url_event/` and in tests/webhook.rs:
//! - `lambda_http`'s own conversion panicked on an `isBase64Encoded` body that is not base64;
//!   the function now decodes events itself (a 400, `malformed_body`);
//! - an event whose `requestContext.http.method` is `""` came out as a delivery with no method;
//!   it is a 400 now (`malformed_method`), like a missing method or one that is not a token.
//!
//! One check, run by the cargo-fuzz target of the same name (`make fuzz`) and by
//! `tests/fuzz_replay.rs` on every committed input (`make test`).

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use webhook::Malformed;

/// RFC 9110 `token`, written out again here so the target does not trust the code it checks.
fn is_token(method: &str) -> bool {
    !method.is_empty()
        && method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

pub fn check(data: &[u8]) {
    if let Ok(event) = serde_json::from_slice::<LambdaFunctionUrlRequest>(data) {
        let method = event.request_context.http.method.clone();
        match webhook::delivery_of(&event) {
            Ok((delivered, body)) => {
                assert!(is_token(&delivered), "{delivered:?} is not a method");
                assert_eq!(Some(delivered), method);
                if !event.is_base64_encoded {
                    assert_eq!(body, event.body.unwrap_or_default().into_bytes());
                }
            }
            Err(Malformed::Method) => {
                assert!(!method.as_deref().is_some_and(is_token), "{method:?}")
            }
            Err(Malformed::Body) => {
                assert!(method.as_deref().is_some_and(is_token));
                assert!(event.is_base64_encoded);
            }
        }
    }
}
