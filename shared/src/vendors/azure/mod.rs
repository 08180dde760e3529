//! Azure AI Document Intelligence (REST API 2024-11-30).
//!
//! - **Submit**: `POST {endpoint}/documentintelligence/documentModels/{model}:analyze` with
//!   `{"urlSource": <presigned URL>}` and the key in `Ocp-Apim-Subscription-Key` (never in a URL
//!   or a log line). `202` with `Operation-Location`: that URL **is** the vendor job id, recorded
//!   on the job in the same fenced write that moves it to `Submitted`. A `202` without it is an
//!   unreadable answer — Azure took the document — never a failure.
//! - **No idempotency and no lookup**: a lost `Operation-Location` is a lost result, and the only
//!   recovery is a second, billed analyze ([`crate::vendors::ambiguity`] decides, counted).
//! - **Completion by polling** the operation: `notStarted|running|succeeded|failed|canceled|
//!   skipped`; anything else is drift, never success. `Retry-After` on a running operation says
//!   when to ask again; polls count against the same rate limit as submissions.
//! - A result Azure no longer has (it keeps them about a day) is `404`: the job fails with
//!   `result_unavailable`.
//! - The operation URL is followed only on the configured endpoint's origin, so a tampered or
//!   foreign URL never receives the key.

pub mod normalize;

use serde_json::{json, Value};

use super::http::{body, check, transport_error, vendor_url};
use super::select::ModelMap;
use super::{
    Capabilities, Completion, Idempotency, Submission, Vendor, VendorError, VendorJob, VendorStatus,
};
use crate::keyring::Keyring;

pub const API_VERSION: &str = "2024-11-30";

#[derive(Debug, Clone)]
pub struct AzureVendor {
    http: reqwest::Client,
    endpoint: String,
    key: Keyring,
    models: ModelMap,
    max_result_bytes: usize,
}

/// Azure's error body: `{"error": {"code", "message", "innererror": {…}}}`; the inner error is
/// the one that says what was wrong with the document.
fn describe(body: &Value) -> (String, String) {
    let error = &body["error"];
    let inner = &error["innererror"];
    let code = inner["code"]
        .as_str()
        .or(error["code"].as_str())
        .unwrap_or("unknown");
    let message = inner["message"]
        .as_str()
        .or(error["message"].as_str())
        .unwrap_or("");
    (code.to_owned(), message.to_owned())
}

/// An operation's status.
fn status_of(operation: &Value) -> VendorStatus {
    match operation["status"].as_str() {
        Some("notStarted") => VendorStatus::Queued,
        Some("running") => VendorStatus::Processing,
        Some("succeeded") => VendorStatus::Succeeded,
        Some(state @ ("failed" | "canceled" | "skipped")) => {
            let (code, message) = describe(operation);
            VendorStatus::Failed {
                code: if code == "unknown" {
                    state.to_owned()
                } else {
                    code
                },
                message: if message.is_empty() {
                    format!("the analysis was {state}")
                } else {
                    message
                },
            }
        }
        other => VendorStatus::Unknown(other.unwrap_or("missing").to_owned()),
    }
}

/// How much of an operation a status check reads (see `status`).
const STATUS_PREFIX_BYTES: usize = 64 * 1024;

impl AzureVendor {
    pub fn new(
        http: reqwest::Client,
        endpoint: impl Into<String>,
        key: Keyring,
        models: ModelMap,
    ) -> Self {
        AzureVendor {
            http,
            endpoint: endpoint.into().trim_end_matches('/').to_owned(),
            key,
            models,
            max_result_bytes: super::http::DEFAULT_MAX_RESULT_BYTES,
        }
    }

    /// The largest operation (with its `analyzeResult`) read.
    pub fn with_max_result_bytes(mut self, limit: usize) -> Self {
        self.max_result_bytes = limit;
        self
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, VendorError> {
        let key = self.key.current(false).await?;
        let response = crate::vendors::http::traced(request)
            .header("ocp-apim-subscription-key", key.expose())
            .send()
            .await
            .map_err(transport_error)?;
        check(response, describe).await
    }

    /// Proves `key` works: the resource's details (`GET /documentintelligence/info`), the
    /// cheapest authenticated call — nothing analyzed, nothing billed. A refused key is
    /// [`VendorError::Auth`].
    pub async fn check_key(&self, key: &crate::keyring::Secret) -> Result<(), VendorError> {
        let request = self.http.get(format!(
            "{}/documentintelligence/info?api-version={API_VERSION}",
            self.endpoint
        ));
        super::http::prove_key(request, "ocp-apim-subscription-key", key, describe).await
    }

    /// GETs the operation (the vendor job id), with its `Retry-After`.
    async fn operation(
        &self,
        vendor_job_id: &str,
    ) -> Result<(Value, Vec<u8>, Option<std::time::Duration>), VendorError> {
        let url = vendor_url(&self.endpoint, vendor_job_id, "operation URL")?;
        let response = self.send(self.http.get(url)).await?;
        let wait = super::http::retry_after(&response);
        let status = response.status().as_u16();
        let bytes = body(response, self.max_result_bytes).await?;
        let operation = serde_json::from_slice(&bytes).map_err(|e| VendorError::Unreadable {
            status,
            detail: format!("not JSON: {e}"),
        })?;
        Ok((operation, bytes.to_vec(), wait))
    }
}

impl Vendor for AzureVendor {
    fn name(&self) -> &'static str {
        "azure"
    }

    fn model(&self, profile: &crate::job::Profile) -> String {
        self.models
            .model_for(profile)
            .map_or_else(|_| "unconfigured".to_owned(), str::to_owned)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            idempotency: Idempotency::None,
            lookup_by_key: false,
            completion: Completion::Poll,
            completion_carries_reference: false,
            reads_spend_rate_limit: true,
        }
    }

    async fn submit(&self, submission: &Submission<'_>) -> Result<String, VendorError> {
        let model = self.models.model_for(submission.profile)?;
        let response = self
            .send(
                self.http
                    .post(format!(
                        "{}/documentintelligence/documentModels/{model}:analyze",
                        self.endpoint
                    ))
                    .query(&[("api-version", API_VERSION)])
                    .timeout(submission.time_limit)
                    .json(&json!({ "urlSource": submission.document_url })),
            )
            .await?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("operation-location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // Read the (empty) body: a connection cut in the middle of it still means accepted.
        body(response, super::http::MAX_ANSWER_BYTES).await?;
        match location {
            Some(url) if super::http::same_origin(&self.endpoint, &url) => Ok(url),
            Some(url) => Err(VendorError::Unreadable {
                status,
                detail: format!("the Operation-Location {url:?} is not on the endpoint's origin"),
            }),
            None => Err(VendorError::Unreadable {
                status,
                detail: "accepted without an Operation-Location".into(),
            }),
        }
    }

    async fn find_by_idempotency_key(&self, _key: &str) -> Result<Option<VendorJob>, VendorError> {
        Err(VendorError::Protocol(
            "Azure Document Intelligence cannot list operations".into(),
        ))
    }

    /// The operation's status, read from at most [`STATUS_PREFIX_BYTES`] of it. A succeeded
    /// operation carries its whole `analyzeResult`, which can be far larger than a result parse
    /// takes (`VENDOR_MAX_RESULT_BYTES`); reading it all just to learn "succeeded" made such a
    /// result fail every poll until the maximum age — never fetched, never archived, and gone
    /// from Azure a day later. The status is the operation's top-level `status` (Azure writes it
    /// first); one cut off before it is found is a body only a succeeded operation grows to.
    async fn status(&self, vendor_job_id: &str) -> Result<VendorJob, VendorError> {
        let url = vendor_url(&self.endpoint, vendor_job_id, "operation URL")?;
        let response = self.send(self.http.get(url)).await?;
        let retry_after = super::http::retry_after(&response);
        let code = response.status().as_u16();
        let (head, whole) = super::http::prefix(response, STATUS_PREFIX_BYTES).await?;
        let status = if whole {
            let operation: Value =
                serde_json::from_slice(&head).map_err(|e| VendorError::Unreadable {
                    status: code,
                    detail: format!("not JSON: {e}"),
                })?;
            status_of(&operation)
        } else {
            match super::http::top_level_string(&head, "status") {
                Some(status) => status_of(&json!({ "status": status })),
                None => VendorStatus::Succeeded,
            }
        };
        Ok(VendorJob {
            id: vendor_job_id.to_owned(),
            status,
            retry_after,
        })
    }

    async fn fetch_result(&self, vendor_job_id: &str) -> Result<Vec<u8>, VendorError> {
        let (operation, raw, _) = self.operation(vendor_job_id).await?;
        match status_of(&operation) {
            VendorStatus::Succeeded if operation.get("analyzeResult").is_some() => Ok(raw),
            VendorStatus::Succeeded => Err(VendorError::Protocol(
                "a succeeded operation without analyzeResult".into(),
            )),
            other => Err(VendorError::Rejected {
                status: 409,
                code: "not_succeeded".into(),
                message: format!("the operation is {other:?}, not succeeded"),
            }),
        }
    }

    async fn result_body(
        &self,
        vendor_job_id: &str,
    ) -> Result<Option<reqwest::Response>, VendorError> {
        // The operation is the result: the same GET, unread.
        let url = vendor_url(&self.endpoint, vendor_job_id, "operation URL")?;
        Ok(Some(self.send(self.http.get(url)).await?))
    }

    async fn refresh_credentials(&self) {
        if let Err(e) = self.key.current(true).await {
            tracing::warn!(error = %e, "could not refresh the Azure key");
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

/// A JSON body for tests of [`status_of`].
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_succeeded_is_success_and_unknown_statuses_are_drift() {
        assert_eq!(
            status_of(&json!({"status": "succeeded"})),
            VendorStatus::Succeeded
        );
        assert_eq!(
            status_of(&json!({"status": "running"})),
            VendorStatus::Processing
        );
        assert_eq!(
            status_of(&json!({"status": "notStarted"})),
            VendorStatus::Queued
        );
        assert_eq!(
            status_of(
                &json!({"status": "failed", "error": {"code": "InvalidRequest", "message": "Invalid request.",
                "innererror": {"code": "InvalidContent", "message": "The file is corrupted."}}})
            ),
            VendorStatus::Failed {
                code: "InvalidContent".into(),
                message: "The file is corrupted.".into()
            }
        );
        assert!(matches!(
            status_of(&json!({"status": "canceled"})),
            VendorStatus::Failed { code, .. } if code == "canceled"
        ));
        assert_eq!(
            status_of(&json!({"status": "succeededWithWarnings"})),
            VendorStatus::Unknown("succeededWithWarnings".into())
        );
        assert_eq!(
            status_of(&json!({})),
            VendorStatus::Unknown("missing".into())
        );
    }

    #[test]
    fn errors_say_what_was_wrong_with_the_document() {
        let (code, message) = describe(
            &json!({"error": {"code": "InvalidRequest", "message": "Invalid request.",
            "innererror": {"code": "InvalidContentSourceFormat", "message": "Invalid content source: the URL is not valid."}}}),
        );
        assert_eq!(code, "InvalidContentSourceFormat");
        assert!(message.contains("URL"));
        assert_eq!(
            describe(&json!({"error": {"code": "ModelNotFound", "message": "not found"}})).0,
            "ModelNotFound"
        );
    }
}
