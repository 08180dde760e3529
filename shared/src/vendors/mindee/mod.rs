//! Mindee v2 (`https://api-v2.mindee.net`).
//!
//! - **Submit**: `POST /v2/inferences/enqueue`, multipart: `model_id` (the profile's, from
//!   `VENDOR_MODELS`), `url` (the presigned URL), `alias` (our job id) and one `webhook_ids`
//!   field per configured webhook; the key in `Authorization` as it is (no "Bearer"). `202
//!   {job}`: the job id is the vendor job id.
//! - **No idempotency and no search**: `alias` is not unique and cannot be looked up. What it
//!   does give is a reference in the completion: the webhook's inference names the alias, so a
//!   submission whose answer was lost is adopted when its webhook arrives
//!   ([`crate::vendors::ambiguity`]: await the completion) instead of being paid twice.
//! - **Completion**: webhooks when `MINDEE_WEBHOOK_IDS` is set (verified by the webhook function:
//!   hex HMAC-SHA256 of the body, no timestamp, deduplicated by inference id), else polling.
//! - **Status**: `GET /v2/jobs/{id}`: the job while `Processing` or `Failed`; once `Processed`, a
//!   `302` to the result. The result URL is **followed, never built** — Mindee moved that route in
//!   2026 — and only on the API's own origin, so the key never goes elsewhere.
//! - Limits: 200 POSTs and 1,200 GETs a minute per organization; `429` otherwise.

pub mod normalize;

use reqwest::multipart::Form;
use reqwest::{Response, StatusCode};
use serde_json::Value;

use super::http::{body, check, json, transport_error, vendor_url};
use super::select::ModelMap;
use super::{
    Capabilities, Completion, Idempotency, Submission, Vendor, VendorError, VendorJob,
    VendorStatus, WebhookScheme,
};
use crate::keyring::Keyring;

/// Mindee's API when `VENDOR_BASE_URL` does not say otherwise.
pub const DEFAULT_BASE_URL: &str = "https://api-v2.mindee.net";

#[derive(Debug, Clone)]
pub struct MindeeVendor {
    http: reqwest::Client,
    base_url: String,
    key: Keyring,
    models: ModelMap,
    webhook_ids: Vec<String>,
    max_result_bytes: usize,
}

/// Mindee's errors are RFC 9457 problem details: `{status, code, title, detail, errors}`.
fn describe(body: &Value) -> (String, String) {
    let code = body["code"].as_str().unwrap_or("unknown").to_owned();
    let mut message = body["detail"]
        .as_str()
        .or(body["title"].as_str())
        .unwrap_or("")
        .to_owned();
    for e in body["errors"].as_array().into_iter().flatten() {
        message.push_str(&format!(
            "; {}: {}",
            e["pointer"].as_str().unwrap_or("?"),
            e["detail"].as_str().unwrap_or("")
        ));
    }
    (code, message)
}

/// A job's status from its JSON (the `job` of `{job: {…}}`).
pub fn job_status(job: &Value) -> VendorStatus {
    match job["status"].as_str() {
        Some("Processing") => VendorStatus::Processing,
        Some("Processed") => VendorStatus::Succeeded,
        Some("Failed") => {
            let (code, message) = describe(&job["error"]);
            VendorStatus::Failed { code, message }
        }
        other => VendorStatus::Unknown(other.unwrap_or("missing").to_owned()),
    }
}

impl MindeeVendor {
    pub fn new(
        http: reqwest::Client,
        base_url: impl Into<String>,
        key: Keyring,
        models: ModelMap,
        webhook_ids: Vec<String>,
    ) -> Self {
        MindeeVendor {
            http,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            key,
            models,
            webhook_ids,
            max_result_bytes: super::http::DEFAULT_MAX_RESULT_BYTES,
        }
    }

    /// The largest result read.
    pub fn with_max_result_bytes(mut self, limit: usize) -> Self {
        self.max_result_bytes = limit;
        self
    }

    /// Sends with the key; a 3xx comes back as it is (the caller follows it, or not).
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Response, VendorError> {
        let key = self.key.current(false).await?;
        let response = crate::vendors::http::traced(request)
            .header("authorization", key.expose())
            .send()
            .await
            .map_err(transport_error)?;
        if response.status().is_redirection() {
            return Ok(response);
        }
        check(response, describe).await
    }

    /// Proves `key` works: `GET /v2/search/models`, the cheapest authenticated call (nothing
    /// enqueued, nothing billed). A refused key is [`VendorError::Auth`].
    pub async fn check_key(&self, key: &crate::keyring::Secret) -> Result<(), VendorError> {
        let request = self.http.get(format!("{}/v2/search/models", self.base_url));
        super::http::prove_key(request, "authorization", key, describe).await
    }

    /// `GET /v2/jobs/{id}`: the job, and where its result is once it is processed.
    async fn job(&self, id: &str) -> Result<(Value, Option<String>), VendorError> {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(VendorError::Protocol(format!(
                "{id:?} is not a Mindee job id"
            )));
        }
        let response = self
            .send(self.http.get(format!("{}/v2/jobs/{id}", self.base_url)))
            .await?;
        let redirect = (response.status() == StatusCode::FOUND
            || response.status() == StatusCode::SEE_OTHER)
            .then(|| {
                response
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
            .flatten();
        let answer = json(response).await.unwrap_or(Value::Null);
        let job = answer.get("job").cloned().unwrap_or(Value::Null);
        let result_url = redirect.or_else(|| job["result_url"].as_str().map(str::to_owned));
        Ok((job, result_url))
    }
}

impl Vendor for MindeeVendor {
    fn name(&self) -> &'static str {
        "mindee"
    }

    fn model(&self, profile: &crate::job::Profile) -> String {
        self.models
            .model_for(profile)
            .map_or_else(|_| "unconfigured".to_owned(), str::to_owned)
    }

    fn capabilities(&self) -> Capabilities {
        let webhooks = !self.webhook_ids.is_empty();
        Capabilities {
            idempotency: Idempotency::None,
            lookup_by_key: false,
            completion: if webhooks {
                Completion::Webhook(WebhookScheme::HexHmacBody)
            } else {
                Completion::Poll
            },
            // The webhook's inference carries the alias; a poll finds nothing by it.
            completion_carries_reference: webhooks,
            reads_spend_rate_limit: false,
        }
    }

    async fn submit(&self, submission: &Submission<'_>) -> Result<String, VendorError> {
        let model = self.models.model_for(submission.profile)?;
        let mut form = Form::new()
            .text("model_id", model.to_owned())
            .text("url", submission.document_url.to_owned())
            .text("alias", submission.external_ref.to_owned());
        for id in &self.webhook_ids {
            form = form.text("webhook_ids", id.clone());
        }
        let response = self
            .send(
                self.http
                    .post(format!("{}/v2/inferences/enqueue", self.base_url))
                    .timeout(submission.time_limit)
                    .multipart(form),
            )
            .await?;
        let status = response.status().as_u16();
        let answer = json(response).await?;
        answer["job"]["id"]
            .as_str()
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            // A 2xx without a job id still means Mindee took the document.
            .ok_or_else(|| VendorError::Unreadable {
                status,
                detail: "accepted without a job id".into(),
            })
    }

    async fn find_by_idempotency_key(&self, _key: &str) -> Result<Option<VendorJob>, VendorError> {
        Err(VendorError::Protocol(
            "Mindee has no idempotency key and no search".into(),
        ))
    }

    async fn status(&self, vendor_job_id: &str) -> Result<VendorJob, VendorError> {
        let (job, result_url) = self.job(vendor_job_id).await?;
        let status = match job_status(&job) {
            // Processed, and answered with where the result is.
            VendorStatus::Unknown(_) if result_url.is_some() && job.is_null() => {
                VendorStatus::Succeeded
            }
            status => status,
        };
        Ok(VendorJob {
            id: vendor_job_id.to_owned(),
            status,
            retry_after: None,
        })
    }

    async fn fetch_result(&self, vendor_job_id: &str) -> Result<Vec<u8>, VendorError> {
        let (job, result_url) = self.job(vendor_job_id).await?;
        let Some(url) = result_url else {
            return Err(VendorError::Rejected {
                status: 409,
                code: "not_succeeded".into(),
                message: format!("the job is {:?}, with no result", job["status"]),
            });
        };
        let url = vendor_url(&self.base_url, &url, "result URL")?;
        let response = self.send(self.http.get(url)).await?;
        if response.status().is_redirection() {
            return Err(VendorError::Protocol(
                "the result URL redirected again".into(),
            ));
        }
        Ok(body(response, self.max_result_bytes).await?.to_vec())
    }

    async fn result_body(
        &self,
        vendor_job_id: &str,
    ) -> Result<Option<reqwest::Response>, VendorError> {
        let (_, result_url) = self.job(vendor_job_id).await?;
        let Some(url) = result_url else {
            return Ok(None);
        };
        let url = vendor_url(&self.base_url, &url, "result URL")?;
        let response = self.send(self.http.get(url)).await?;
        Ok((!response.status().is_redirection()).then_some(response))
    }

    async fn refresh_credentials(&self) {
        if let Err(e) = self.key.current(true).await {
            tracing::warn!(error = %e, "could not refresh the Mindee key");
        }
    }

    fn normalize(
        &self,
        raw: &[u8],
        job_id: &str,
        vendor_job_id: &str,
        profile: &crate::job::Profile,
    ) -> Result<super::normalize::Normalized, super::normalize::NormalizeError> {
        normalize::normalize(raw, job_id, vendor_job_id, profile)
    }
}
