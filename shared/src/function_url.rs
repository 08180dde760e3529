//! Function URL requests and answers, as the HTTP functions (`webhook`, `fetch`) read and write
//! them: the body Lambda may have base64-encoded, and a JSON answer.

use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use base64::Engine;

/// The request's body was marked base64 and is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the body is marked base64-encoded and is not valid base64")]
pub struct NotBase64;

/// The request's body as it was sent (Lambda base64-encodes bodies it does not take for text).
pub fn body(event: &LambdaFunctionUrlRequest) -> Result<Vec<u8>, NotBase64> {
    match (&event.body, event.is_base64_encoded) {
        (None, _) => Ok(Vec::new()),
        (Some(text), false) => Ok(text.as_bytes().to_vec()),
        (Some(text), true) => base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| NotBase64),
    }
}

/// A JSON answer. A 405 says which method the resource does take (RFC 9110 §15.5.6): these
/// endpoints take POST only.
pub fn json_response(status: u16, body: String) -> LambdaFunctionUrlResponse {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if status == 405 {
        headers.insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
    }
    // Non-exhaustive: built from its default.
    let mut response = LambdaFunctionUrlResponse::default();
    response.status_code = i64::from(status);
    response.headers = headers;
    response.body = Some(body);
    response
}
