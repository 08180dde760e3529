//! `webhook`: verify, dedupe, acknowledge fast.
//!
//! A vendor delivery (Lambda Function URL or API Gateway HTTP API v2 — the same event shape) is:
//! 1. size-checked, then **verified before anything parses it**, over the exact body bytes
//!    (an `isBase64Encoded` body is decoded first — one that is not base64 is a 400; UTF-8 is
//!    not needed);
//!    on a signature miss the keyring is refreshed once, since a rotation may have just moved
//!    the stages;
//! 2. acknowledged at once, with no AWS call, if it only reports progress (`queued`,
//!    `processing`): there is nothing to act on until a final status, and reconcile polls jobs
//!    whose final webhook never comes — so progress events cost nothing but a verification;
//! 3. matched to its job through the `external_ref` we sent (our job id), so a webhook that
//!    beats the submit function's own write is still attributed — by its form only: parse reads
//!    the job and dead-letters a notice for one that does not exist;
//! 4. deduplicated on its event id with a claim whose TTL outlives the timestamp tolerance
//!    (a replay outside the window fails the timestamp check; inside it, the claim). The claim
//!    is *in progress* until the notice is on the queue: a delivery that meets one in progress
//!    is answered 503 (the vendor retries), and once the holder's time is up
//!    (`WEBHOOK_CLAIM_LEASE_SECS`, the function's timeout) the next delivery takes it over — so
//!    an invocation that dies between its claim and its enqueue loses nothing;
//! 5. put on the results queue as a [`ResultNotice`], the claim marked done, and answered 200.
//!
//! Ordering is not this function's business: parse checks the vendor's status and the job's
//! state machine, so a `processing` after `succeeded` changes nothing. Answers give nothing away:
//! 400 for a malformed request, 401 for anything that fails verification.

use std::time::Duration;

use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use ocrbridge::config::{setting, SettingError, StackConfig};
use ocrbridge::failpoints;
use ocrbridge::function_url;
use ocrbridge::job::JobId;
use ocrbridge::keyring::{Keyring, KeyringError};
use ocrbridge::ledger::{Claim, Ledger};
use ocrbridge::metrics::{self, Metrics};
use ocrbridge::queue::{Queue, ResultNotice};
use ocrbridge::signature::{Headers, Rejection, Scheme, DEFAULT_TOLERANCE_SECS};
use ocrbridge::time::UnixMillis;
use ocrbridge::vendors::select::{VendorConfigError, VendorKind};
use ocrbridge::vendors::webhook::WebhookFormat;
use serde_json::Value;
use tracing::{info, warn};

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    /// `VENDOR` (default `sim`): whose webhooks these are, for the metrics.
    pub vendor: VendorKind,
    /// The vendor's webhooks (`VENDOR`; `WEBHOOK_TOLERANCE_SECS`, default 300, is the accepted
    /// clock difference, both directions, for a scheme with timestamps). `None`: the vendor sends
    /// no webhooks, and every request is refused.
    pub format: Option<WebhookFormat>,
    /// `WEBHOOK_MAX_BODY_BYTES` (default: the vendor's, `WebhookFormat::default_max_body_bytes`:
    /// 256 KiB for a notice, 6 MiB for Mindee's whole inference).
    pub max_body_bytes: usize,
    /// `WEBHOOK_PROGRESS_STATUSES` (comma-separated, default `queued,processing`): statuses that
    /// are acknowledged after verification and go no further.
    pub progress_statuses: Vec<String>,
    /// `WEBHOOK_CLAIM_LEASE_SECS` (default 10, the function's timeout in the template): how long
    /// a delivery's dedupe claim stays in progress before another delivery may take it over.
    /// At least the function's timeout, or a slow holder and its successor both enqueue (a
    /// duplicate notice, which parse ignores — but a wasted one).
    pub claim_lease: Duration,
}

impl WebhookConfig {
    /// Every setting parsed, or the first bad one named with its value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let tolerance_secs = setting(
            &lookup,
            "WEBHOOK_TOLERANCE_SECS",
            DEFAULT_TOLERANCE_SECS,
            "a whole number of seconds from 1 to 3600",
            |t: &i64| (1..=3600).contains(t),
        )?;
        let vendor = match lookup("VENDOR") {
            Some(v) if !v.trim().is_empty() => v.parse::<VendorKind>()?,
            _ => VendorKind::Sim,
        };
        let format = WebhookFormat::for_vendor(vendor, tolerance_secs);
        Ok(WebhookConfig {
            vendor,
            format,
            max_body_bytes: setting(
                &lookup,
                "WEBHOOK_MAX_BODY_BYTES",
                format.map_or(256 * 1024, WebhookFormat::default_max_body_bytes),
                "a size in bytes from 1 to 6291456 (Lambda's payload limit)",
                |b: &usize| (1..=6 * 1024 * 1024).contains(b),
            )?,
            progress_statuses: lookup("WEBHOOK_PROGRESS_STATUSES")
                .unwrap_or_else(|| "queued,processing".into())
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            claim_lease: ocrbridge::config::duration_setting(
                &lookup,
                "WEBHOOK_CLAIM_LEASE_SECS",
                Duration::from_secs(10),
                Duration::from_secs(1),
            )?,
        })
    }
}

/// A webhook setting that is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Vendor(#[from] VendorConfigError),
    #[error(transparent)]
    Setting(#[from] SettingError),
}

/// Why a Function URL event is not a request this function can read: answered 400 and counted
/// in `WebhooksRejected` under [`Malformed::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// `requestContext.http.method` is missing, empty, or not an HTTP method token (RFC 9110
    /// §9.1: one or more `tchar`). Lambda always fills it in for a real request, so such an event
    /// was made by hand or mangled on the way; it is not a method we refuse (405), it is no method.
    Method,
    /// `isBase64Encoded` is set and the body is not base64.
    Body,
}

impl Malformed {
    pub fn as_str(self) -> &'static str {
        match self {
            Malformed::Method => "malformed_method",
            Malformed::Body => "malformed_body",
        }
    }
}

/// RFC 9110 §5.6.2 `tchar`: what an HTTP method token may be made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A delivery's method and exact body bytes from its event (`isBase64Encoded` bodies decoded).
/// The method is a well-formed token, but not necessarily `POST`: [`Webhook::handle`] answers
/// any other method 405.
pub fn delivery_of(event: &LambdaFunctionUrlRequest) -> Result<(String, Vec<u8>), Malformed> {
    let method = match event.request_context.http.method.as_deref() {
        Some(m) if !m.is_empty() && m.bytes().all(is_tchar) => m.to_owned(),
        _ => return Err(Malformed::Method),
    };
    let body = function_url::body(event).map_err(|_| Malformed::Body)?;
    Ok((method, body))
}

/// An HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: &'static str,
}

const OK: Reply = Reply {
    status: 200,
    body: r#"{"status":"accepted"}"#,
};
const DUPLICATE: Reply = Reply {
    status: 200,
    body: r#"{"status":"duplicate"}"#,
};
const PROGRESS: Reply = Reply {
    status: 200,
    body: r#"{"status":"noted"}"#,
};
const BAD_REQUEST: Reply = Reply {
    status: 400,
    body: r#"{"error":"bad request"}"#,
};
const UNAUTHORIZED: Reply = Reply {
    status: 401,
    body: r#"{"error":"unauthorized"}"#,
};
/// A signature miss re-reads the secrets at most this often per container.
pub const MISS_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

const NOT_FOUND: Reply = Reply {
    status: 404,
    body: r#"{"error":"not found"}"#,
};
const METHOD: Reply = Reply {
    status: 405,
    body: r#"{"error":"method not allowed"}"#,
};
const TOO_LARGE: Reply = Reply {
    status: 413,
    body: r#"{"error":"payload too large"}"#,
};
const UNAVAILABLE: Reply = Reply {
    status: 503,
    body: r#"{"error":"try again"}"#,
};

pub struct Webhook {
    pub keyring: Keyring,
    pub ledger: Ledger,
    pub queue: Queue,
    pub metrics: Metrics,
    pub stack: StackConfig,
    pub config: WebhookConfig,
}

impl Webhook {
    /// The Lambda entry point: a Function URL (or HTTP API v2) event in, its response out. The
    /// body is decoded here, not by a framework: an `isBase64Encoded` body that is not base64 is
    /// a 400 like any malformed request (`lambda_http` panics on it, which fuzzing found), and
    /// so is an event without a method (fuzzing found that one too); a method other than `POST`
    /// is a 405 that names `POST` in `Allow`.
    pub async fn handle_event(
        &self,
        event: &LambdaFunctionUrlRequest,
    ) -> LambdaFunctionUrlResponse {
        let reply = match delivery_of(event) {
            Ok((method, body)) => {
                let now = (UnixMillis::now().0 / 1000) as i64;
                self.handle(&method, &event.headers, &body, now).await
            }
            Err(malformed) => {
                self.rejected(malformed.as_str());
                warn!(
                    reason = malformed.as_str(),
                    "not a request this function can read"
                );
                BAD_REQUEST
            }
        };
        function_url::json_response(reply.status, reply.body.to_owned())
    }

    fn rejected(&self, reason: &str) {
        self.metrics
            .count(metrics::WEBHOOKS_REJECTED, &[reason], &[]);
    }

    /// Handles one delivery; `now` is unix seconds.
    pub async fn handle(
        &self,
        method: &str,
        headers: &(impl Headers + ?Sized),
        body: &[u8],
        now: i64,
    ) -> Reply {
        let Some(format) = self.config.format else {
            // This vendor sends no webhooks: nothing here is ours.
            self.rejected("no_webhooks");
            return NOT_FOUND;
        };
        if !method.eq_ignore_ascii_case("POST") {
            self.rejected("method");
            return METHOD;
        }
        if body.len() > self.config.max_body_bytes {
            self.rejected("too_large");
            return TOO_LARGE;
        }
        let verified = match self.verify(format.scheme(), headers, body, now).await {
            Ok(v) => v,
            Err(None) => return UNAVAILABLE,
            Err(Some(rejection)) => {
                self.rejected(rejection.as_str());
                warn!(reason = rejection.as_str(), "webhook rejected");
                return match rejection {
                    Rejection::Missing | Rejection::Malformed => BAD_REQUEST,
                    _ => UNAUTHORIZED,
                };
            }
        };

        // Verified: now it is safe to look inside.
        let Ok(payload) = serde_json::from_slice::<Value>(body) else {
            self.rejected("malformed_payload");
            return BAD_REQUEST;
        };
        let delivery = match format.read(&payload) {
            Ok(d) => d,
            Err(missing) => {
                self.rejected("malformed_payload");
                warn!(missing, "a verified webhook without what it must carry");
                return BAD_REQUEST;
            }
        };
        let (vendor_job_id, status) = (delivery.vendor_job_id.as_str(), delivery.status.as_str());
        // The vendor's own event id where its payload has one (Mindee's inference id: its only
        // replay guard), else the signature scheme's.
        let event_id = delivery
            .event_id
            .clone()
            .unwrap_or_else(|| verified.event_id.clone());
        if self.config.progress_statuses.iter().any(|p| p == status) {
            self.metrics
                .count(metrics::WEBHOOKS_VERIFIED, &[status], &[]);
            info!(vendor_job_id, status, "progress event; nothing to act on");
            return PROGRESS;
        }
        // Ours only if it names one of our job ids. Whether that job exists is parse's question
        // (it reads the job anyway and dead-letters a notice for one that does not): asking here
        // too would cost a read on every delivery.
        let Some(job_id) = delivery
            .reference
            .as_deref()
            .and_then(|r| JobId::parse(r).ok())
        else {
            // Signed by the vendor but not ours: acknowledge so it stops, count it, and keep the
            // evidence in the results DLQ.
            self.rejected("unknown_job");
            let parked = failpoints::around(
                "webhook.before_dead_letter",
                "webhook.after_dead_letter",
                vendor_job_id,
                self.queue.dead_letter(
                    &self.stack.results_dlq_url,
                    &String::from_utf8_lossy(body),
                    "unknown_job",
                    "a verified webhook names no job of ours",
                    &event_id,
                ),
            )
            .await;
            if let Err(e) = parked {
                // Not kept: let the vendor try again rather than lose the evidence.
                warn!(error = %e, "could not keep the stranger's webhook in the DLQ");
                return UNAVAILABLE;
            }
            return OK;
        };

        let claim = failpoints::around(
            "webhook.before_claim",
            "webhook.after_claim_before_enqueue",
            job_id.as_str(),
            self.ledger.claim_once(
                "webhook",
                &event_id,
                format.dedupe_ttl(),
                self.config.claim_lease,
                UnixMillis::now(),
            ),
        )
        .await;
        let token = match claim {
            Ok(Claim::First(token)) => token,
            Ok(Claim::InProgress { until }) => {
                // Another invocation is putting this delivery's notice on the queue, or died
                // doing so: not a duplicate yet. The vendor's retry finds it done, or takes it
                // over once `until` has passed.
                info!(%job_id, %event_id, until = until.0, "the same delivery is in progress; asking for a retry");
                return UNAVAILABLE;
            }
            Ok(Claim::Duplicate { .. }) => {
                self.metrics.count(
                    metrics::WEBHOOK_DUPLICATES,
                    &[],
                    &[("job_id", job_id.as_str())],
                );
                info!(%job_id, %event_id, "duplicate delivery");
                return DUPLICATE;
            }
            Err(e) => {
                warn!(error = %e, "dedupe unavailable");
                return UNAVAILABLE;
            }
        };
        let notice = ResultNotice {
            job_id: job_id.clone(),
            vendor_job_id: vendor_job_id.to_owned(),
            status: status.to_owned(),
            vendor_timestamp: verified.timestamp,
            event_id: Some(event_id.clone()),
            vendor: Some(self.config.vendor.as_str().to_owned()),
        };
        let sent = async {
            self.queue
                .send_json(&self.stack.results_queue_url, &notice)
                .await?;
            failpoints::check("webhook.after_enqueue", job_id.as_str()).await?;
            Ok::<_, ocrbridge::queue::QueueError>(())
        };
        if let Err(e) = sent.await {
            // Not enqueued: give the claim back so the vendor's retry is not taken for a duplicate.
            warn!(error = %e, "results queue unavailable");
            let released = failpoints::around(
                "webhook.before_release_claim",
                "webhook.after_release_claim",
                job_id.as_str(),
                self.ledger.release_claim("webhook", &event_id, &token),
            )
            .await;
            if let Err(e) = released {
                // It stays in progress until its time is up; the retry after that takes it over.
                warn!(error = %e, "could not give the claim back; it lapses");
            }
            return UNAVAILABLE;
        }
        let done = async {
            let ours = self
                .ledger
                .complete_claim("webhook", &event_id, &token)
                .await?;
            failpoints::check("webhook.after_complete_claim", job_id.as_str()).await?;
            Ok::<_, ocrbridge::ledger::LedgerError>(ours)
        };
        match done.await {
            Ok(true) => {}
            // Our time ran out and another delivery took the claim over: it enqueues too, and
            // parse ignores the second notice.
            Ok(false) => info!(%event_id, "the claim was taken over meanwhile"),
            // The notice is on the queue; a retry after the claim lapses enqueues it again,
            // which parse ignores. Answer 200: the vendor has delivered.
            Err(e) => warn!(error = %e, "could not mark the claim done; it lapses"),
        }
        self.metrics.count(
            metrics::WEBHOOKS_VERIFIED,
            &[status],
            &[("job_id", job_id.as_str())],
        );
        if let Some(ts) = verified.timestamp {
            let lag_ms = (now - ts).max(0) as f64 * 1000.0;
            self.metrics.emit(
                metrics::WEBHOOK_DELIVERY_LAG,
                lag_ms,
                &[],
                &[("job_id", job_id.as_str())],
            );
        }
        info!(%job_id, status, "webhook accepted");
        OK
    }

    /// `Err(None)`: the keyring is unavailable (answer 503, the vendor retries).
    async fn verify(
        &self,
        scheme: Scheme,
        headers: &(impl Headers + ?Sized),
        body: &[u8],
        now: i64,
    ) -> Result<ocrbridge::signature::Verified, Option<Rejection>> {
        let keys: Vec<_> = self
            .keyring
            .values(false)
            .await
            .map_err(|e| self.keyring_unavailable(&e))?
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        match scheme.verify(headers, body, &keys, now) {
            Err(Rejection::Signature) => {
                // Perhaps rotation just moved the stages: refresh, then decide — a miss forces
                // a refresh at most once per MISS_REFRESH_INTERVAL, so forged traffic costs an
                // HMAC, not a Secrets Manager read per request.
                let keys: Vec<_> = self
                    .keyring
                    .values_after_miss(MISS_REFRESH_INTERVAL)
                    .await
                    .map_err(|e| self.keyring_unavailable(&e))?
                    .into_iter()
                    .map(|(_, v)| v)
                    .collect();
                scheme.verify(headers, body, &keys, now).map_err(Some)
            }
            other => other.map_err(Some),
        }
    }

    /// The signing secrets cannot be read (Secrets Manager down, no permission, wrong ARN):
    /// said in the log, since the vendor only sees a 503 and retries. A read refused with
    /// 401/403 is counted with the other refused credentials
    /// (`VendorAuthFailures[…, webhook_secret, …]`): every delivery fails until it is fixed.
    fn keyring_unavailable(&self, error: &KeyringError) -> Option<Rejection> {
        if let Some(status) = error.refused_status() {
            let status = status.to_string();
            self.metrics.count(
                metrics::AUTH_FAILURES,
                &[self.config.vendor.as_str(), "webhook_secret", &status],
                &[],
            );
        }
        warn!(%error, "the signing secrets are unavailable; answering 503");
        None
    }
}
