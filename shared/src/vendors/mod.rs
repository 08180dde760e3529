//! The OCR vendor: the one seam around the outside world that is ocrbridge's own.
//!
//! The trait is shaped by the vendors it must fit, not only the simulator:
//! - Textract is idempotent natively (`ClientRequestToken`), has no webhook signatures (SNS), no
//!   `Retry-After`, and no lookup by token — a resubmission with the same token *is* the lookup.
//! - Azure Document Intelligence has no idempotency and no webhooks: poll `Operation-Location`.
//! - Mindee v2 signs webhooks with a hex HMAC of the body.
//!
//! [`Capabilities`] says which of these a vendor has; the submit and reconcile logic reads it
//! instead of assuming.

pub mod ambiguity;
pub mod answer;
pub mod azure;
pub mod date_order;
pub mod http;
pub mod identity;
pub mod mindee;
pub mod normalize;
pub mod poll;
pub mod route;
pub mod select;
pub mod sim;
pub mod textract;
pub mod webhook;

use std::future::Future;
use std::time::Duration;

use crate::job::Profile;
use crate::time::UnixMillis;

/// How a vendor treats a repeated submission of the same document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// The same key returns the same vendor job and bills nothing, for as long as the vendor
    /// remembers the key: `None` for as long as the job exists (the simulator's native mode),
    /// `Some(7 days)` for Textract's `ClientRequestToken`.
    Native { remembers_for: Option<Duration> },
    /// No protection: a repeat is a second job and a second charge (Azure, Mindee, Google).
    None,
}

/// How the vendor tells us a job finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Signed HTTP webhooks to the webhook function.
    Webhook(WebhookScheme),
    /// An AWS notification (Textract: SNS → SQS), which stays inside AWS: nothing to sign.
    Notification,
    /// Nothing is pushed: the vendor is polled.
    Poll,
}

/// How the vendor signs its webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookScheme {
    /// Standard Webhooks: `webhook-id`/`webhook-timestamp`/`webhook-signature`, `v1,<base64>`.
    StandardWebhooks,
    /// Hex HMAC-SHA256 of the raw body in one header (Mindee-like).
    HexHmacBody,
}

/// What a vendor can do for us. Submit and reconcile read this instead of assuming, so that a
/// new vendor is one adapter, not edits to the functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    pub idempotency: Idempotency,
    /// [`Vendor::find_by_idempotency_key`] answers "did you get my submission?", with authority
    /// while the vendor remembers the key.
    pub lookup_by_key: bool,
    pub completion: Completion,
    /// The completion names our job (the simulator's `external_ref`, Mindee's `alias`,
    /// Textract's `JobTag`), so a submission whose answer was lost is recognised when the vendor
    /// finishes it.
    pub completion_carries_reference: bool,
    /// Status and result reads count against the same request rate as submissions (Azure:
    /// polls spend its TPS, and users see 429s below the documented rate when they forget), so
    /// they take the same admission tokens.
    pub reads_spend_rate_limit: bool,
}

impl Capabilities {
    /// What one call of `kind` can do. A synchronous one ([`answer`]) has none of the job's
    /// protections, whatever the vendor's jobs have: no token deduplicates it, there is no job
    /// to look up, and no completion will ever name it.
    pub fn for_call(self, kind: crate::job::CallKind) -> Capabilities {
        match kind {
            crate::job::CallKind::Job => self,
            crate::job::CallKind::Answer => Capabilities {
                idempotency: Idempotency::None,
                lookup_by_key: false,
                completion_carries_reference: false,
                ..self
            },
        }
    }

    /// Whether the vendor still remembers an idempotency key first sent at `sent_at`, with a
    /// margin (a tenth of its memory, at most an hour) for clock differences between us and it.
    pub fn remembers_key(&self, sent_at: UnixMillis, now: UnixMillis) -> bool {
        match self.idempotency {
            Idempotency::Native {
                remembers_for: None,
            } => true,
            Idempotency::Native {
                remembers_for: Some(memory),
            } => {
                let margin = (memory / 10).min(Duration::from_secs(3600));
                now.since(sent_at) + margin < memory
            }
            Idempotency::None => false,
        }
    }
}

/// One document to submit, in every form a vendor may want it: the S3 object itself (Textract
/// reads it in place, same region), or a short-lived presigned URL (Azure, Mindee, the
/// simulator). A vendor that wants the bytes (Google's online API) reads them through the URL.
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    /// Deterministic, derived from the job: the same job always sends the same key.
    pub idempotency_key: &'a str,
    /// The uploaded object (bucket, key, version).
    pub object: &'a crate::blob::ObjectRef,
    /// A short-lived presigned GET URL of the document.
    pub document_url: &'a str,
    pub profile: &'a Profile,
    /// Our job id, echoed back in webhooks and lookups.
    pub external_ref: &'a str,
    /// The longest the call may take: what is left of the submit lease. A call still running
    /// when the lease ends could overlap the next holder's, so the adapter gives up first (and
    /// the outcome is then ambiguous, which the next holder resolves).
    pub time_limit: Duration,
}

/// The vendor's view of a job's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VendorStatus {
    Queued,
    Processing,
    Succeeded,
    Failed {
        code: String,
        message: String,
    },
    /// Finished with part of the document (Textract's `PARTIAL_SUCCESS`): not a success; the
    /// job fails with its own reason rather than passing off part of a result as the whole.
    Partial {
        message: String,
    },
    /// A status this adapter does not know (schema drift). Never treated as success.
    Unknown(String),
}

impl VendorStatus {
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            VendorStatus::Succeeded | VendorStatus::Failed { .. } | VendorStatus::Partial { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorJob {
    pub id: String,
    pub status: VendorStatus,
    /// When to ask again, if the vendor said (Azure's `Retry-After` on a running operation).
    pub retry_after: Option<Duration>,
}

/// How an error should be treated. See [`VendorError::class`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The vendor did not take the request: try again later.
    Retryable,
    /// It will never work: do not retry.
    Permanent,
    /// The vendor may have taken the request: look it up before trying again.
    Ambiguous,
}

#[derive(Debug, thiserror::Error)]
pub enum VendorError {
    /// 429: slow down, for `retry_after` if the vendor said.
    #[error("vendor throttled the request (429){}", retry_after.map(|d| format!(", retry after {d:?}")).unwrap_or_default())]
    Throttled { retry_after: Option<Duration> },
    /// 5xx or 408: the vendor is failing; the request was not accepted.
    #[error("vendor unavailable ({status})")]
    Unavailable {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// The vendor has as many of our jobs in progress as it allows (Textract's
    /// `LimitExceededException`): wait longer than for a throttle; counted apart.
    #[error(
        "the vendor has as many of our jobs in progress as it allows; retry after {retry_after:?}"
    )]
    Busy { retry_after: Duration },
    /// The connection could not be made: the request never left.
    #[error("vendor unreachable: {0}")]
    Unreachable(String),
    /// Our side stopped the call before it was made: too little of the lease left to start
    /// it, or the vendor's API key could not be read. The request never left, and it says
    /// nothing of the vendor's health: the breaker does not count it (a slow DynamoDB or
    /// Secrets Manager must not open a healthy vendor's breaker), nor does the retry budget.
    #[error("the call to the vendor was not made: {0}")]
    NotSent(String),
    /// The request was sent but no answer came (timeout, connection dropped): it may have been
    /// accepted.
    #[error("no answer from the vendor after sending the request: {0}")]
    NoAnswer(String),
    /// 401/403: the API key is wrong, revoked, or just rotated.
    #[error("vendor refused the credentials ({status})")]
    Auth { status: u16 },
    /// Any other 4xx: the request itself is wrong and will stay wrong.
    #[error("vendor rejected the request ({status} {code}): {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    /// The vendor answered 2xx, but the answer could not be read (the body broke off, or it
    /// lacks what we need). For a submission that means the vendor **accepted** it: never a
    /// failure, always a question to resolve.
    #[error("the vendor answered {status} but the answer could not be used: {detail}")]
    Unreadable { status: u16, detail: String },
    /// The response did not have the expected shape.
    #[error("unexpected vendor response: {0}")]
    Protocol(String),
    /// The answer is larger than ocrbridge reads (`VENDOR_MAX_RESULT_BYTES` for a result).
    #[error("the vendor's answer is larger than {limit} bytes{}; raise VENDOR_MAX_RESULT_BYTES if the memory allows", size.map(|s| format!(" ({s} bytes)")).unwrap_or_default())]
    TooLarge { limit: usize, size: Option<u64> },
    /// The vendor no longer has the job or its result — expired, or never kept: each vendor
    /// says it its own way (`404`/`410`, Textract's `InvalidJobIdException`, a `400`).
    /// Nothing to wait for; a retry buys the document again, knowingly.
    #[error("the vendor no longer has the job: {0}")]
    Gone(String),
}

impl From<crate::failpoints::Injected> for VendorError {
    /// Before the call: it never left. After it: the vendor has it and the answer is lost.
    fn from(injected: crate::failpoints::Injected) -> Self {
        if injected.after {
            VendorError::NoAnswer(injected.to_string())
        } else {
            VendorError::Unreachable(injected.to_string())
        }
    }
}

impl From<crate::keyring::KeyringError> for VendorError {
    /// The API key could not be read, so the call was never made: nothing of the vendor's
    /// health (the keyring's error names the secret, never its value).
    fn from(e: crate::keyring::KeyringError) -> Self {
        VendorError::NotSent(format!("API key unavailable: {e}"))
    }
}

impl VendorError {
    pub fn class(&self) -> ErrorClass {
        match self {
            VendorError::Throttled { .. }
            | VendorError::Busy { .. }
            | VendorError::Unavailable { .. }
            | VendorError::Unreachable(_)
            | VendorError::NotSent(_) => ErrorClass::Retryable,
            VendorError::NoAnswer(_) | VendorError::Unreadable { .. } => ErrorClass::Ambiguous,
            VendorError::Auth { .. }
            | VendorError::Rejected { .. }
            | VendorError::Protocol(_)
            | VendorError::TooLarge { .. }
            | VendorError::Gone(_) => ErrorClass::Permanent,
        }
    }

    /// How an error **on a submission** is treated, at a vendor with `idempotency`. A `5xx`
    /// (or a `408`) may come from a gateway in front of the vendor *after* the vendor made the
    /// job (a `502` or `504` while the backend finished): at a vendor that deduplicates by our
    /// key, sending again is safe (the same job comes back), so it is retried; at one that does
    /// not, sending again may be a second charge, so it is ambiguous — resolved like a lost
    /// answer, never resent blindly. Everything else is classed as [`Self::class`] says.
    pub fn submission_class(&self, idempotency: Idempotency) -> ErrorClass {
        match (self, idempotency) {
            (VendorError::Unavailable { .. }, Idempotency::None) => ErrorClass::Ambiguous,
            _ => self.class(),
        }
    }

    /// Whether the vendor said it no longer has the job or its result.
    pub fn is_gone(&self) -> bool {
        matches!(
            self,
            VendorError::Gone(_)
                | VendorError::Rejected {
                    status: 404 | 410,
                    ..
                }
        )
    }

    /// What retrying this error costs from the retry budget: a timeout weighs double, as in the
    /// AWS SDK's standard retry mode (it held a connection for the whole timeout).
    /// A call that was never made costs nothing: the budget protects the vendor.
    pub fn retry_cost(&self) -> u32 {
        match self {
            VendorError::NotSent(_) => 0,
            VendorError::NoAnswer(_) | VendorError::Unreadable { .. } => 2,
            _ => 1,
        }
    }

    /// How long the vendor asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            VendorError::Throttled { retry_after }
            | VendorError::Unavailable { retry_after, .. } => *retry_after,
            VendorError::Busy { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// A short cause for metrics: `429`, `5xx`, `timeout`, `network`, `not_sent`, `auth`,
    /// `rejected`.
    pub fn cause(&self) -> &'static str {
        match self {
            VendorError::Throttled { .. } => "429",
            VendorError::Busy { .. } => "busy",
            VendorError::Unavailable { .. } => "5xx",
            VendorError::Unreachable(_) => "network",
            VendorError::NotSent(_) => "not_sent",
            VendorError::NoAnswer(_) => "timeout",
            VendorError::Unreadable { .. } => "unreadable",
            VendorError::Auth { .. } => "auth",
            VendorError::Rejected { .. } => "rejected",
            VendorError::Protocol(_) => "protocol",
            VendorError::TooLarge { .. } => "too_large",
            VendorError::Gone(_) => "gone",
        }
    }
}

/// An OCR vendor.
pub trait Vendor: Send + Sync {
    /// A short name for metrics and budget items: `sim`, `textract`…
    fn name(&self) -> &'static str;

    fn capabilities(&self) -> Capabilities;

    /// The vendor's model (or API) for `profile`, as `VENDOR_MODELS` maps it: what prices the
    /// call (`cost::Prices`). `unconfigured` when none is (the submission fails anyway).
    fn model(&self, profile: &Profile) -> String;

    /// The model that reads `job`: [`Self::model`] for its profile, unless the adapter reads
    /// this document with another (Textract reads an `id` it cannot answer now as `text`).
    fn model_of(&self, job: &crate::job::Job) -> String {
        self.model(&job.profile)
    }

    /// Submits a document; returns the vendor's job id.
    fn submit(
        &self,
        submission: &Submission<'_>,
    ) -> impl Future<Output = Result<String, VendorError>> + Send;

    /// Whether `job` is read in the call itself ([`answer`]): the vendor has a synchronous API
    /// for the job's profile, it is enabled, and the document is within that API's limits.
    /// Decided before the attempt is recorded: a lost answer is resolved as what it was.
    fn answers_now(&self, _job: &crate::job::Job) -> bool {
        false
    }

    /// The synchronous call, for a job [`Self::answers_now`] accepts: the result in the
    /// response. Never deduplicated: see [`answer`].
    fn answer(
        &self,
        _submission: &Submission<'_>,
    ) -> impl Future<Output = Result<answer::Answer, VendorError>> + Send {
        async {
            Err(VendorError::Protocol(
                "this vendor has no synchronous API".into(),
            ))
        }
    }

    /// The vendor's job for an idempotency key, if it has one.
    fn find_by_idempotency_key(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<VendorJob>, VendorError>> + Send;

    fn status(
        &self,
        vendor_job_id: &str,
    ) -> impl Future<Output = Result<VendorJob, VendorError>> + Send;

    /// The raw result payload, exactly as the vendor sent it (archived before parsing).
    fn fetch_result(
        &self,
        vendor_job_id: &str,
    ) -> impl Future<Output = Result<Vec<u8>, VendorError>> + Send;

    /// The raw result as the vendor sends it, unread: for streaming a result too large to parse
    /// (`VENDOR_MAX_RESULT_BYTES`) into the archive, so what was paid for is kept. `None` when
    /// the result is not one HTTP body (Textract's are paged API calls, each bounded).
    fn result_body(
        &self,
        _vendor_job_id: &str,
    ) -> impl Future<Output = Result<Option<reqwest::Response>, VendorError>> + Send {
        async { Ok(None) }
    }

    /// Forces the next call to re-read credentials (after a 401/403: rotation may have happened).
    fn refresh_credentials(&self) -> impl Future<Output = ()> + Send;

    /// A completion this vendor delivers through a queue (Textract: SNS notifications to the
    /// queue parse reads), as the notice parse acts on; `None` when the message is not one.
    fn notice_from_queue(&self, _body: &str) -> Option<Result<crate::queue::ResultNotice, String>> {
        None
    }

    /// The normalize hook: the vendor's raw result as `Document v1`, with any schema drift seen.
    fn normalize(
        &self,
        raw: &[u8],
        job_id: &str,
        vendor_job_id: &str,
        profile: &Profile,
    ) -> Result<normalize::Normalized, normalize::NormalizeError>;
}

/// `first`, or — when the vendor refused the credentials (401/403) — `again` after one forced
/// refresh of them: a rotation may just have replaced the key. One refresh and one more try,
/// never more, wherever the vendor is called (`what` names the call for the log).
pub async fn again_after_refresh<V, T, Fut>(
    vendor: &V,
    what: &str,
    first: Result<T, VendorError>,
    again: impl FnOnce() -> Fut,
) -> Result<T, VendorError>
where
    V: Vendor,
    Fut: Future<Output = Result<T, VendorError>>,
{
    match first {
        Err(VendorError::Auth { status }) => {
            tracing::warn!(
                status,
                call = what,
                "vendor refused the credentials; refreshing the key once"
            );
            vendor.refresh_credentials().await;
            again().await
        }
        other => other,
    }
}

/// How a vendor's API keys are kept fresh: it decides what `functions/rotate` does with the
/// key's secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyScheme {
    /// ocrbridge mints a key and registers it with the vendor (the simulator): the full
    /// four-step rotation, and the key that falls out is revoked.
    Registered,
    /// The vendor issues two keys, both valid until one is regenerated (Azure's KEY1 and KEY2).
    /// Rotation makes the standby key current — the one its owner regenerated and put in the
    /// secret under [`STANDBY_STAGE`] — after an authenticated call proves it, and asks the
    /// owner to regenerate the key it replaced.
    TwoKeys,
    /// Keys are issued in the vendor's console and nothing else (Mindee): no rotation; a
    /// scheduled check proves the current key and reports its age.
    Console,
    /// No key: the function's role signs the calls (Textract).
    Role,
}

/// The secret stage that holds a two-key vendor's standby key ([`KeyScheme::TwoKeys`]).
pub const STANDBY_STAGE: &str = "STANDBY";

/// The vendor side of secret rotation: what `functions/rotate` asks of a vendor.
pub trait SecretRegistry: Send + Sync {
    /// How this vendor's keys are rotated, if they are.
    fn key_scheme(&self) -> KeyScheme;
    /// Makes the vendor sign webhooks with exactly these secrets (old and new during rotation).
    fn set_webhook_secrets(
        &self,
        secrets: &[crate::keyring::Secret],
    ) -> impl Future<Output = Result<(), VendorError>> + Send;
    /// Registers a new API key with the vendor.
    fn register_api_key(
        &self,
        key: &crate::keyring::Secret,
    ) -> impl Future<Output = Result<(), VendorError>> + Send;
    /// Revokes an API key; revoking an unknown key is not an error.
    fn revoke_api_key(
        &self,
        key: &crate::keyring::Secret,
    ) -> impl Future<Output = Result<(), VendorError>> + Send;
    /// Proves `key` works: one authenticated read, the cheapest the vendor has (nothing
    /// analyzed, nothing billed). A refused key is [`VendorError::Auth`].
    fn check_api_key(
        &self,
        key: &crate::keyring::Secret,
    ) -> impl Future<Output = Result<(), VendorError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_api_key_is_a_call_not_made() {
        let e = VendorError::from(crate::keyring::KeyringError::Empty {
            secret_id: "ocrbridge/vendor".into(),
            stage: "AWSCURRENT",
        });
        assert!(matches!(e, VendorError::NotSent(_)), "{e:?}");
        assert_eq!((e.class(), e.retry_cost()), (ErrorClass::Retryable, 0));
        assert!(e.to_string().contains("ocrbridge/vendor"), "{e}");
    }

    #[test]
    fn classifies_every_error() {
        let cases = [
            (
                VendorError::Throttled { retry_after: None },
                ErrorClass::Retryable,
                "429",
            ),
            (
                VendorError::Unavailable {
                    status: 503,
                    retry_after: None,
                },
                ErrorClass::Retryable,
                "5xx",
            ),
            (
                VendorError::Unreachable("refused".into()),
                ErrorClass::Retryable,
                "network",
            ),
            (
                VendorError::NotSent("lease too short".into()),
                ErrorClass::Retryable,
                "not_sent",
            ),
            (
                VendorError::NoAnswer("timeout".into()),
                ErrorClass::Ambiguous,
                "timeout",
            ),
            (
                VendorError::Unreadable {
                    status: 202,
                    detail: "body broke off".into(),
                },
                ErrorClass::Ambiguous,
                "unreadable",
            ),
            (
                VendorError::Auth { status: 401 },
                ErrorClass::Permanent,
                "auth",
            ),
            (
                VendorError::Rejected {
                    status: 422,
                    code: "x".into(),
                    message: "y".into(),
                },
                ErrorClass::Permanent,
                "rejected",
            ),
        ];
        for (err, class, cause) in cases {
            assert_eq!(err.class(), class, "{err}");
            assert_eq!(err.cause(), cause);
        }
    }

    /// A 5xx on a submission is a retry where a resend is safe, and a question where it may be
    /// a second charge (the gateway answered after the vendor made the job).
    #[test]
    fn a_5xx_on_a_submission_is_ambiguous_without_idempotency() {
        let gateway = VendorError::Unavailable {
            status: 504,
            retry_after: None,
        };
        assert_eq!(
            gateway.submission_class(Idempotency::None),
            ErrorClass::Ambiguous
        );
        assert_eq!(
            gateway.submission_class(Idempotency::Native {
                remembers_for: None
            }),
            ErrorClass::Retryable
        );
        assert_eq!(gateway.class(), ErrorClass::Retryable, "a read is retried");
        let refused = VendorError::Unreachable("connection refused".into());
        assert_eq!(
            refused.submission_class(Idempotency::None),
            ErrorClass::Retryable,
            "never sent"
        );
        assert_eq!(
            VendorError::Throttled { retry_after: None }.submission_class(Idempotency::None),
            ErrorClass::Retryable,
            "a throttle is a refusal"
        );
        assert!(VendorError::Gone("expired".into()).is_gone());
        assert!(VendorError::Rejected {
            status: 404,
            code: "NotFound".into(),
            message: String::new()
        }
        .is_gone());
    }
}
