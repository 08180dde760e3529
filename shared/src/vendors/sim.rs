//! The adapter for `tools/vendor-sim`'s API (see its README).

use reqwest::Response;
use serde_json::{json, Value};

use super::http::{body, check, json, transport_error};

use super::{
    Capabilities, Completion, Idempotency, SecretRegistry, Submission, Vendor, VendorError,
    VendorJob, VendorStatus, WebhookScheme,
};
use crate::keyring::{Keyring, Secret};

pub use super::http::{http_client, HttpTimeouts};

#[derive(Debug, Clone)]
pub struct SimVendor {
    http: reqwest::Client,
    base_url: String,
    api_key: Keyring,
    idempotency: Idempotency,
    /// The simulator profile for each of ours; without one, our profile is sent as it is.
    models: Option<super::select::ModelMap>,
    max_result_bytes: usize,
}

impl SimVendor {
    /// The simulator in its default mode, which deduplicates by key for ever.
    pub fn new(http: reqwest::Client, base_url: impl Into<String>, api_key: Keyring) -> Self {
        SimVendor {
            http,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            api_key,
            idempotency: Idempotency::Native {
                remembers_for: None,
            },
            models: None,
            max_result_bytes: super::http::DEFAULT_MAX_RESULT_BYTES,
        }
    }

    /// The largest result read.
    pub fn with_max_result_bytes(mut self, limit: usize) -> Self {
        self.max_result_bytes = limit;
        self
    }

    /// Sends the simulator the profile `models` gives each of ours.
    pub fn with_models(mut self, models: super::select::ModelMap) -> Self {
        self.models = Some(models);
        self
    }

    /// Says how the simulator was started (`--idempotency native|expiring:SECS|none`): what it
    /// does with a repeated key decides how an ambiguous submission can be resolved.
    pub fn with_idempotency(mut self, idempotency: Idempotency) -> Self {
        self.idempotency = idempotency;
        self
    }

    async fn bearer(&self) -> Result<String, VendorError> {
        // A keyring failure is not the vendor's fault: it becomes `NotSent`, which no breaker counts.
        let key = self.api_key.current(false).await?;
        Ok(format!("Bearer {}", key.expose()))
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Response, VendorError> {
        let response = super::http::traced(request)
            .header("authorization", self.bearer().await?)
            .send()
            .await
            .map_err(transport_error)?;
        check(response, describe).await
    }

    /// A 2xx answer's JSON. A body that breaks off or is not JSON is [`VendorError::Unreadable`]:
    /// the request succeeded, we just cannot see how.
    async fn json(&self, request: reqwest::RequestBuilder) -> Result<Value, VendorError> {
        json(self.send(request).await?).await
    }
}

/// The simulator's error body: `{"error": {"code", "message"}}`.
fn describe(body: &Value) -> (String, String) {
    (
        body["error"]["code"]
            .as_str()
            .unwrap_or("unknown")
            .to_owned(),
        body["error"]["message"].as_str().unwrap_or("").to_owned(),
    )
}

fn parse_job(value: &Value) -> Result<VendorJob, VendorError> {
    let id = value["id"]
        .as_str()
        .ok_or_else(|| VendorError::Protocol("job without id".into()))?
        .to_owned();
    let status = match value["status"].as_str() {
        Some("queued") => VendorStatus::Queued,
        Some("processing") => VendorStatus::Processing,
        Some("succeeded") => VendorStatus::Succeeded,
        Some("failed") => VendorStatus::Failed {
            code: value["error"]["code"]
                .as_str()
                .unwrap_or("unknown")
                .to_owned(),
            message: value["error"]["message"].as_str().unwrap_or("").to_owned(),
        },
        other => VendorStatus::Unknown(other.unwrap_or("missing").to_owned()),
    };
    Ok(VendorJob {
        id,
        status,
        retry_after: None,
    })
}

impl Vendor for SimVendor {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn model(&self, profile: &crate::job::Profile) -> String {
        // Without a model map the simulator is sent our profile as its model.
        match &self.models {
            Some(models) => models
                .model_for(profile)
                .map_or_else(|_| "unconfigured".to_owned(), str::to_owned),
            None => profile.as_str().to_owned(),
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            idempotency: self.idempotency,
            // Without idempotency the simulator has no lookup either (like Azure and Mindee).
            lookup_by_key: self.idempotency != Idempotency::None,
            completion: Completion::Webhook(WebhookScheme::StandardWebhooks),
            completion_carries_reference: true,
            reads_spend_rate_limit: false,
        }
    }

    async fn submit(&self, submission: &Submission<'_>) -> Result<String, VendorError> {
        let profile = match &self.models {
            Some(models) => models.model_for(submission.profile)?,
            None => submission.profile.as_str(),
        };
        let body = json!({
            "url": submission.document_url,
            "profile": profile,
            "external_ref": submission.external_ref,
        });
        let answer = self
            .json(
                self.http
                    .post(format!("{}/v1/documents", self.base_url))
                    .header("idempotency-key", submission.idempotency_key)
                    // Connect, send and read the whole answer within what is left of the lease.
                    .timeout(submission.time_limit)
                    .json(&body),
            )
            .await?;
        // A 2xx without a job id still means the vendor took the document.
        parse_job(&answer)
            .map(|job| job.id)
            .map_err(|e| VendorError::Unreadable {
                status: 202,
                detail: e.to_string(),
            })
    }

    async fn find_by_idempotency_key(&self, key: &str) -> Result<Option<VendorJob>, VendorError> {
        let answer = self
            .json(
                self.http
                    .get(format!("{}/v1/documents", self.base_url))
                    .query(&[("idempotency_key", key)]),
            )
            .await?;
        answer["data"]
            .as_array()
            .ok_or_else(|| VendorError::Protocol("lookup without data".into()))?
            .first()
            .map(parse_job)
            .transpose()
    }

    async fn status(&self, vendor_job_id: &str) -> Result<VendorJob, VendorError> {
        let answer = self
            .json(
                self.http
                    .get(format!("{}/v1/documents/{vendor_job_id}", self.base_url)),
            )
            .await?;
        parse_job(&answer)
    }

    async fn fetch_result(&self, vendor_job_id: &str) -> Result<Vec<u8>, VendorError> {
        let response = self
            .send(self.http.get(format!(
                "{}/v1/documents/{vendor_job_id}/result",
                self.base_url
            )))
            .await?;
        Ok(body(response, self.max_result_bytes).await?.to_vec())
    }

    async fn result_body(
        &self,
        vendor_job_id: &str,
    ) -> Result<Option<reqwest::Response>, VendorError> {
        let response = self
            .send(self.http.get(format!(
                "{}/v1/documents/{vendor_job_id}/result",
                self.base_url
            )))
            .await?;
        Ok(Some(response))
    }

    fn normalize(
        &self,
        raw: &[u8],
        job_id: &str,
        vendor_job_id: &str,
        profile: &crate::job::Profile,
    ) -> Result<super::normalize::Normalized, super::normalize::NormalizeError> {
        super::normalize::normalize_sim(raw, job_id, vendor_job_id, profile)
    }

    async fn refresh_credentials(&self) {
        if let Err(e) = self.api_key.current(true).await {
            tracing::warn!(error = %e, "could not refresh the vendor API key");
        }
    }
}

/// The simulator's admin API stands in for the vendor's key and webhook settings.
impl SecretRegistry for SimVendor {
    fn key_scheme(&self) -> super::KeyScheme {
        super::KeyScheme::Registered
    }

    async fn set_webhook_secrets(&self, secrets: &[Secret]) -> Result<(), VendorError> {
        let values: Vec<&str> = secrets.iter().map(Secret::expose).collect();
        let response = self
            .http
            .put(format!("{}/admin/webhook", self.base_url))
            .json(&json!({ "secrets": values }))
            .send()
            .await
            .map_err(transport_error)?;
        check(response, describe).await.map(|_| ())
    }

    async fn register_api_key(&self, key: &Secret) -> Result<(), VendorError> {
        let response = self
            .http
            .post(format!("{}/admin/api-keys", self.base_url))
            .json(&json!({ "key": key.expose() }))
            .send()
            .await
            .map_err(transport_error)?;
        check(response, describe).await.map(|_| ())
    }

    async fn revoke_api_key(&self, key: &Secret) -> Result<(), VendorError> {
        let response = self
            .http
            .post(format!("{}/admin/api-keys/revoke", self.base_url))
            .json(&json!({ "key": key.expose() }))
            .send()
            .await
            .map_err(transport_error)?;
        match check(response, describe).await {
            Ok(_) | Err(VendorError::Rejected { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One authenticated read of a document that does not exist: `404` proves the key works
    /// (a bad key is `401`/`403` before the lookup), in every idempotency mode.
    async fn check_api_key(&self, key: &Secret) -> Result<(), VendorError> {
        let response = self
            .http
            .get(format!(
                "{}/v1/documents/ocrbridge-rotation-check",
                self.base_url
            ))
            .header("authorization", format!("Bearer {}", key.expose()))
            .send()
            .await
            .map_err(transport_error)?;
        match check(response, describe).await {
            Ok(_) | Err(VendorError::Rejected { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::keyring::{Keyring, Secret, Stage};
    use crate::vendors::SecretRegistry;

    /// What a failing call says — and rotation logs — never holds the key or the URL it went
    /// to: a key whose revocation failed is still valid.
    #[tokio::test]
    async fn errors_of_secret_calls_hold_no_secret() {
        let secrets = aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::Config::builder()
                .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
                .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
                .build(),
        );
        // Nothing listens on port 9 (discard): every call fails to connect.
        let vendor = SimVendor::new(
            http_client(Default::default(), Default::default()).unwrap(),
            "http://127.0.0.1:9",
            Keyring::new(
                secrets,
                "unused",
                &[Stage::Current],
                Duration::from_secs(60),
            ),
        );
        let key = Secret::new("sk_live_do_not_log_me_0123456789");
        let errors = [
            vendor.revoke_api_key(&key).await.unwrap_err(),
            vendor.register_api_key(&key).await.unwrap_err(),
            vendor.check_api_key(&key).await.unwrap_err(),
            vendor
                .set_webhook_secrets(std::slice::from_ref(&key))
                .await
                .unwrap_err(),
        ];
        for e in errors {
            for text in [e.to_string(), format!("{e:?}")] {
                assert!(!text.contains(key.expose()), "{text}");
                assert!(!text.contains("127.0.0.1:9/"), "no URL: {text}");
            }
        }
    }

    use super::*;

    #[test]
    fn unknown_statuses_are_never_success() {
        let job = parse_job(&json!({"id": "d1", "status": "completed_v2"})).unwrap();
        assert_eq!(job.status, VendorStatus::Unknown("completed_v2".into()));
        let failed = parse_job(
            &json!({"id": "d1", "status": "failed", "error": {"code": "c", "message": "m"}}),
        )
        .unwrap();
        assert_eq!(
            failed.status,
            VendorStatus::Failed {
                code: "c".into(),
                message: "m".into()
            }
        );
        assert!(parse_job(&json!({"status": "queued"})).is_err());
    }
}
