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
//! **Per vendor** ([`KeyScheme`]): the simulator takes keys and signing secrets by API, so both
//! rotate as above. Azure issues two keys (KEY1, KEY2), both valid: `createSecret` takes the
//! standby key its owner regenerated and put under the `STANDBY` stage, `setSecret` has
//! nothing to tell Azure, `testSecret` proves it with Azure's cheapest authenticated call, and
//! `finishSecret` makes it current and asks the owner (`VendorKeyRegenerationNeeded`, alarmed)
//! to regenerate the key it replaced and put the new one back as `STANDBY`. Mindee's keys come
//! from its console and Textract has none: they are not rotated (the template schedules no
//! rotation for them), and a step asked of them fails saying so.
//!
//! **The key check** (`{"check": "vendor_api_key"}`, scheduled hourly for every vendor with a
//! key) proves the current key — and a two-key vendor's standby — with that cheap call, and
//! reports the current key's age (`VendorKeyAgeDays`, alarmed at `KeyMaxAgeDays`). A refused key
//! is a `VendorAuthFailures[…, key_check, …]` and a failed invocation.
//!
//! moto cannot run rotation Lambdas and has no way to create the value-less `AWSPENDING` version
//! that `RotateSecret` creates before calling `createSecret`. So `createSecret` also accepts a
//! token with no version yet and creates it; every later step requires it. Tests drive the
//! four steps in order, as the service would, and never call `RotateSecret`.

use std::collections::HashMap;

use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata};
use base64::Engine;
use ocrbridge::config::StackConfig;
use ocrbridge::keyring::KeyAge;
use ocrbridge::keyring::Secret;
use ocrbridge::metrics::{self, Metrics};
use ocrbridge::signature::{self, Scheme};
use ocrbridge::vendors::{KeyScheme, SecretRegistry, Vendor, VendorError, STANDBY_STAGE};
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

/// What the rotate function is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// A Secrets Manager rotation step.
    Rotation(RotationEvent),
    /// The scheduled proof of the vendor key (`{"check": "vendor_api_key"}`).
    KeyCheck,
}

impl Invocation {
    pub fn from_json(event: &Value) -> Result<Self, RotateError> {
        match event.get("check").and_then(Value::as_str) {
            Some("vendor_api_key") => Ok(Invocation::KeyCheck),
            Some(other) => Err(RotateError::BadEvent(format!(
                "unknown check {other:?} (the one check is \"vendor_api_key\")"
            ))),
            None => RotationEvent::from_json(event).map(Invocation::Rotation),
        }
    }
}

/// What the key check found.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyCheck {
    /// Days the current key has been current.
    pub age_days: Option<f64>,
    /// Whether a two-key vendor's standby key was there, and proved.
    pub standby: Option<bool>,
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
    #[error("secret {secret} has no {STANDBY_STAGE} key to rotate to: regenerate the key that is not current in the vendor's console and put it with `aws secretsmanager put-secret-value --secret-id {secret} --version-stages {STANDBY_STAGE} --secret-string …` (RUNBOOK.md#azure-two-keys)")]
    NoStandbyKey { secret: String },
    #[error("the {STANDBY_STAGE} key of {secret} is the current key: regenerate the other key and put that one as {STANDBY_STAGE} (RUNBOOK.md#azure-two-keys)")]
    StandbyIsCurrent { secret: String },
    #[error("{vendor}'s API key is not rotated by ocrbridge ({scheme:?}): its owner rotates it in the vendor's console and the scheduled key check reports its age (RUNBOOK.md#rotation-failures)")]
    NotRotatable {
        vendor: &'static str,
        scheme: KeyScheme,
    },
    #[error("the vendor refused the {which} API key ({status}): put a working key in Secrets Manager (RUNBOOK.md#vendor-auth-failures)")]
    KeyRefused { which: &'static str, status: u16 },
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

impl<R: SecretRegistry + Vendor> Rotate<R> {
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
            SecretKind::VendorApiKey => match self.registry.key_scheme() {
                KeyScheme::Registered => {
                    let mut rng = rand::rng();
                    let tail: String = (0..40)
                        .map(|_| rng.sample(rand::distr::Alphanumeric) as char)
                        .collect();
                    format!("sk_ocrb_{tail}")
                }
                KeyScheme::TwoKeys => self.standby(described).await?.expose().to_owned(),
                scheme @ (KeyScheme::Console | KeyScheme::Role) => {
                    return Err(RotateError::NotRotatable {
                        vendor: self.registry.name(),
                        scheme,
                    })
                }
            },
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
            SecretKind::VendorApiKey => match self.registry.key_scheme() {
                KeyScheme::Registered => self.registry.register_api_key(&pending).await?,
                // Both keys are the vendor's own: there is nothing to tell it.
                KeyScheme::TwoKeys => info!("the vendor issued the standby key; nothing to set"),
                scheme @ (KeyScheme::Console | KeyScheme::Role) => {
                    return Err(RotateError::NotRotatable {
                        vendor: self.registry.name(),
                        scheme,
                    })
                }
            },
        }
        Ok(())
    }

    /// A two-key vendor's standby key: the value under [`STANDBY_STAGE`], which must not be the
    /// current key (rotating to it would change nothing, and the owner would regenerate the
    /// key in use).
    async fn standby(&self, described: &Described) -> Result<Secret, RotateError> {
        let standby = self
            .value(&described.arn, None, STANDBY_STAGE)
            .await?
            .ok_or_else(|| RotateError::NoStandbyKey {
                secret: described.arn.clone(),
            })?;
        let current = self.value(&described.arn, None, "AWSCURRENT").await?;
        if current.is_some_and(|c| c.expose() == standby.expose()) {
            return Err(RotateError::StandbyIsCurrent {
                secret: described.arn.clone(),
            });
        }
        Ok(standby)
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
            SecretKind::VendorApiKey if self.registry.key_scheme() == KeyScheme::TwoKeys => {
                // The standby is current now: it stands by no more. The key it replaced is
                // AWSPREVIOUS and still valid at the vendor until its owner regenerates it.
                if let Some(standby) = described.version_with(STANDBY_STAGE) {
                    self.secrets
                        .update_secret_version_stage()
                        .secret_id(&described.arn)
                        .version_stage(STANDBY_STAGE)
                        .remove_from_version_id(standby)
                        .send()
                        .await
                        .map_err(sm("UpdateSecretVersionStage"))?;
                }
                self.metrics.count(
                    metrics::VENDOR_KEY_REGENERATION_NEEDED,
                    &[self.registry.name()],
                    &[],
                );
                tracing::warn!(
                    vendor = self.registry.name(),
                    "the standby key is current: regenerate the key it replaced (now AWSPREVIOUS) in the vendor's console and put the new one as STANDBY (RUNBOOK.md#azure-two-keys)"
                );
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

    /// The scheduled key check: proves the current key (and a two-key vendor's standby) with
    /// the vendor's cheapest authenticated call, and reports the current key's age at `now_ms`.
    pub async fn check_key(&self, now_ms: u64) -> Result<KeyCheck, RotateError> {
        let vendor = self.registry.name();
        if self.registry.key_scheme() == KeyScheme::Role {
            info!(vendor, "no API key to check: the role signs the calls");
            return Ok(KeyCheck {
                age_days: None,
                standby: None,
            });
        }
        let secret = self.stack.vendor_api_key_secret.clone();
        let age_days = match KeyAge::new(self.secrets.clone(), &secret)
            .days(now_ms)
            .await
        {
            Ok(days) => {
                self.metrics
                    .emit(metrics::VENDOR_KEY_AGE, days, &[vendor], &[]);
                Some(days)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the vendor key's age");
                None
            }
        };
        let current = self
            .value(&secret, None, "AWSCURRENT")
            .await?
            .ok_or_else(|| RotateError::SecretsManager {
                operation: "GetSecretValue",
                detail: format!("{secret} has no AWSCURRENT value"),
            })?;
        self.prove(&current, "current").await?;
        let standby = match self.registry.key_scheme() {
            KeyScheme::TwoKeys => match self.value(&secret, None, STANDBY_STAGE).await? {
                Some(standby) => Some(self.prove(&standby, "standby").await.is_ok()),
                None => {
                    tracing::warn!(
                        vendor,
                        "no STANDBY key: the next rotation will fail until its owner puts one (RUNBOOK.md#azure-two-keys)"
                    );
                    Some(false)
                }
            },
            _ => None,
        };
        Ok(KeyCheck { age_days, standby })
    }

    /// One authenticated call with `key`, counted by outcome.
    async fn prove(&self, key: &Secret, which: &'static str) -> Result<(), RotateError> {
        let vendor = self.registry.name();
        let result = self.registry.check_api_key(key).await;
        let outcome = match &result {
            Ok(()) => "ok",
            Err(VendorError::Auth { .. }) => "refused",
            Err(_) => "unreachable",
        };
        self.metrics
            .count(metrics::VENDOR_KEY_CHECKS, &[vendor, which, outcome], &[]);
        match result {
            Ok(()) => Ok(()),
            Err(VendorError::Auth { status }) => {
                let status_text = status.to_string();
                self.metrics.count(
                    metrics::AUTH_FAILURES,
                    &[vendor, "key_check", &status_text],
                    &[],
                );
                tracing::error!(
                    vendor,
                    key = which,
                    status,
                    "the vendor refused its API key"
                );
                Err(RotateError::KeyRefused { which, status })
            }
            Err(e) => Err(RotateError::Vendor(e)),
        }
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
