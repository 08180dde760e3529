//! Secrets from Secrets Manager, cached per container, never printed.
//!
//! Every read names its `VersionStage` explicitly: without one, `GetSecretValue` may return a
//! stale version right after a stage move (seen with moto; AWS documents the same window). Values
//! are cached for a short max-age, and callers force one refresh when the value is rejected —
//! a 401 from the vendor or a webhook signature that fails — because rotation may just have
//! moved the stages.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata};
use tokio::sync::Mutex;

/// The rotation stages a verifier may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Current,
    Pending,
    Previous,
}

impl Stage {
    pub fn label(self) -> &'static str {
        match self {
            Stage::Current => "AWSCURRENT",
            Stage::Pending => "AWSPENDING",
            Stage::Previous => "AWSPREVIOUS",
        }
    }
}

/// A secret value. `Debug` and `Display` print a placeholder, so it cannot leak into logs,
/// errors or test snapshots by formatting.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that must use it (an HTTP header, an HMAC key).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// Secrets Manager could not be reached or refused (permissions). Retry later; check the
    /// function's `secretsmanager:GetSecretValue` permission on the secret.
    #[error("Secrets Manager GetSecretValue({stage}) on {secret_id} failed: {detail}")]
    Fetch {
        secret_id: String,
        stage: &'static str,
        detail: String,
        /// The HTTP status of Secrets Manager's answer, when one came.
        status: Option<u16>,
        /// Its error code (`AccessDeniedException`…), when it gave one.
        code: Option<String>,
    },
    /// The secret has no string value.
    #[error("secret {secret_id} ({stage}) has no SecretString")]
    Empty {
        secret_id: String,
        stage: &'static str,
    },
}

impl KeyringError {
    /// A read Secrets Manager refused, as 403 (no permission: IAM or the key's policy) or 401
    /// (credentials it does not accept). Not a passing outage: every read fails until someone
    /// fixes the grant. AWS's JSON protocol sends these as a 400 with the code saying which.
    pub fn refused_status(&self) -> Option<u16> {
        let KeyringError::Fetch { status, code, .. } = self else {
            return None;
        };
        match (code.as_deref(), status) {
            (Some("AccessDeniedException"), _) | (_, Some(403)) => Some(403),
            (
                Some(
                    "UnrecognizedClientException"
                    | "InvalidSignatureException"
                    | "ExpiredTokenException"
                    | "InvalidClientTokenId",
                ),
                _,
            )
            | (_, Some(401)) => Some(401),
            _ => None,
        }
    }
}

struct Cached {
    values: Vec<(Stage, Option<Secret>)>,
    fetched_at: Instant,
}

/// A cached view of one secret's stages.
#[derive(Clone)]
pub struct Keyring {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    stages: Vec<Stage>,
    max_age: Duration,
    cache: Arc<Mutex<Option<Cached>>>,
    /// `GetSecretValue` calls made, for tests and benchmarks of what traffic costs.
    fetches: Arc<std::sync::atomic::AtomicU64>,
    /// When a miss last forced a refresh ([`Self::values_after_miss`]).
    last_miss_refresh: Arc<std::sync::Mutex<Option<Instant>>>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("secret_id", &self.secret_id)
            .field("stages", &self.stages)
            .finish()
    }
}

/// How long a cached secret is trusted: short, so a rotation is picked up within a minute even
/// without a forced refresh.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(60);

/// How long past their age the values last read are still used while Secrets Manager cannot be
/// read. Shorter than any rotation schedule's window (a rotation keeps the previous value as
/// `AWSPREVIOUS`, which verifiers accept), so a stale value is one a sender still uses.
pub const STALE_GRACE: Duration = Duration::from_secs(15 * 60);

impl Keyring {
    /// A keyring over `stages` of `secret_id` (an ARN or name).
    pub fn new(
        client: aws_sdk_secretsmanager::Client,
        secret_id: impl Into<String>,
        stages: &[Stage],
        max_age: Duration,
    ) -> Self {
        Keyring {
            client,
            secret_id: secret_id.into(),
            stages: stages.to_vec(),
            max_age,
            cache: Arc::new(Mutex::new(None)),
            fetches: Arc::default(),
            last_miss_refresh: Arc::default(),
        }
    }

    /// How many `GetSecretValue` calls this keyring (and its clones) made.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    /// The values of every configured stage that exists, in stage order. `refresh` bypasses
    /// the cache.
    ///
    /// When Secrets Manager cannot be read, the values last read are still used for up to
    /// [`STALE_GRACE`] past their age (said in the log): a short outage of Secrets Manager must
    /// not turn every webhook into a 503 and every vendor call into a failure as soon as the
    /// cache ages. Past that, the error: a value that old may have been rotated away.
    pub async fn values(&self, refresh: bool) -> Result<Vec<(Stage, Secret)>, KeyringError> {
        let mut cache = self.cache.lock().await;
        let fresh = cache
            .as_ref()
            .is_some_and(|c| c.fetched_at.elapsed() < self.max_age);
        if refresh || !fresh {
            let mut values = Vec::with_capacity(self.stages.len());
            let mut failed = None;
            for stage in &self.stages {
                match self.fetch(*stage).await {
                    Ok(value) => values.push((*stage, value)),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            match failed {
                None => {
                    *cache = Some(Cached {
                        values,
                        fetched_at: Instant::now(),
                    });
                }
                Some(e) => {
                    let usable = cache
                        .as_ref()
                        .is_some_and(|c| c.fetched_at.elapsed() < self.max_age + STALE_GRACE);
                    if !usable {
                        return Err(e);
                    }
                    tracing::warn!(secret_id = %self.secret_id, error = %e, "Secrets Manager unavailable; using the values last read");
                }
            }
        }
        Ok(cache
            .as_ref()
            .map(|c| {
                c.values
                    .iter()
                    .filter_map(|(stage, v)| v.clone().map(|v| (*stage, v)))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The values after a value failed to verify something (a webhook signature miss): re-read
    /// at once — a rotation may have just moved the stages — unless a miss already forced a
    /// re-read within `interval`, in which case the cache answers. Untrusted traffic can ask for
    /// this; a flood of forgeries costs Secrets Manager one read per `interval`, not one per
    /// request, and the first miss after a rotation still sees the new secret.
    pub async fn values_after_miss(
        &self,
        interval: Duration,
    ) -> Result<Vec<(Stage, Secret)>, KeyringError> {
        let refresh = {
            let mut last = self
                .last_miss_refresh
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let due = last.is_none_or(|at| at.elapsed() >= interval);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        self.values(refresh).await
    }

    /// The `AWSCURRENT` value (the first configured stage must be `Current`).
    pub async fn current(&self, refresh: bool) -> Result<Secret, KeyringError> {
        self.values(refresh)
            .await?
            .into_iter()
            .find(|(stage, _)| *stage == Stage::Current)
            .map(|(_, v)| v)
            .ok_or_else(|| KeyringError::Empty {
                secret_id: self.secret_id.clone(),
                stage: Stage::Current.label(),
            })
    }

    /// One stage; `None` if no version holds it (normal for AWSPENDING outside a rotation).
    async fn fetch(&self, stage: Stage) -> Result<Option<Secret>, KeyringError> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let result = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_stage(stage.label())
            .send()
            .await;
        match result {
            Ok(out) => match out.secret_string() {
                Some(value) => Ok(Some(Secret::new(value))),
                None => Err(KeyringError::Empty {
                    secret_id: self.secret_id.clone(),
                    stage: stage.label(),
                }),
            },
            Err(err)
                if stage != Stage::Current
                    && err.as_service_error().and_then(|e| e.code())
                        == Some("ResourceNotFoundException") =>
            {
                Ok(None)
            }
            Err(err) => Err(KeyringError::Fetch {
                secret_id: self.secret_id.clone(),
                stage: stage.label(),
                status: err.raw_response().map(|r| r.status().as_u16()),
                code: err
                    .as_service_error()
                    .and_then(|e| e.code())
                    .map(str::to_owned),
                detail: DisplayErrorContext(err).to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_format_their_value() {
        let s = Secret::new("sk_live_very_secret");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(s.expose(), "sk_live_very_secret");
        let in_struct = format!("{:?}", (1, &s));
        assert!(!in_struct.contains("very_secret"));
    }
}

/// How long the vendor key in use has been current: the creation of the version labelled
/// `AWSCURRENT`. Reported as `VendorKeyAgeDays` for keys issued in a vendor's console, which no
/// schedule rotates (RUNBOOK.md#rotation-failures): the alarm at `KeyMaxAgeDays` is the reminder.
#[derive(Debug, Clone)]
pub struct KeyAge {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

impl KeyAge {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        KeyAge {
            client,
            secret_id: secret_id.into(),
        }
    }

    /// Days since the current version was created, at `now_ms` (Unix milliseconds).
    pub async fn days(&self, now_ms: u64) -> Result<f64, String> {
        let versions = self
            .client
            .list_secret_version_ids()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| DisplayErrorContext(e).to_string())?;
        let created = versions
            .versions()
            .iter()
            .find(|v| {
                v.version_stages()
                    .iter()
                    .any(|s| s == Stage::Current.label())
            })
            .and_then(|v| v.created_date())
            .ok_or("the secret has no AWSCURRENT version with a creation date")?;
        let created_ms = created.to_millis().map_err(|e| e.to_string())?;
        Ok(now_ms.saturating_sub(created_ms.max(0) as u64) as f64 / 86_400_000.0)
    }
}
