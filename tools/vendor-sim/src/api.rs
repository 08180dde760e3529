//! HTTP handlers: the vendor API under `/v1`, and the simulator's controls under `/admin`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::faults::{Fault, FaultConfig, FaultDice};
use crate::server::{DropConnection, HoldResponse, TruncateBody};
use crate::state::{Idempotency, Protocol, SimJob, Status};
use crate::{webhooks, Accept, Accepted, Cut, KeyRule, Sim};

const PROFILES: [&str; 4] = ["receipt", "invoice", "id", "generic"];

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .merge(crate::textract::routes())
        .merge(crate::azure::routes())
        .merge(crate::mindee::routes())
        .route("/v1/documents", post(submit).get(lookup))
        .route("/v1/documents/{id}", get(status))
        .route("/v1/documents/{id}/result", get(result))
        .route("/admin/stats", get(stats))
        .route(
            "/admin/idempotency",
            get(get_idempotency).put(put_idempotency),
        )
        .route("/admin/external-refs", get(external_refs))
        .route("/admin/traces", get(traces))
        .route("/admin/faults", get(get_faults).put(put_faults))
        .route("/admin/webhook", get(get_webhook).put(put_webhook))
        .route("/admin/api-keys", post(add_api_key))
        // The key in the body, never in a URL: URLs end up in logs and error messages.
        .route("/admin/api-keys/revoke", post(revoke_api_key))
        .with_state(sim)
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message.into() } })),
    )
        .into_response()
}

/// Authentication, rate limit and the request-level faults every `/v1` call goes through.
/// `Some` is the refusal to send instead of handling the request.
fn gate(sim: &Sim, headers: &HeaderMap) -> Option<Response> {
    let mut inner = sim.lock();
    inner.stats.requests += 1;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        inner.stats.unauthorized += 1;
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send Authorization: Bearer <api key>",
        ));
    };
    if !inner.api_keys.contains(token) {
        inner.stats.forbidden += 1;
        return Some(error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the API key is not valid",
        ));
    }
    match request_fault(&mut inner) {
        Some(RequestFault::Throttled { retry_after_secs }) => Some(throttled(retry_after_secs)),
        Some(RequestFault::ServerError { status }) => {
            Some(error(status, "server_error", "simulated server error"))
        }
        None => None,
    }
}

/// A fault that refuses a request before it is handled, whatever the protocol; each twin
/// answers it in its vendor's own shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestFault {
    /// The rate limit (token bucket) or random throttling: retry after this long.
    Throttled { retry_after_secs: u64 },
    /// A 5xx.
    ServerError { status: StatusCode },
}

/// Rolls the request-level faults: the rate limit, throttling, server errors.
pub(crate) fn request_fault(inner: &mut crate::state::Inner) -> Option<RequestFault> {
    let request = inner.dice.next_request();
    if let Err(retry_after_secs) = inner.dice.take_token(Instant::now()) {
        inner.count_fault(Fault::RateLimited);
        return Some(RequestFault::Throttled { retry_after_secs });
    }
    if inner.strikes(Fault::Throttle, request) {
        return Some(RequestFault::Throttled {
            retry_after_secs: inner.dice.config.retry_after_secs,
        });
    }
    if inner.strikes(Fault::ServerError, request) {
        let status = *inner.dice.pick(&[
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::BAD_GATEWAY,
            StatusCode::SERVICE_UNAVAILABLE,
        ]);
        return Some(RequestFault::ServerError { status });
    }
    None
}

/// A submission has arrived (counted in `submit_requests`) for `subject` (the reference it
/// names, or the document's `sha256:`): whether the slow fault strikes it, and how long it holds
/// it. The caller sleeps that long before creating anything, so a client that gives up meanwhile
/// drops the request and nothing is created.
pub(crate) fn submission_received(sim: &Sim, subject: &str) -> Received {
    sim.with_state(|inner| {
        inner.stats.submit_requests += 1;
        if inner.strikes_for(Fault::AuthRefused, subject) {
            inner.stats.unauthorized += 1;
            return Received::Unauthorized;
        }
        if inner.forced_for(Fault::Throttle, subject) {
            return Received::Throttled(inner.dice.config.retry_after_secs);
        }
        if inner.strikes_for(Fault::DocumentRejected, subject) {
            return Received::Rejected;
        }
        match inner
            .strikes_for(Fault::Slow, subject)
            .then(|| Duration::from_millis(inner.dice.config.slow_delay_ms))
        {
            Some(pause) => Received::Slow(pause),
            None => Received::Go,
        }
    })
}

/// What the per-submission faults decided ([`submission_received`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Received {
    /// Handle it now.
    Go,
    /// Handle it after this pause; a client that gives up meanwhile drops it, and nothing is
    /// created.
    Slow(Duration),
    /// Refuse the credentials (each twin in its vendor's shape): nothing is created.
    Unauthorized,
    /// Throttle it (`429` and `Retry-After` seconds): a throttle forced on this document.
    Throttled(u64),
    /// Reject the document (each twin's "bad document"): nothing is created.
    Rejected,
}

impl Received {
    /// Sleeps through a slow fault; `Err` is the refusal to answer instead of handling it.
    pub(crate) async fn proceed(self) -> Result<(), Refusal> {
        match self {
            Received::Go => Ok(()),
            Received::Slow(pause) => {
                tokio::time::sleep(pause).await;
                Ok(())
            }
            Received::Unauthorized => Err(Refusal::Unauthorized),
            Received::Throttled(secs) => Err(Refusal::Throttled(secs)),
            Received::Rejected => Err(Refusal::Rejected),
        }
    }
}

/// How a submission is refused; each twin answers it in its vendor's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Unauthorized,
    Throttled(u64),
    Rejected,
}

fn throttled(retry_after_secs: u64) -> Response {
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many requests",
    );
    if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// A submission's parameters, from JSON or multipart.
struct Submission {
    profile: String,
    external_ref: Option<String>,
    document: DocumentSource,
}

enum DocumentSource {
    Url(String),
    Upload(Bytes),
}

#[derive(Deserialize)]
struct JsonSubmission {
    url: String,
    profile: Option<String>,
    external_ref: Option<String>,
}

async fn read_submission(request: Request, limit: usize) -> Result<Submission, Response> {
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let bad = |m: String| error(StatusCode::BAD_REQUEST, "invalid_request", m);
    if !is_multipart {
        let body = axum::body::to_bytes(request.into_body(), 64 * 1024)
            .await
            .map_err(|e| bad(e.to_string()))?;
        let parsed: JsonSubmission = serde_json::from_slice(&body)
            .map_err(|e| bad(format!("expected JSON {{url, profile, external_ref}}: {e}")))?;
        return Ok(Submission {
            profile: parsed.profile.unwrap_or_else(|| "generic".into()),
            external_ref: parsed.external_ref,
            document: DocumentSource::Url(parsed.url),
        });
    }
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|e| bad(e.to_string()))?;
    let (mut profile, mut external_ref, mut file) = (None, None, None);
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| bad(e.to_string()))?
    {
        match field.name().unwrap_or_default() {
            "profile" => profile = Some(field.text().await.map_err(|e| bad(e.to_string()))?),
            "external_ref" => {
                external_ref = Some(field.text().await.map_err(|e| bad(e.to_string()))?)
            }
            "file" => {
                let bytes = field.bytes().await.map_err(|e| bad(e.to_string()))?;
                if bytes.len() > limit {
                    return Err(too_large(limit));
                }
                file = Some(bytes);
            }
            _ => {}
        }
    }
    Ok(Submission {
        profile: profile.unwrap_or_else(|| "generic".into()),
        external_ref,
        document: DocumentSource::Upload(
            file.ok_or_else(|| bad("multipart submission needs a 'file' part".into()))?,
        ),
    })
}

fn too_large(limit: usize) -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "document_too_large",
        format!("documents are limited to {limit} bytes"),
    )
}

/// Why a document could not be downloaded.
#[derive(Debug)]
pub(crate) enum FetchError {
    Unreachable(String),
    TooLarge,
}

/// Downloads a URL document, bounded by `limit`, as every twin that takes a URL does.
pub(crate) async fn download(sim: &Sim, url: &str, limit: usize) -> Result<Bytes, FetchError> {
    let mut response = sim
        .http
        .get(url)
        .send()
        .await
        .map_err(|e| FetchError::Unreachable(format!("cannot fetch the document URL: {e}")))?;
    if !response.status().is_success() {
        return Err(FetchError::Unreachable(format!(
            "the document URL answered {}",
            response.status()
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| FetchError::Unreachable(e.to_string()))?
    {
        if body.len() + chunk.len() > limit {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

async fn fetch(sim: &Sim, url: &str, limit: usize) -> Result<Bytes, Response> {
    download(sim, url, limit).await.map_err(|e| match e {
        FetchError::Unreachable(m) => {
            error(StatusCode::UNPROCESSABLE_ENTITY, "document_unreachable", m)
        }
        FetchError::TooLarge => too_large(limit),
    })
}

/// What makes two submissions the same request. A URL counts without its query string, because
/// presigned URLs are re-signed (new query) on every client retry.
fn fingerprint(submission: &Submission) -> String {
    let identity = match &submission.document {
        DocumentSource::Url(url) => format!("url:{}", url.split('?').next().unwrap_or(url)),
        DocumentSource::Upload(bytes) => format!("sha256:{}", hex::encode(Sha256::digest(bytes))),
    };
    let ext = submission.external_ref.as_deref().unwrap_or_default();
    hex::encode(Sha256::digest(format!(
        "{}\n{ext}\n{identity}",
        submission.profile
    )))
}

fn accepted(job: &SimJob, replayed: bool) -> Response {
    let mut response = (
        StatusCode::ACCEPTED,
        Json(json!({ "id": job.id, "status": job.status })),
    )
        .into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

async fn submit(State(sim): State<Arc<Sim>>, request: Request) -> Response {
    let received = std::time::Instant::now();
    let headers = request.headers().clone();
    if let Some(r) = gate(&sim, &headers) {
        return r;
    }
    let honours_keys = sim.with_state(|inner| inner.idempotency != Idempotency::None);
    // A vendor without idempotency does not even look at the header.
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|_| honours_keys)
        .map(str::to_owned);
    let limit = sim.max_document_bytes;
    let submission = match read_submission(request, limit).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let subject = submission
        .external_ref
        .clone()
        .or_else(|| idempotency_key.clone())
        .unwrap_or_default();
    match submission_received(&sim, &subject).proceed().await {
        Ok(()) => {}
        Err(Refusal::Unauthorized) => {
            return error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the API key was refused",
            )
        }
        Err(Refusal::Throttled(secs)) => return throttled(secs),
        Err(Refusal::Rejected) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unreadable_document",
                "the document cannot be read",
            )
        }
    }
    if !PROFILES.contains(&submission.profile.as_str()) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_profile",
            format!("profile must be one of {PROFILES:?}"),
        );
    }
    let fp = fingerprint(&submission);
    let memory = sim.with_state(|inner| inner.idempotency);
    let known = idempotency_key.as_ref().and_then(|key| {
        sim.with_state(|inner| inner.job_for_key(key).map(|j| j.fingerprint.clone()))
    });
    // A remembered key answers at once, before the document is fetched again.
    if let (Some(known), Some(key)) = (known, &idempotency_key) {
        if known == fp {
            let job = sim.with_state(|inner| {
                inner.stats.idempotent_replays += 1;
                inner.job_for_key(key).cloned()
            });
            if let Some(job) = job {
                return accepted(&job, true);
            }
        } else {
            sim.with_state(|inner| inner.stats.idempotency_conflicts += 1);
            return error(
                StatusCode::CONFLICT,
                "idempotency_conflict",
                "this Idempotency-Key was used with different parameters",
            );
        }
    }
    let document = match &submission.document {
        DocumentSource::Upload(bytes) => bytes.clone(),
        DocumentSource::Url(url) => match fetch(&sim, url, limit).await {
            Ok(bytes) => bytes,
            Err(r) => return r,
        },
    };
    if document.is_empty() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_document",
            "the document is empty",
        );
    }
    if let Some(limit) = sim.twins.max_pages {
        match crate::engine::pdf_pages(&document).await {
            Ok(Some(pages)) if pages > limit => {
                sim.with_state(|inner| inner.stats.too_many_pages += 1);
                return error(
                    StatusCode::BAD_REQUEST,
                    "too_many_pages",
                    format!("the document has {pages} pages; at most {limit} are read per request"),
                );
            }
            _ => {}
        }
    }
    // Checked again inside `accept`, under the lock: a concurrent request with the same key
    // may have won meanwhile.
    let outcome = sim.accept(Accept {
        protocol: Protocol::Native,
        profile: submission.profile.clone(),
        external_ref: submission.external_ref.clone(),
        key: idempotency_key.map(|key| KeyRule {
            key,
            fingerprint: fp,
            memory,
        }),
        document,
        received,
    });
    match outcome {
        Accepted::New { job, cut } => {
            if let Some(trace) = headers.get("x-amzn-trace-id").and_then(|v| v.to_str().ok()) {
                sim.with_state(|inner| inner.traces.insert(job.id.clone(), trace.to_owned()));
            }
            let mut response = accepted(&job, false);
            cut_answer(&mut response, cut);
            response
        }
        Accepted::Replayed(job) => accepted(&job, true),
        Accepted::Conflict => error(
            StatusCode::CONFLICT,
            "idempotency_conflict",
            "this Idempotency-Key was used with different parameters",
        ),
    }
}

/// Marks a response to be lost the way `cut` says (see [`crate::server`]).
pub(crate) fn cut_answer(response: &mut Response, cut: Option<Cut>) {
    match cut {
        Some(Cut::Drop) => {
            response.extensions_mut().insert(DropConnection);
        }
        Some(Cut::Truncate) => {
            response.extensions_mut().insert(TruncateBody);
        }
        Some(Cut::GatewayError(status)) => {
            // What a load balancer in front of the vendor sends: its own page, not the vendor's
            // error shape (no JSON, no error type).
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            *response = (
                status,
                [(header::CONTENT_TYPE, "text/html")],
                format!("<html><body><h1>{status}</h1></body></html>"),
            )
                .into_response();
        }
        Some(Cut::Hang(pause)) => {
            response.extensions_mut().insert(HoldResponse(pause));
        }
        None => {}
    }
}

#[derive(Deserialize)]
struct LookupQuery {
    idempotency_key: Option<String>,
    external_ref: Option<String>,
}

/// `GET /v1/documents?idempotency_key=…` or `?external_ref=…`: "did you get my submission?"
async fn lookup(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(query): Query<LookupQuery>,
) -> Response {
    if let Some(r) = gate(&sim, &headers) {
        return r;
    }
    if query.idempotency_key.is_none() && query.external_ref.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "give idempotency_key or external_ref",
        );
    }
    let inner = sim.lock();
    if inner.idempotency == Idempotency::None {
        // Like Azure and Mindee: no way to ask "did you get my submission?".
        return error(
            StatusCode::BAD_REQUEST,
            "unsupported",
            "this vendor keeps no idempotency keys and has no search",
        );
    }
    // By key: only what the vendor still remembers (an `expiring` key may be forgotten).
    let mut found: Vec<&SimJob> = match &query.idempotency_key {
        Some(key) => inner.job_for_key(key).into_iter().collect(),
        None => inner.jobs.values().collect(),
    };
    found.retain(|j| {
        query
            .external_ref
            .as_ref()
            .is_none_or(|r| j.external_ref.as_ref() == Some(r))
    });
    found.sort_by_key(|j| (j.created_at, j.id.clone()));
    Json(json!({ "data": found.iter().map(|j| j.view()).collect::<Vec<_>>() })).into_response()
}

async fn status(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = gate(&sim, &headers) {
        return r;
    }
    match sim.lock().jobs.get(&id) {
        Some(job) if !job.is_gone(sim.twins.result_ttl) => Json(job.view()).into_response(),
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such document"),
    }
}

async fn result(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = gate(&sim, &headers) {
        return r;
    }
    let inner = sim.lock();
    let Some(job) = inner
        .jobs
        .get(&id)
        .filter(|j| !j.is_gone(sim.twins.result_ttl))
    else {
        return error(StatusCode::NOT_FOUND, "not_found", "no such document");
    };
    match (job.status, &job.result) {
        (Status::Succeeded, Some(result)) => Json(result.clone()).into_response(),
        (Status::Failed, _) => Json(job.view()).into_response(),
        (status, _) => error(
            StatusCode::CONFLICT,
            "not_ready",
            format!("the document is {}", json!(status).as_str().unwrap_or("")),
        ),
    }
}

async fn stats(State(sim): State<Arc<Sim>>) -> Response {
    Json(sim.stats()).into_response()
}

async fn get_idempotency(State(sim): State<Arc<Sim>>) -> Response {
    Json(sim.lock().idempotency).into_response()
}

/// Switches how repeated `Idempotency-Key`s are treated (see [`Idempotency`]). Keys already
/// remembered stay remembered unless the new mode forgets them.
async fn put_idempotency(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Idempotency>(&body) {
        Ok(mode) => {
            sim.lock().idempotency = mode;
            Json(mode).into_response()
        }
        Err(e) => error(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency",
            e.to_string(),
        ),
    }
}

/// Ground truth a client cannot see: every external reference and the jobs made for it, oldest
/// first. More than one job for a reference is a duplicate charge.
async fn traces(State(sim): State<Arc<Sim>>) -> Response {
    Json(&sim.lock().traces).into_response()
}

async fn external_refs(State(sim): State<Arc<Sim>>) -> Response {
    Json(&sim.lock().by_external_ref).into_response()
}

async fn get_faults(State(sim): State<Arc<Sim>>) -> Response {
    Json(sim.lock().dice.config.clone()).into_response()
}

/// Replaces the fault configuration and re-seeds the dice.
async fn put_faults(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    match serde_json::from_slice::<FaultConfig>(&body) {
        Ok(config) => {
            sim.lock().dice = FaultDice::new(config.clone());
            Json(config).into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, "invalid_faults", e.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookUpdate {
    url: Option<String>,
    secrets: Option<Vec<String>>,
    retry_schedule_ms: Option<Vec<u64>>,
}

async fn get_webhook(State(sim): State<Arc<Sim>>) -> Response {
    let inner = sim.lock();
    // Never echo secrets; say how many sign.
    Json(json!({
        "url": inner.webhook.url,
        "signing_secrets": inner.webhook.keys.len(),
        "retry_schedule_ms": inner.webhook.retry_schedule.iter().map(|d| d.as_millis() as u64).collect::<Vec<_>>(),
    }))
    .into_response()
}

/// Sets the webhook URL and/or the signing secrets. During a rotation, send both the old and the
/// new secret: every delivery is then signed with both.
async fn put_webhook(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let update: WebhookUpdate = match serde_json::from_slice(&body) {
        Ok(u) => u,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_webhook", e.to_string()),
    };
    let keys = match update.secrets.as_ref().map(|secrets| {
        secrets
            .iter()
            .map(|s| webhooks::decode_secret(s))
            .collect::<Result<Vec<_>, _>>()
    }) {
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, "invalid_secret", e.to_string()),
        Some(Ok(keys)) => Some(keys),
        None => None,
    };
    {
        let mut inner = sim.lock();
        if let Some(url) = update.url {
            inner.webhook.url = Some(url).filter(|u| !u.is_empty());
        }
        if let Some(keys) = keys {
            inner.webhook.keys = keys;
        }
        if let Some(schedule) = update.retry_schedule_ms {
            inner.webhook.retry_schedule =
                schedule.into_iter().map(Duration::from_millis).collect();
        }
    }
    get_webhook(State(sim)).await
}

#[derive(Deserialize)]
struct NewApiKey {
    key: Option<String>,
}

/// Adds an API key (generated if none is given) and returns it: the vendor side of an API key
/// rotation.
async fn add_api_key(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let requested: NewApiKey = if body.is_empty() {
        NewApiKey { key: None }
    } else {
        match serde_json::from_slice(&body) {
            Ok(k) => k,
            Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_key", e.to_string()),
        }
    };
    let key = requested
        .key
        .unwrap_or_else(|| format!("sk_sim_{}", uuid::Uuid::new_v4().simple()));
    if key.len() < 16 {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_key",
            "API keys are at least 16 characters",
        );
    }
    sim.lock().api_keys.insert(key.clone());
    (StatusCode::CREATED, Json(json!({ "key": key }))).into_response()
}

async fn revoke_api_key(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let key = match serde_json::from_slice::<NewApiKey>(&body) {
        Ok(NewApiKey { key: Some(key) }) => key,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_key",
                "give {\"key\": \"…\"}",
            )
        }
    };
    if sim.lock().api_keys.remove(&key) {
        Response::builder()
            .status(StatusCode::NO_CONTENT)
            .body(Body::empty())
            .unwrap_or_default()
    } else {
        error(StatusCode::NOT_FOUND, "not_found", "no such API key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(profile: &str, ext: Option<&str>, bytes: &'static [u8]) -> Submission {
        Submission {
            profile: profile.into(),
            external_ref: ext.map(str::to_owned),
            document: DocumentSource::Upload(Bytes::from_static(bytes)),
        }
    }

    #[test]
    fn fingerprints_ignore_presigned_query_strings_only() {
        let url = |u: &str| Submission {
            profile: "receipt".into(),
            external_ref: None,
            document: DocumentSource::Url(u.into()),
        };
        assert_eq!(
            fingerprint(&url("http://s3/b/k.jpg?X-Amz-Signature=1")),
            fingerprint(&url("http://s3/b/k.jpg?X-Amz-Signature=2"))
        );
        assert_ne!(
            fingerprint(&url("http://s3/b/k.jpg")),
            fingerprint(&url("http://s3/b/other.jpg"))
        );
        assert_ne!(
            fingerprint(&upload("receipt", None, b"a")),
            fingerprint(&upload("invoice", None, b"a"))
        );
        assert_ne!(
            fingerprint(&upload("receipt", Some("x"), b"a")),
            fingerprint(&upload("receipt", None, b"a"))
        );
    }
}
