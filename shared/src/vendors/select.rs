//! Choosing the vendor by configuration, in one place: no function's `main` names a concrete
//! vendor. `VENDOR` picks the adapter; the rest of its settings come from the environment too,
//! each documented on [`VendorSettings`], and a bad value fails at init with the setting's name.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::azure::AzureVendor;
use super::http::{http_client, HttpTimeouts};
use super::mindee::MindeeVendor;
use super::sim::SimVendor;
use super::textract::TextractVendor;
use super::{normalize, Capabilities, Idempotency, Submission, Vendor, VendorError, VendorJob};
use crate::aws::AwsClients;
use crate::job::Profile;
use crate::keyring::{Keyring, Stage, DEFAULT_MAX_AGE};

/// The vendors ocrbridge has an adapter for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VendorKind {
    /// `tools/vendor-sim`'s own API (local stack, demos, chaos runs).
    Sim,
    /// AWS Textract, asynchronous APIs.
    Textract,
    /// Azure AI Document Intelligence, REST API 2024-11-30.
    Azure,
    /// Mindee v2.
    Mindee,
}

impl VendorKind {
    /// How this vendor's API key is kept and rotated (see `SecretRegistry::key_scheme`, which
    /// an adapter answers with this).
    pub fn key_scheme(self) -> super::KeyScheme {
        match self {
            VendorKind::Sim => super::KeyScheme::Registered,
            VendorKind::Azure => super::KeyScheme::TwoKeys,
            VendorKind::Mindee => super::KeyScheme::Console,
            VendorKind::Textract => super::KeyScheme::Role,
        }
    }

    pub const ALL: [VendorKind; 4] = [
        VendorKind::Sim,
        VendorKind::Textract,
        VendorKind::Azure,
        VendorKind::Mindee,
    ];

    /// The name used in `VENDOR`, metrics (`Vendor`) and budget items.
    pub fn as_str(self) -> &'static str {
        match self {
            VendorKind::Sim => "sim",
            VendorKind::Textract => "textract",
            VendorKind::Azure => "azure",
            VendorKind::Mindee => "mindee",
        }
    }

    /// Which model (or API) each profile uses when `VENDOR_MODELS` does not say.
    fn default_models(self) -> &'static [(&'static str, &'static str)] {
        match self {
            VendorKind::Sim => &[
                ("receipt", "receipt"),
                ("invoice", "invoice"),
                ("id", "id"),
                ("generic", "generic"),
            ],
            // The operation: expense (AnalyzeExpense), analysis (FORMS and TABLES), text
            // (DetectDocumentText), id (AnalyzeID). AnalyzeID answers synchronously only: with
            // TEXTRACT_SYNCHRONOUS off, or a document it does not take, an `id` is read as
            // text, its MRZ found among the lines, and the fields the text path cannot type are
            // missing (review says so).
            VendorKind::Textract => &[
                ("receipt", "expense"),
                ("invoice", "expense"),
                ("forms", "analysis"),
                ("tables", "analysis"),
                ("id", "id"),
                ("generic", "text"),
            ],
            VendorKind::Azure => &[
                ("receipt", "prebuilt-receipt"),
                ("invoice", "prebuilt-invoice"),
                ("id", "prebuilt-idDocument"),
                ("tables", "prebuilt-layout"),
                ("forms", "prebuilt-layout"),
                ("generic", "prebuilt-read"),
            ],
            // Mindee model ids belong to the account: they must be configured.
            VendorKind::Mindee => &[],
        }
    }
}

impl fmt::Display for VendorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VendorKind {
    type Err = VendorConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VendorKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s.trim())
            .ok_or_else(|| VendorConfigError {
                setting: "VENDOR",
                problem: format!(
                    "{s:?} is not a vendor ocrbridge knows; use one of: {}",
                    VendorKind::ALL.map(VendorKind::as_str).join(", ")
                ),
            })
    }
}

/// A vendor setting that is missing or wrong: which one, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {setting}: {problem}")]
pub struct VendorConfigError {
    pub setting: &'static str,
    pub problem: String,
}

/// The model (or API) to use at the vendor for each profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelMap {
    by_profile: BTreeMap<String, String>,
}

impl ModelMap {
    /// The vendor's defaults, overridden by `VENDOR_MODELS` (`receipt=…,invoice=…`).
    pub fn parse(kind: VendorKind, spec: Option<&str>) -> Result<Self, VendorConfigError> {
        let mut by_profile: BTreeMap<String, String> = kind
            .default_models()
            .iter()
            .map(|(p, m)| ((*p).to_owned(), (*m).to_owned()))
            .collect();
        for part in spec
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (profile, model) = part.split_once('=').ok_or_else(|| VendorConfigError {
                setting: "VENDOR_MODELS",
                problem: format!("{part:?} is not PROFILE=MODEL"),
            })?;
            Profile::new(profile.trim()).map_err(|e| VendorConfigError {
                setting: "VENDOR_MODELS",
                problem: e.to_string(),
            })?;
            if model.trim().is_empty() {
                return Err(VendorConfigError {
                    setting: "VENDOR_MODELS",
                    problem: format!("no model for profile {profile:?}"),
                });
            }
            by_profile.insert(profile.trim().to_owned(), model.trim().to_owned());
        }
        if by_profile.is_empty() {
            return Err(VendorConfigError {
                setting: "VENDOR_MODELS",
                problem: format!(
                    "{kind} has no default models; set PROFILE=MODEL for each profile"
                ),
            });
        }
        Ok(ModelMap { by_profile })
    }

    /// The model for `profile`, or the `generic` one.
    pub fn model_for(&self, profile: &Profile) -> Result<&str, VendorError> {
        self.by_profile
            .get(profile.as_str())
            .or_else(|| self.by_profile.get("generic"))
            .map(String::as_str)
            .ok_or_else(|| VendorError::Rejected {
                status: 0,
                code: "no_model".into(),
                message: format!(
                    "no vendor model is configured for profile {profile} (VENDOR_MODELS), and none for generic"
                ),
            })
    }

    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.by_profile
            .iter()
            .map(|(p, m)| (p.as_str(), m.as_str()))
    }
}

/// Everything that chooses and configures the vendor adapter, read once from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct VendorSettings {
    /// `VENDOR` (default `sim`).
    pub kind: VendorKind,
    /// `VENDOR_MODELS`: `PROFILE=MODEL,…` over the vendor's defaults (and `VENDOR_ROUTES`'
    /// `vendor:model` entries over both).
    pub models: ModelMap,
    /// `VENDOR_BASE_URL`: the simulator's URL, the Azure resource endpoint, or Mindee's API
    /// (default `https://api-v2.mindee.net`). Textract's endpoint comes from the SDK
    /// (`AWS_ENDPOINT_URL_TEXTRACT` points only Textract elsewhere).
    pub base_url: Option<String>,
    /// `VENDOR_TIMEOUT_MS` (default 10,000): the longest a status or result call may take; a
    /// submission is bounded by its lease as well.
    pub timeout: Duration,
    /// `VENDOR_SIM_IDEMPOTENCY`: how the simulator was started (`native`, `none`,
    /// `expiring:SECS`).
    pub sim_idempotency: Idempotency,
    /// `TEXTRACT_SNS_TOPIC_ARN` and `TEXTRACT_ROLE_ARN`: where Textract publishes completions
    /// (both, or neither: then reconcile's polling finds every result, slowly).
    pub textract_channel: Option<super::textract::Channel>,
    /// `TEXTRACT_SYNCHRONOUS` (`on` or `off`, default `off`): read one-page documents within
    /// the synchronous limits in the call itself ([`super::answer`]).
    pub textract_synchronous: bool,
    /// `VENDOR_MAX_RESULT_BYTES` (default 50 MiB): the largest result read from the vendor; a
    /// larger one fails its job with `result_too_large` instead of the parse function's memory.
    pub max_result_bytes: usize,
    /// `MINDEE_WEBHOOK_IDS`: the Mindee webhook endpoints (ids from Mindee's console, comma
    /// separated) each job reports to; none means completion by polling.
    pub mindee_webhook_ids: Vec<String>,
    /// `TLS_ROOTS` (`bundled` or `system`, default `bundled`): the authorities the vendor's
    /// certificate may chain to (`crate::tls`).
    pub roots: crate::tls::Roots,
}

impl VendorSettings {
    pub fn from_env() -> Result<Self, VendorConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, VendorConfigError> {
        let kind = match lookup("VENDOR") {
            Some(v) if !v.trim().is_empty() => v.parse()?,
            _ => VendorKind::Sim,
        };
        let base_url = lookup("VENDOR_BASE_URL").filter(|v| !v.trim().is_empty());
        let require_url = |what: &str| {
            base_url.clone().ok_or_else(|| VendorConfigError {
                setting: "VENDOR_BASE_URL",
                problem: format!("not set; {kind} needs {what}"),
            })
        };
        match kind {
            VendorKind::Sim => {
                require_url("the simulator's URL")?;
            }
            VendorKind::Azure => {
                require_url("the resource endpoint (https://<name>.cognitiveservices.azure.com)")?;
            }
            VendorKind::Textract | VendorKind::Mindee => {}
        }
        let timeout = match lookup("VENDOR_TIMEOUT_MS") {
            None => Duration::from_secs(10),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis)
                .ok_or_else(|| VendorConfigError {
                    setting: "VENDOR_TIMEOUT_MS",
                    problem: format!("{v:?} is not a positive number of milliseconds"),
                })?,
        };
        let textract_channel = match (
            lookup("TEXTRACT_SNS_TOPIC_ARN").filter(|v| !v.trim().is_empty()),
            lookup("TEXTRACT_ROLE_ARN").filter(|v| !v.trim().is_empty()),
        ) {
            (Some(topic_arn), Some(role_arn)) => Some(super::textract::Channel {
                topic_arn,
                role_arn,
            }),
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                return Err(VendorConfigError {
                    setting: "TEXTRACT_ROLE_ARN",
                    problem: "TEXTRACT_SNS_TOPIC_ARN and TEXTRACT_ROLE_ARN go together".into(),
                })
            }
        };
        let textract_synchronous = match lookup("TEXTRACT_SYNCHRONOUS").as_deref().map(str::trim) {
            None | Some("" | "off") => false,
            Some("on") => true,
            Some(other) => {
                return Err(VendorConfigError {
                    setting: "TEXTRACT_SYNCHRONOUS",
                    problem: format!("{other:?} is neither on nor off"),
                })
            }
        };
        let mindee_webhook_ids: Vec<String> = lookup("MINDEE_WEBHOOK_IDS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(bad) = mindee_webhook_ids
            .iter()
            .find(|id| !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        {
            return Err(VendorConfigError {
                setting: "MINDEE_WEBHOOK_IDS",
                problem: format!("{bad:?} is not a webhook id (letters, digits and '-')"),
            });
        }
        let base_url = match kind {
            VendorKind::Mindee => {
                base_url.or_else(|| Some(super::mindee::DEFAULT_BASE_URL.to_owned()))
            }
            _ => base_url,
        };
        let max_result_bytes = crate::config::setting(
            &lookup,
            "VENDOR_MAX_RESULT_BYTES",
            super::http::DEFAULT_MAX_RESULT_BYTES,
            "a size in bytes, 1024 or more",
            |b: &usize| *b >= 1024,
        )
        .map_err(|e| VendorConfigError {
            setting: e.name,
            problem: format!("{:?} is not {}", e.value, e.expected),
        })?;
        let roots =
            crate::tls::Roots::from_lookup(&lookup).map_err(|problem| VendorConfigError {
                setting: crate::tls::ROOTS_VARIABLE,
                problem,
            })?;
        // A route's `vendor:model` names the model for its profile, over `VENDOR_MODELS`.
        let models = [
            lookup("VENDOR_MODELS").unwrap_or_default(),
            super::route::RouteTable::parse(lookup("VENDOR_ROUTES").as_deref())?.models_for(kind),
        ]
        .join(",");
        Ok(VendorSettings {
            kind,
            max_result_bytes,
            textract_channel,
            textract_synchronous,
            mindee_webhook_ids,
            roots,
            models: ModelMap::parse(kind, Some(&models))?,
            base_url,
            timeout,
            sim_idempotency: parse_sim_idempotency(lookup("VENDOR_SIM_IDEMPOTENCY").as_deref())?,
        })
    }
}

/// `native`, `none` or `expiring:SECS`, as the simulator's `--idempotency` flag.
pub fn parse_sim_idempotency(spec: Option<&str>) -> Result<Idempotency, VendorConfigError> {
    let bad = |v: &str| VendorConfigError {
        setting: "VENDOR_SIM_IDEMPOTENCY",
        problem: format!("{v:?}: use native, none or expiring:SECS"),
    };
    match spec.map(str::trim) {
        None | Some("") | Some("native") => Ok(Idempotency::Native {
            remembers_for: None,
        }),
        Some("none") => Ok(Idempotency::None),
        Some(other) => other
            .strip_prefix("expiring:")
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(|s| Idempotency::Native {
                remembers_for: Some(Duration::from_secs_f64(s)),
            })
            .ok_or_else(|| bad(other)),
    }
}

/// The configured vendor. Every function holds one of these; the adapters behind it are the
/// only code that knows a vendor's wire format.
#[derive(Debug, Clone)]
pub enum AnyVendor {
    Sim(SimVendor),
    Textract(TextractVendor),
    Azure(AzureVendor),
    Mindee(MindeeVendor),
}

impl AnyVendor {
    /// Builds the configured adapter: its HTTP client (one per container, connections reused),
    /// and its API key from Secrets Manager (`VENDOR_API_KEY_SECRET_ARN`) where it has one.
    pub fn build(
        settings: &VendorSettings,
        clients: &AwsClients,
        api_key_secret: &str,
    ) -> Result<Self, VendorConfigError> {
        let http = || {
            http_client(
                HttpTimeouts {
                    request: settings.timeout,
                    ..HttpTimeouts::default()
                },
                settings.roots,
            )
            .map_err(|e| VendorConfigError {
                setting: "VENDOR",
                problem: e.to_string(),
            })
        };
        let api_key = || {
            Keyring::new(
                clients.secrets(),
                api_key_secret,
                &[Stage::Current],
                DEFAULT_MAX_AGE,
            )
        };
        let base_url = settings.base_url.clone().unwrap_or_default();
        match settings.kind {
            VendorKind::Sim => Ok(AnyVendor::Sim(
                SimVendor::new(http()?, base_url, api_key())
                    .with_idempotency(settings.sim_idempotency)
                    .with_models(settings.models.clone())
                    .with_max_result_bytes(settings.max_result_bytes),
            )),
            VendorKind::Textract => Ok(AnyVendor::Textract(
                TextractVendor::new(
                    &clients.textract(),
                    settings.models.clone(),
                    settings.textract_channel.clone(),
                )
                .with_max_result_bytes(settings.max_result_bytes)
                .with_synchronous(settings.textract_synchronous),
            )),
            VendorKind::Azure => Ok(AnyVendor::Azure(
                AzureVendor::new(http()?, base_url, api_key(), settings.models.clone())
                    .with_max_result_bytes(settings.max_result_bytes),
            )),
            VendorKind::Mindee => Ok(AnyVendor::Mindee(
                MindeeVendor::new(
                    http()?,
                    base_url,
                    api_key(),
                    settings.models.clone(),
                    settings.mindee_webhook_ids.clone(),
                )
                .with_max_result_bytes(settings.max_result_bytes),
            )),
        }
    }
}

/// The vendor side of secret rotation. Only the simulator lets a program register keys and
/// signing secrets. Azure issues two keys, so its key rotates between them (the template
/// schedules it); Mindee's keys and webhook secrets come from its console, and Textract has
/// none (the role): a scheduled check proves their keys instead. Every vendor with a key
/// answers the cheap authenticated call that proves one.
impl super::SecretRegistry for AnyVendor {
    fn key_scheme(&self) -> super::KeyScheme {
        let kind = match self {
            AnyVendor::Sim(_) => VendorKind::Sim,
            AnyVendor::Azure(_) => VendorKind::Azure,
            AnyVendor::Mindee(_) => VendorKind::Mindee,
            AnyVendor::Textract(_) => VendorKind::Textract,
        };
        kind.key_scheme()
    }

    async fn set_webhook_secrets(
        &self,
        secrets: &[crate::keyring::Secret],
    ) -> Result<(), VendorError> {
        match self {
            AnyVendor::Sim(v) => v.set_webhook_secrets(secrets).await,
            _ => Err(self.no_registry()),
        }
    }

    async fn register_api_key(&self, key: &crate::keyring::Secret) -> Result<(), VendorError> {
        match self {
            AnyVendor::Sim(v) => v.register_api_key(key).await,
            _ => Err(self.no_registry()),
        }
    }

    async fn revoke_api_key(&self, key: &crate::keyring::Secret) -> Result<(), VendorError> {
        match self {
            AnyVendor::Sim(v) => v.revoke_api_key(key).await,
            _ => Err(self.no_registry()),
        }
    }

    async fn check_api_key(&self, key: &crate::keyring::Secret) -> Result<(), VendorError> {
        match self {
            AnyVendor::Sim(v) => v.check_api_key(key).await,
            AnyVendor::Azure(v) => v.check_key(key).await,
            AnyVendor::Mindee(v) => v.check_key(key).await,
            AnyVendor::Textract(_) => Err(self.no_registry()),
        }
    }
}

impl AnyVendor {
    fn no_registry(&self) -> VendorError {
        let message = match self {
            AnyVendor::Textract(_) => {
                "textract has no API key: the function's role signs its calls".to_owned()
            }
            _ => format!(
                "{} issues its keys and signing secrets in its own console; rotate them there and put the new value in Secrets Manager (RUNBOOK.md, rotation)",
                self.name()
            ),
        };
        VendorError::Rejected {
            status: 0,
            code: "no_key_registry".into(),
            message,
        }
    }
}

/// Calls `$call` on whichever adapter this is.
macro_rules! dispatch {
    ($self:expr, $v:ident => $call:expr) => {
        match $self {
            AnyVendor::Sim($v) => $call,
            AnyVendor::Textract($v) => $call,
            AnyVendor::Azure($v) => $call,
            AnyVendor::Mindee($v) => $call,
        }
    };
}

impl Vendor for AnyVendor {
    fn name(&self) -> &'static str {
        dispatch!(self, v => v.name())
    }

    fn capabilities(&self) -> Capabilities {
        dispatch!(self, v => v.capabilities())
    }

    fn model(&self, profile: &Profile) -> String {
        dispatch!(self, v => v.model(profile))
    }

    fn model_of(&self, job: &crate::job::Job) -> String {
        dispatch!(self, v => v.model_of(job))
    }

    async fn submit(&self, submission: &Submission<'_>) -> Result<String, VendorError> {
        dispatch!(self, v => v.submit(submission).await)
    }

    fn answers_now(&self, job: &crate::job::Job) -> bool {
        dispatch!(self, v => v.answers_now(job))
    }

    async fn answer(
        &self,
        submission: &Submission<'_>,
    ) -> Result<super::answer::Answer, VendorError> {
        dispatch!(self, v => v.answer(submission).await)
    }

    async fn find_by_idempotency_key(&self, key: &str) -> Result<Option<VendorJob>, VendorError> {
        dispatch!(self, v => v.find_by_idempotency_key(key).await)
    }

    async fn status(&self, vendor_job_id: &str) -> Result<VendorJob, VendorError> {
        dispatch!(self, v => v.status(vendor_job_id).await)
    }

    async fn fetch_result(&self, vendor_job_id: &str) -> Result<Vec<u8>, VendorError> {
        dispatch!(self, v => v.fetch_result(vendor_job_id).await)
    }

    async fn result_body(
        &self,
        vendor_job_id: &str,
    ) -> Result<Option<reqwest::Response>, VendorError> {
        dispatch!(self, v => v.result_body(vendor_job_id).await)
    }

    async fn refresh_credentials(&self) {
        dispatch!(self, v => v.refresh_credentials().await)
    }

    fn notice_from_queue(&self, body: &str) -> Option<Result<crate::queue::ResultNotice, String>> {
        dispatch!(self, v => v.notice_from_queue(body))
    }

    fn normalize(
        &self,
        raw: &[u8],
        job_id: &str,
        vendor_job_id: &str,
        profile: &Profile,
    ) -> Result<normalize::Normalized, normalize::NormalizeError> {
        dispatch!(self, v => v.normalize(raw, job_id, vendor_job_id, profile))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<VendorSettings, VendorConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        VendorSettings::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn an_unknown_vendor_fails_with_the_valid_ones() {
        let err = settings(&[("VENDOR", "google")]).unwrap_err();
        assert_eq!(err.setting, "VENDOR");
        assert!(
            err.problem.contains("sim, textract, azure, mindee"),
            "{err}"
        );
    }

    #[test]
    fn models_default_per_vendor_and_can_be_overridden() {
        let azure = settings(&[
            ("VENDOR", "azure"),
            ("VENDOR_BASE_URL", "https://x.cognitiveservices.azure.com"),
            ("VENDOR_MODELS", "invoice=custom-invoices-v3"),
        ])
        .unwrap();
        let receipt = Profile::new("receipt").unwrap();
        let invoice = Profile::new("invoice").unwrap();
        let passport = Profile::new("passport").unwrap();
        assert_eq!(
            azure.models.model_for(&receipt).unwrap(),
            "prebuilt-receipt"
        );
        assert_eq!(
            azure.models.model_for(&invoice).unwrap(),
            "custom-invoices-v3"
        );
        assert_eq!(azure.models.model_for(&passport).unwrap(), "prebuilt-read");
        let textract = settings(&[("VENDOR", "textract")]).unwrap();
        assert_eq!(textract.models.model_for(&receipt).unwrap(), "expense");
        // Mindee's model ids are the account's own.
        let err = settings(&[("VENDOR", "mindee")]).unwrap_err();
        assert_eq!(err.setting, "VENDOR_MODELS");
        let mindee = settings(&[
            ("VENDOR", "mindee"),
            ("VENDOR_MODELS", "receipt=abc,invoice=def"),
        ])
        .unwrap();
        assert!(mindee.models.model_for(&passport).is_err(), "no generic");
        assert_eq!(
            settings(&[
                ("VENDOR", "sim"),
                ("VENDOR_BASE_URL", "http://s"),
                ("VENDOR_MODELS", "receipt")
            ])
            .unwrap_err()
            .setting,
            "VENDOR_MODELS"
        );
    }

    #[test]
    fn each_setting_names_itself_when_wrong() {
        assert_eq!(
            settings(&[("VENDOR", "sim")]).unwrap_err().setting,
            "VENDOR_BASE_URL"
        );
        assert_eq!(
            settings(&[("VENDOR", "azure")]).unwrap_err().setting,
            "VENDOR_BASE_URL"
        );
        assert_eq!(
            settings(&[
                ("VENDOR_BASE_URL", "http://s"),
                ("VENDOR_TIMEOUT_MS", "soon")
            ])
            .unwrap_err()
            .setting,
            "VENDOR_TIMEOUT_MS"
        );
        assert_eq!(
            settings(&[
                ("VENDOR_BASE_URL", "http://s"),
                ("VENDOR_SIM_IDEMPOTENCY", "sometimes")
            ])
            .unwrap_err()
            .setting,
            "VENDOR_SIM_IDEMPOTENCY"
        );
        assert_eq!(
            parse_sim_idempotency(Some("expiring:2.5")).unwrap(),
            Idempotency::Native {
                remembers_for: Some(Duration::from_millis(2500))
            }
        );
    }
}
