//! What every HTTP vendor adapter shares (the simulator, Azure, Mindee): one client per
//! container, how a transport failure is classed (never sent, or sent and unanswered), how a
//! non-2xx answer becomes a [`VendorError`], and the rule that a key is only ever sent to the
//! vendor's own origin — a URL the vendor handed us (Azure's `Operation-Location`, Mindee's
//! `result_url`) is followed only if it is on the configured endpoint's scheme, host and port.

use std::time::Duration;

use reqwest::{Response, StatusCode, Url};
use serde_json::Value;

use super::VendorError;

/// Timeouts: connecting is quick or hopeless; a call answers in well under the request timeout
/// unless something is wrong.
#[derive(Debug, Clone, Copy)]
pub struct HttpTimeouts {
    pub connect: Duration,
    pub request: Duration,
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        HttpTimeouts {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(10),
        }
    }
}

/// One HTTP client per container: connections are reused across invocations. Redirects are not
/// followed: an adapter follows one itself, after checking where it goes (a key must not travel
/// to another host).
/// The request with the document's trace (`X-Amzn-Trace-Id`), when there is one: the vendor
/// call belongs to the document's trace (crate::trace_context).
pub fn traced(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match crate::trace_context::current() {
        Some(header) => request.header(crate::trace_context::HTTP_HEADER, header),
        None => request,
    }
}

/// One authenticated `GET` that only proves a key (`header: key`), its answer checked as every
/// call's is: how a key is verified with a vendor's cheapest call.
pub async fn prove_key(
    request: reqwest::RequestBuilder,
    header: &str,
    key: &crate::keyring::Secret,
    describe: fn(&Value) -> (String, String),
) -> Result<(), VendorError> {
    let response = traced(request)
        .header(header, key.expose())
        .send()
        .await
        .map_err(transport_error)?;
    check(response, describe).await.map(|_| ())
}

/// A vendor's HTTP client, trusting `roots` (`crate::tls`).
pub fn http_client(
    timeouts: HttpTimeouts,
    roots: crate::tls::Roots,
) -> Result<reqwest::Client, VendorError> {
    roots
        .apply(reqwest::Client::builder())
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request)
        .pool_idle_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| VendorError::Protocol(format!("cannot build the HTTP client: {e}")))
}

/// `reqwest` errors: a failed connect never left; anything later may have been received. The
/// URL is dropped from the message: errors are logged, and a URL can carry what must not be
/// (a presigned document URL's signature, a vendor's job token).
pub fn transport_error(e: reqwest::Error) -> VendorError {
    let connect = e.is_connect();
    let text = e.without_url().to_string();
    if connect {
        VendorError::Unreachable(text)
    } else {
        VendorError::NoAnswer(text)
    }
}

/// `Retry-After` in seconds (what Azure, Mindee and the simulator send).
pub fn retry_after(response: &Response) -> Option<Duration> {
    response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Maps a non-2xx answer to an error; `describe` reads the vendor's error body into (code,
/// message) for a 4xx the request itself caused.
pub async fn check(
    response: Response,
    describe: fn(&Value) -> (String, String),
) -> Result<Response, VendorError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let wait = retry_after(&response);
    match status {
        StatusCode::TOO_MANY_REQUESTS => Err(VendorError::Throttled { retry_after: wait }),
        StatusCode::REQUEST_TIMEOUT => Err(VendorError::Unavailable {
            status: 408,
            retry_after: wait,
        }),
        s if s.is_server_error() => Err(VendorError::Unavailable {
            status: s.as_u16(),
            retry_after: wait,
        }),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(VendorError::Auth {
            status: status.as_u16(),
        }),
        s => {
            // An error body is read only as far as an error body goes.
            let body: Value = body(response, 64 * 1024)
                .await
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(Value::Null);
            let (code, message) = describe(&body);
            Err(VendorError::Rejected {
                status: s.as_u16(),
                code,
                message,
            })
        }
    }
}

/// The largest result read from a vendor unless `VENDOR_MAX_RESULT_BYTES` says otherwise: parse
/// holds the raw payload, its gzip copy and the normalized document at once in 512 MB.
pub const DEFAULT_MAX_RESULT_BYTES: usize = 50 * 1024 * 1024;
/// The largest answer that is not a result (a job, an error): anything bigger is not one.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// A 2xx answer's body, at most `limit` bytes: a declared `Content-Length` over it is refused
/// before reading, and a body that grows past it is cut off ([`VendorError::TooLarge`]). One
/// that breaks off is [`VendorError::Unreadable`]: the request succeeded, we just cannot see how.
pub async fn body(mut response: Response, limit: usize) -> Result<bytes::Bytes, VendorError> {
    let status = response.status().as_u16();
    if let Some(declared) = response.content_length() {
        if declared > limit as u64 {
            return Err(VendorError::TooLarge {
                limit,
                size: Some(declared),
            });
        }
    }
    let mut out = bytes::BytesMut::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if out.len() + chunk.len() > limit {
                    return Err(VendorError::TooLarge { limit, size: None });
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(out.freeze()),
            Err(e) => {
                return Err(VendorError::Unreadable {
                    status,
                    detail: format!("the body broke off: {}", e.without_url()),
                })
            }
        }
    }
}

/// The first `limit` bytes of a 2xx answer's body, and whether that is all of it. The rest
/// is never read: for learning one thing from an answer that may be very large.
pub async fn prefix(
    mut response: Response,
    limit: usize,
) -> Result<(bytes::Bytes, bool), VendorError> {
    let status = response.status().as_u16();
    let mut out = bytes::BytesMut::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                out.extend_from_slice(&chunk);
                if out.len() > limit {
                    out.truncate(limit);
                    return Ok((out.freeze(), false));
                }
            }
            Ok(None) => return Ok((out.freeze(), true)),
            Err(e) => {
                return Err(VendorError::Unreadable {
                    status,
                    detail: format!("the body broke off: {}", e.without_url()),
                })
            }
        }
    }
}

/// The string value of `key` at the top level of a JSON object that may be cut off (`text` is
/// a prefix of it): found by walking the text's nesting and strings, not by parsing it whole.
pub fn top_level_string(text: &[u8], key: &str) -> Option<String> {
    let wanted = format!("\"{key}\"");
    let mut depth = 0usize;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                let start = i;
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    if text[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                let end = (i + 1).min(text.len());
                if depth == 1 && text[start..end] == *wanted.as_bytes() {
                    // A key: `:` and then its value, if that is a string.
                    let rest = &text[end..];
                    let rest = rest.iter().skip_while(|b| b.is_ascii_whitespace());
                    let mut rest = rest.copied().skip_while(|b| *b == b':');
                    let value: Vec<u8> = rest
                        .by_ref()
                        .skip_while(|b| b.is_ascii_whitespace())
                        .collect();
                    let value = value.strip_prefix(b"\"")?;
                    let close = value.iter().position(|b| *b == b'"')?;
                    return String::from_utf8(value[..close].to_vec()).ok();
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// A 2xx answer's JSON (see [`body`]), at most [`MAX_ANSWER_BYTES`].
pub async fn json(response: Response) -> Result<Value, VendorError> {
    let status = response.status().as_u16();
    let bytes = body(response, MAX_ANSWER_BYTES).await?;
    serde_json::from_slice(&bytes).map_err(|e| VendorError::Unreadable {
        status,
        detail: format!("not JSON: {e}"),
    })
}

/// Whether `url` is on `base`'s origin (scheme, host, port), where our key may go.
pub fn same_origin(base: &str, url: &str) -> bool {
    match (Url::parse(base), Url::parse(url)) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.host_str() == b.host_str()
                && a.port_or_known_default() == b.port_or_known_default()
        }
        _ => false,
    }
}

/// A URL the vendor handed us, if it is on the vendor's own origin; otherwise the answer is a
/// protocol error and the key is not sent.
pub fn vendor_url(base: &str, url: &str, what: &str) -> Result<String, VendorError> {
    if same_origin(base, url) {
        Ok(url.to_owned())
    } else {
        Err(VendorError::Protocol(format!(
            "the vendor's {what} is not on its endpoint's origin ({base}); not sending the key there"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_top_level_string_is_found_in_a_cut_off_object() {
        let operation = br#"{"status": "succeeded", "analyzeResult": {"status": "nested", "content": "a \"quoted\" {brace"#;
        assert_eq!(
            top_level_string(operation, "status").as_deref(),
            Some("succeeded")
        );
        // Not fooled by the same key deeper in, nor by a string that looks like one.
        let later = br#"{"analyzeResult": {"status": "nested", "x": "\"status\": \"no\""}, "status":"running"}"#;
        assert_eq!(
            top_level_string(later, "status").as_deref(),
            Some("running")
        );
        assert_eq!(
            top_level_string(br#"{"analyzeResult": {"status": "x""#, "status"),
            None
        );
    }

    #[tokio::test]
    async fn bodies_are_read_up_to_their_limit_and_no_further() {
        let sized = |n: usize| reqwest::Response::from(http::Response::new("x".repeat(n)));
        assert_eq!(body(sized(100), 100).await.unwrap().len(), 100);
        assert!(matches!(
            body(sized(101), 100).await,
            Err(VendorError::TooLarge {
                limit: 100,
                size: Some(101)
            })
        ));
        // No Content-Length: cut off as it grows.
        let streamed = |chunks: usize| {
            let stream = futures::stream::iter(
                (0..chunks).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'x'; 64]))),
            );
            reqwest::Response::from(http::Response::new(reqwest::Body::wrap_stream(stream)))
        };
        assert_eq!(body(streamed(2), 128).await.unwrap().len(), 128);
        assert!(matches!(
            body(streamed(1_000_000), 128).await,
            Err(VendorError::TooLarge { size: None, .. })
        ));
    }

    #[test]
    fn keys_go_only_to_the_vendors_own_origin() {
        let base = "https://res.cognitiveservices.azure.com";
        assert!(same_origin(
            base,
            "https://res.cognitiveservices.azure.com/documentintelligence/x?api-version=1"
        ));
        assert!(same_origin(
            "https://api-v2.mindee.net",
            "https://api-v2.mindee.net:443/v2/results/abc"
        ));
        assert!(!same_origin(
            base,
            "https://evil.example/documentintelligence/x"
        ));
        assert!(!same_origin(
            base,
            "http://res.cognitiveservices.azure.com/x"
        ));
        assert!(!same_origin(
            base,
            "https://res.cognitiveservices.azure.com:8443/x"
        ));
        assert!(!same_origin(base, "not a url"));
        assert!(vendor_url(base, "https://evil.example/", "operation").is_err());
    }
}
