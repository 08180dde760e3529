//! `fetch`: documents by URL.
//!
//! `POST {"url": …, "profile": "receipt", "source": "api"}` to the function's URL (IAM auth: a
//! caller signs with SigV4, as for any AWS API). The document is fetched under
//! [`ocrbridge::url_fetch`]'s guards (no internal addresses, every redirect checked, bounded
//! bytes and time, the bytes a document of the declared type) and written to the documents
//! bucket under the profile's prefix. From there the normal intake takes over, so the same
//! content still makes one job, however many times or under whatever URL it is sent.
//!
//! Answers:
//! - `202 {"status":"accepted","key":…,"bytes":…,"type":…,"redirects":…}`;
//! - `422 {"error":CODE,"reason":…,"retryable":false}`: the URL was refused (see
//!   `url_fetch::Refusal::code`); `502` with `"retryable":true` when the server's trouble may
//!   pass (5xx, 429, a connection or a timeout);
//! - `400` for a body that is not a request, an unknown profile or source; `405` for a method
//!   other than POST.
//!
//! Every refusal is counted (`UrlFetches[Outcome, Source]`) and recorded as JSON in the results
//! bucket under `refused/url/<date>/`, with the URL's query and credentials removed (a presigned
//! URL's signature is a secret).

use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use ocrbridge::blob::{Blob, ObjectRef};
use ocrbridge::config::{ProfilePrefixes, StackConfig};
use ocrbridge::function_url;
use ocrbridge::job::ContentHash;
use ocrbridge::metrics::{self, Metrics};
use ocrbridge::segments::{self, Sources};
use ocrbridge::url_fetch::{self, Fetcher, Refusal, Resolve, SystemResolver};
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::{error, info, warn};

/// Where refusals are recorded, in the results bucket.
pub const REFUSALS_PREFIX: &str = "refused/url/";

/// What the endpoint needs besides the stack's resources.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// `PROFILE_PREFIXES`, as intake reads it: a profile's document goes under its prefix.
    pub prefixes: ProfilePrefixes,
    /// `METRIC_SOURCES`: the metric's `Source` dimension is mapped onto it, as intake's is.
    pub sources: Sources,
}

impl FetchConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        Ok(FetchConfig {
            prefixes: ProfilePrefixes::from_lookup(&lookup)
                .map_err(|e| format!("invalid PROFILE_PREFIXES: {e}"))?,
            sources: Sources::from_lookup(&lookup)
                .map_err(|e| format!("invalid METRIC_SOURCES: {e}"))?,
        })
    }
}

/// One request to the endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchRequest {
    pub url: String,
    pub profile: String,
    #[serde(default)]
    pub source: Option<String>,
}

/// How a request ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// The document is in the bucket under `key`; intake takes it from there.
    Accepted {
        key: String,
        bytes: usize,
        mime: &'static str,
        redirects: u8,
    },
    /// The URL was refused.
    Refused(Refusal),
    /// Not a request this endpoint takes.
    BadRequest(String),
    /// Not a POST.
    Method,
    /// Fetched, but our own storage failed: nothing the URL did, so not a refusal (and not
    /// recorded as one); the caller tries again.
    StoreFailed,
}

impl Answer {
    pub fn status(&self) -> u16 {
        match self {
            Answer::Accepted { .. } => 202,
            Answer::Refused(r) if r.is_transient() => 502,
            Answer::Refused(_) => 422,
            Answer::BadRequest(_) => 400,
            Answer::Method => 405,
            Answer::StoreFailed => 503,
        }
    }

    pub fn body(&self) -> Value {
        match self {
            Answer::Accepted {
                key,
                bytes,
                mime,
                redirects,
            } => json!({
                "status": "accepted",
                "key": key,
                "bytes": bytes,
                "type": mime,
                "redirects": redirects,
            }),
            Answer::Refused(r) => json!({
                "error": r.code(),
                "reason": r.to_string(),
                "retryable": r.is_transient(),
            }),
            Answer::BadRequest(why) => json!({ "error": "bad_request", "reason": why }),
            Answer::Method => json!({ "error": "method_not_allowed", "reason": "POST only" }),
            Answer::StoreFailed => json!({
                "error": "store_failed",
                "reason": "the document was fetched but could not be stored; try again",
                "retryable": true,
            }),
        }
    }
}

/// The endpoint.
pub struct Fetch<R: Resolve = SystemResolver> {
    pub fetcher: Fetcher<R>,
    pub blob: Blob,
    pub stack: StackConfig,
    pub config: FetchConfig,
    pub metrics: Metrics,
}

impl<R: Resolve> Fetch<R> {
    /// The Function URL's event in, its response out.
    pub async fn handle_event(
        &self,
        event: &LambdaFunctionUrlRequest,
    ) -> LambdaFunctionUrlResponse {
        let answer = match request_of(event) {
            Ok(Some(request)) => self.handle(&request).await,
            Ok(None) => Answer::Method,
            Err(why) => Answer::BadRequest(why),
        };
        function_url::json_response(answer.status(), answer.body().to_string())
    }

    /// Fetches the request's document into the bucket, or says why not.
    pub async fn handle(&self, request: &FetchRequest) -> Answer {
        let shown = url_fetch::redacted(&request.url);
        let span = tracing::info_span!("fetch", url = %shown, profile = %request.profile);
        let _entered = span.enter();
        let prefix = match self.config.prefixes.prefix_for(&request.profile) {
            Some(prefix) => prefix.to_owned(),
            None => {
                let known: Vec<&str> = self
                    .config
                    .prefixes
                    .0
                    .iter()
                    .map(|(_, p)| p.as_str())
                    .collect();
                return Answer::BadRequest(format!(
                    "unknown profile {:?}: PROFILE_PREFIXES names {}",
                    request.profile,
                    known.join(", ")
                ));
            }
        };
        if let Some(source) = &request.source {
            if !segments::valid(source) {
                return Answer::BadRequest(format!(
                    "source {source:?}: 1–32 characters of a-z, 0-9, - and _"
                ));
            }
        }
        // No source given: `direct`, as an upload straight into a profile's prefix.
        let channel = self
            .config
            .sources
            .source_of("", request.source.as_deref(), false);
        match self.fetcher.fetch(&request.url).await {
            Ok(fetched) => {
                let content = ContentHash::of(&fetched.bytes);
                let extension = fetched.file_type.extensions()[0];
                let segment = request
                    .source
                    .as_deref()
                    .map(|s| format!("{s}/"))
                    .unwrap_or_default();
                // Named by content: the same document sent twice lands on the same key (and
                // intake dedupes by content whatever the key).
                let object = ObjectRef {
                    bucket: self.stack.documents_bucket.clone(),
                    key: format!(
                        "{prefix}{segment}url-{}.{extension}",
                        &content.to_hex()[..32]
                    ),
                    version_id: None,
                };
                let metadata: Vec<(&str, &str)> = request
                    .source
                    .as_deref()
                    .map(|s| (segments::SOURCE_METADATA, s))
                    .into_iter()
                    .collect();
                let bytes = fetched.bytes.len();
                if let Err(e) = self
                    .blob
                    .put_with_metadata(
                        &object,
                        fetched.bytes,
                        fetched.file_type.mime(),
                        None,
                        &metadata,
                    )
                    .await
                {
                    error!(error = %e, "the fetched document could not be stored");
                    self.metrics
                        .count(metrics::URL_FETCHES, &["store_failed", &channel], &[]);
                    return Answer::StoreFailed;
                }
                info!(key = %object.key, bytes, redirects = fetched.redirects, "fetched; intake takes it from here");
                self.metrics
                    .count(metrics::URL_FETCHES, &["fetched", &channel], &[]);
                Answer::Accepted {
                    key: object.key,
                    bytes,
                    mime: fetched.file_type.mime(),
                    redirects: fetched.redirects,
                }
            }
            Err(refusal) => {
                warn!(code = refusal.code(), reason = %refusal, "refused");
                self.metrics
                    .count(metrics::URL_FETCHES, &[refusal.code(), &channel], &[]);
                self.record(request, &shown, &refusal).await;
                Answer::Refused(refusal)
            }
        }
    }

    /// Keeps the refusal where an operator can find it; the answer goes out whether or not this
    /// write succeeds (the caller has the reason either way, and the metric counted it).
    async fn record(&self, request: &FetchRequest, shown: &str, refusal: &Refusal) {
        let now = chrono::Utc::now();
        let object = ObjectRef {
            bucket: self.stack.results_bucket.clone(),
            key: format!(
                "{REFUSALS_PREFIX}{}/{}.json",
                now.format("%Y-%m-%d"),
                uuid::Uuid::now_v7()
            ),
            version_id: None,
        };
        let record = json!({
            "at": now.to_rfc3339(),
            "url": shown,
            "profile": request.profile,
            "source": request.source,
            "code": refusal.code(),
            "reason": refusal.to_string(),
            "retryable": refusal.is_transient(),
        });
        if let Err(e) = self
            .blob
            .put(
                &object,
                record.to_string().into_bytes(),
                "application/json",
                None,
            )
            .await
        {
            error!(error = %e, "the refusal could not be recorded");
        }
    }
}

/// The request in a Function URL event: `Ok(None)` for a method other than POST.
pub fn request_of(event: &LambdaFunctionUrlRequest) -> Result<Option<FetchRequest>, String> {
    if event.request_context.http.method.as_deref() != Some("POST") {
        return Ok(None);
    }
    let body = function_url::body(event).map_err(|e| e.to_string())?;
    if body.is_empty() {
        return Err("an empty body: send {\"url\", \"profile\", \"source\"}".into());
    }
    serde_json::from_slice(&body).map(Some).map_err(|e| {
        format!("not a fetch request ({e}): send {{\"url\", \"profile\", \"source\"}}")
    })
}
