//! `rotate`: Secrets Manager rotation for the webhook signing secret and the vendor API key.
//!
//! The four-step contract (ANCHORS.md §4), each step idempotent and guarded:
//! every step first describes the secret and requires rotation to be enabled, the token to be a
//! version of the secret, and that version to be `AWSPENDING` (it returns at once if the token is
//! already `AWSCURRENT`: the step was done).
//!
//! | step | webhook signing secret | vendor API key |
//! |---|---|---|
//! | `createSecret` | a new `whsec_` secret as `AWSPENDING` (kept if it exists) | a new key as `AWSPENDING` |
//! | `setSecret` | the vendor signs with current **and** pending | the vendor accepts the pending key |
//! | `testSecret` | a test event signed with pending passes the production verifier | an authenticated call with pending succeeds |
//! | `finishSecret` | `AWSCURRENT` moves to the token; the vendor signs with the new secret only | `AWSCURRENT` moves; the key that fell out of `AWSPREVIOUS` is revoked |
//!
//! Receivers verify with current, pending and previous, so they accept the new secret before
//! the vendor signs with it, and the old one until the next rotation pushes it out.
//!
//! moto cannot run rotation Lambdas and has no way to create the value-less `AWSPENDING` version
//! that `RotateSecret` creates before calling `createSecret`. So `createSecret` also accepts a
//! token with no version yet and creates it; every later step requires it. Tests drive the
//! four steps in order, as the service would, and never call `RotateSecret`.

use std::collections::HashMap;

use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata};
use base64::Engine;
use ocrbridge::config::StackConfig;
use ocrbridge::keyring::Secret;
use ocrbridge::metrics::{self, Metrics};
use ocrbridge::signature::{self, Scheme};
use ocrbridge::vendors::{SecretRegistry, VendorError};
use rand::{Rng, RngCore};
use serde_json::Value;
use tracing::info;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Create,
    Set,
    Test,
    Finish,
}

impl Step {
    pub fn parse(name: &str) -> Option<Step> {
        match name {
            "createSecret" | "create_secret" => Some(Step::Create),
            "setSecret" | "set_secret" => Some(Step::Set),
            "testSecret" | "test_secret" => Some(Step::Test),
            "finishSecret" | "finish_secret" => Some(Step::Finish),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Create => "createSecret",
            Step::Set => "setSecret",
            Step::Test => "testSecret",
            Step::Finish => "finishSecret",
        }
    }
}

/// A rotation invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationEvent {
    pub secret_id: String,
    pub token: String,
    pub step: Step,
}

impl RotationEvent {
    /// Reads `{SecretId, ClientRequestToken, Step}`, or the snake_case spellings.
    pub fn from_json(event: &Value) -> Result<Self, RotateError> {
        let field = |a: &str, b: &str| {
            event
                .get(a)
                .or_else(|| event.get(b))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| RotateError::BadEvent(format!("missing {a}")))
        };
        let step_name = field("Step", "step")?;
        Ok(RotationEvent {
            secret_id: field("SecretId", "secret_id")?,
            token: field("ClientRequestToken", "client_request_token")?,
            step: Step::parse(&step_name)
                .ok_or_else(|| RotateError::BadEvent(format!("unknown step {step_name:?}")))?,
        })
    }
}

/// Which of ocrbridge's secrets is rotating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    WebhookSigning,
    VendorApiKey,
}

impl SecretKind {
    fn as_str(self) -> &'static str {
        match self {
            SecretKind::WebhookSigning => "webhook",
            SecretKind::VendorApiKey => "api_key",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("not a rotation event: {0}")]
    BadEvent(String),
    #[error("secret {0} is not one ocrbridge rotates")]
    UnknownSecret(String),
    #[error("rotation is not enabled for secret {0}")]
    NotEnabled(String),
    #[error("secret version {token} has no stage for rotation of {secret}")]
    UnknownToken { secret: String, token: String },
    #[error("secret version {token} of {secret} is not AWSPENDING")]
    NotPending { secret: String, token: String },
    #[error("Secrets Manager {operation} failed: {detail}")]
    SecretsManager {
        operation: &'static str,
        detail: String,
    },
    #[error("the vendor refused the rotation step: {0}")]
    Vendor(#[from] VendorError),
    #[error("the pending webhook secret does not verify with the production verifier")]
    TestFailed,
}

fn sm<E: std::error::Error + 'static, R: std::fmt::Debug>(
    operation: &'static str,
) -> impl Fn(aws_sdk_secretsmanager::error::SdkError<E, R>) -> RotateError {
    move |e| RotateError::SecretsManager {
        operation,
        detail: DisplayErrorContext(e).to_string(),
    }
}

pub struct Rotate<R> {
    pub secrets: aws_sdk_secretsmanager::Client,
    pub registry: R,
    pub metrics: Metrics,
    pub stack: StackConfig,
    /// `REQUIRE_ROTATION_ENABLED` (default true). Only the local stack turns it off: moto cannot
    /// enable rotation without running a rotation Lambda.
    pub require_rotation_enabled: bool,
}

struct Described {
    arn: String,
    versions: HashMap<String, Vec<String>>,
}

impl Described {
    fn version_with(&self, stage: &str) -> Option<&str> {
        self.versions
            .iter()
            .find(|(_, stages)| stages.iter().any(|s| s == stage))
            .map(|(v, _)| v.as_str())
    }
}

impl<R: SecretRegistry> Rotate<R> {
    pub async fn handle(&self, event: &RotationEvent) -> Result<(), RotateError> {
        let result = self.run(event).await;
        let kind = self
            .kind_of(&event.secret_id)
            .map_or("unknown", |k| k.as_str());
        match &result {
            Ok(()) => {
                self.metrics
                    .count(metrics::ROTATION_STEPS, &[kind, event.step.as_str()], &[])
            }
            Err(e) => {
                tracing::error!(step = event.step.as_str(), error = %e, "rotation step failed");
                self.metrics.count(
                    metrics::ROTATION_FAILURES,
                    &[kind, event.step.as_str()],
                    &[],
                );
            }
        }
        result
    }

    fn kind_of(&self, secret_id: &str) -> Option<SecretKind> {
        let matches = |configured: &str| {
            configured == secret_id || configured.contains(&format!(":secret:{secret_id}"))
        };
        if matches(&self.stack.webhook_secret) {
            Some(SecretKind::WebhookSigning)
        } else if matches(&self.stack.vendor_api_key_secret) {
            Some(SecretKind::VendorApiKey)
        } else {
            None
        }
    }

    async fn run(&self, event: &RotationEvent) -> Result<(), RotateError> {
        let described = self.describe(&event.secret_id).await?;
        let kind = self
            .kind_of(&described.arn)
            .or_else(|| self.kind_of(&event.secret_id))
            .ok_or_else(|| RotateError::UnknownSecret(event.secret_id.clone()))?;
        match described.versions.get(&event.token) {
            Some(stages) if stages.iter().any(|s| s == "AWSCURRENT") => {
                info!(
                    step = event.step.as_str(),
                    "token is already AWSCURRENT; nothing to do"
                );
                return Ok(());
            }
            Some(stages) if !stages.iter().any(|s| s == "AWSPENDING") => {
                return Err(RotateError::NotPending {
                    secret: described.arn.clone(),
                    token: event.token.clone(),
                })
            }
            None if event.step != Step::Create => {
                return Err(RotateError::UnknownToken {
                    secret: described.arn.clone(),
                    token: event.token.clone(),
                })
            }
            _ => {}
        }
        match event.step {
            Step::Create => self.create(&described, &event.token, kind).await,
            Step::Set => self.set(&described, &event.token, kind).await,
            Step::Test => self.test(&described, &event.token, kind).await,
            Step::Finish => self.finish(&described, &event.token, kind).await,
        }
    }

    async fn describe(&self, secret_id: &str) -> Result<Described, RotateError> {
        let out = self
            .secrets
            .describe_secret()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(sm("DescribeSecret"))?;
        let arn = out.arn().unwrap_or(secret_id).to_owned();
        if self.require_rotation_enabled && out.rotation_enabled() != Some(true) {
            return Err(RotateError::NotEnabled(arn));
        }
        Ok(Described {
            arn,
            versions: out.version_ids_to_stages().cloned().unwrap_or_default(),
        })
    }

    async fn value(
        &self,
        arn: &str,
        version_id: Option<&str>,
        stage: &str,
    ) -> Result<Option<Secret>, RotateError> {
        let result = self
            .secrets
            .get_secret_value()
            .secret_id(arn)
            .set_version_id(version_id.map(str::to_owned))
            .version_stage(stage)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.secret_string().map(Secret::new)),
            Err(e)
                if e.as_service_error().and_then(|s| s.code())
                    == Some("ResourceNotFoundException") =>
            {
                Ok(None)
            }
            Err(e) => Err(sm("GetSecretValue")(e)),
        }
    }

    async fn pending(&self, described: &Described, token: &str) -> Result<Secret, RotateError> {
        self.value(&described.arn, Some(token), "AWSPENDING")
            .await?
            .ok_or_else(|| RotateError::NotPending {
                secret: described.arn.clone(),
                token: token.to_owned(),
            })
    }

    async fn create(
        &self,
        described: &Described,
        token: &str,
        kind: SecretKind,
    ) -> Result<(), RotateError> {
        if self
            .value(&described.arn, Some(token), "AWSPENDING")
            .await?
            .is_some()
        {
            info!("AWSPENDING already has a value for this token");
            return Ok(());
        }
        let value = match kind {
            SecretKind::WebhookSigning => {
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                format!(
                    "whsec_{}",
                    base64::engine::general_purpose::STANDARD.encode(key)
                )
            }
            SecretKind::VendorApiKey => {
                let mut rng = rand::rng();
                let tail: String = (0..40)
                    .map(|_| rng.sample(rand::distr::Alphanumeric) as char)
                    .collect();
                format!("sk_ocrb_{tail}")
            }
        };
        self.secrets
            .put_secret_value()
            .secret_id(&described.arn)
            .client_request_token(token)
            .secret_string(value)
            .version_stages("AWSPENDING")
            .send()
            .await
            .map_err(sm("PutSecretValue"))?;
        info!(kind = kind.as_str(), "created the pending secret");
        Ok(())
    }

    async fn set(
        &self,
        described: &Described,
        token: &str,
        kind: SecretKind,
    ) -> Result<(), RotateError> {
        let pending = self.pending(described, token).await?;
        match kind {
            SecretKind::WebhookSigning => {
                let mut secrets = Vec::new();
                if let Some(current) = self.value(&described.arn, None, "AWSCURRENT").await? {
                    secrets.push(current);
                }
                secrets.push(pending);
                self.registry.set_webhook_secrets(&secrets).await?;
            }
            SecretKind::VendorApiKey => self.registry.register_api_key(&pending).await?,
        }
        Ok(())
    }

    async fn test(
        &self,
        described: &Described,
        token: &str,
        kind: SecretKind,
    ) -> Result<(), RotateError> {
        let pending = self.pending(described, token).await?;
        match kind {
            SecretKind::WebhookSigning => {
                let body = br#"{"type":"ocrbridge.rotation_test"}"#;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or_default();
                let id = format!("rotation-test-{token}");
                let signature = signature::sign_standard(&pending, &id, now, body)
                    .ok_or(RotateError::TestFailed)?;
                let headers = vec![
                    ("webhook-id".to_owned(), id),
                    ("webhook-timestamp".to_owned(), now.to_string()),
                    ("webhook-signature".to_owned(), signature),
                ];
                let verifier = Scheme::StandardWebhooks {
                    tolerance_secs: signature::DEFAULT_TOLERANCE_SECS,
                };
                verifier
                    .verify(headers.as_slice(), body, &[pending], now)
                    .map(|_| ())
                    .map_err(|_| RotateError::TestFailed)
            }
            SecretKind::VendorApiKey => Ok(self.registry.check_api_key(&pending).await?),
        }
    }

    async fn finish(
        &self,
        described: &Described,
        token: &str,
        kind: SecretKind,
    ) -> Result<(), RotateError> {
        let current = described.version_with("AWSCURRENT").map(str::to_owned);
        if current.as_deref() == Some(token) {
            return Ok(());
        }
        // The key about to fall out of the keyring entirely (today's AWSPREVIOUS).
        let falling_out = match described.version_with("AWSPREVIOUS") {
            Some(previous) if kind == SecretKind::VendorApiKey => {
                self.value(&described.arn, Some(previous), "AWSPREVIOUS")
                    .await?
            }
            _ => None,
        };
        self.secrets
            .update_secret_version_stage()
            .secret_id(&described.arn)
            .version_stage("AWSCURRENT")
            .move_to_version_id(token)
            .set_remove_from_version_id(current)
            .send()
            .await
            .map_err(sm("UpdateSecretVersionStage"))?;
        match kind {
            SecretKind::WebhookSigning => {
                let new = self.pending_or_current(described, token).await?;
                self.registry.set_webhook_secrets(&[new]).await?;
            }
            SecretKind::VendorApiKey => {
                if let Some(old) = falling_out {
                    self.registry.revoke_api_key(&old).await?;
                }
            }
        }
        info!(kind = kind.as_str(), "rotation finished");
        Ok(())
    }

    async fn pending_or_current(
        &self,
        described: &Described,
        token: &str,
    ) -> Result<Secret, RotateError> {
        match self
            .value(&described.arn, Some(token), "AWSCURRENT")
            .await?
        {
            Some(v) => Ok(v),
            None => self.pending(described, token).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_both_spellings() {
        let a = RotationEvent::from_json(
            &json!({"SecretId": "s", "ClientRequestToken": "t", "Step": "createSecret"}),
        )
        .unwrap();
        let b = RotationEvent::from_json(
            &json!({"secret_id": "s", "client_request_token": "t", "step": "create_secret"}),
        )
        .unwrap();
        assert_eq!(a, b);
        assert!(RotationEvent::from_json(
            &json!({"SecretId": "s", "ClientRequestToken": "t", "Step": "bake"})
        )
        .is_err());
        assert!(RotationEvent::from_json(&json!({"SecretId": "s"})).is_err());
    }
}
