//! Function URL / HTTP API events as Lambda delivers them, decoded as the webhook function
//! decodes them: any JSON is a delivery or a 400's reason, never a panic. (`lambda_http`'s own
//! conversion panicked on an `isBase64Encoded` body that is not base64 — this target found it,
//! and the function now decodes events itself; tests/webhook.rs keeps the case.)
#![no_main]

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = serde_json::from_slice::<LambdaFunctionUrlRequest>(data) {
        match webhook::delivery_of(&event) {
            Ok((method, body)) => {
                assert!(!method.is_empty());
                if !event.is_base64_encoded {
                    assert_eq!(body, event.body.unwrap_or_default().into_bytes());
                }
            }
            Err(reason) => assert_eq!(reason, "malformed_body"),
        }
    }
});
