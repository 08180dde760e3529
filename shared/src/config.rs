//! Configuration shared by every function, read once from the environment.
//!
//! The variable names are the contract with `template.yaml`: its `Globals.Function.Environment`
//! sets each of them from the resource it names, and the local stack resolves the same block
//! against the resources it provisioned. A test checks that the two lists agree.

/// The AWS resources every function can reach, by physical name, URL or ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackConfig {
    /// `JOBS_TABLE`: the job ledger table.
    pub jobs_table: String,
    /// `DEDUPE_TABLE`: claim-once markers (webhook event ids), with TTL.
    pub dedupe_table: String,
    /// `DOCUMENTS_BUCKET`: uploads; every object created here notifies intake.
    pub documents_bucket: String,
    /// `RESULTS_BUCKET`: raw vendor payloads (`raw/`) and normalized results (`results/`).
    pub results_bucket: String,
    /// `INTAKE_QUEUE_URL`: S3 `ObjectCreated` notifications.
    pub intake_queue_url: String,
    /// `SUBMIT_QUEUE_URL`: one message per job to submit to the vendor.
    pub submit_queue_url: String,
    /// `RESULTS_QUEUE_URL`: one message per vendor status change to fetch and parse.
    pub results_queue_url: String,
    /// `INTAKE_DLQ_URL`, `SUBMIT_DLQ_URL`, `RESULTS_DLQ_URL`: where poison messages go, with their
    /// reason, instead of cycling until the redrive policy moves them without one.
    pub intake_dlq_url: String,
    pub submit_dlq_url: String,
    pub results_dlq_url: String,
    /// `MAX_RECEIVE_COUNT`: the queues' redrive `maxReceiveCount`; on the last allowed receive a
    /// still-failing message is dead-lettered by the handler, with its reason.
    pub max_receive_count: u32,
    /// `VENDOR_API_KEY_SECRET_ARN`: the vendor API key, in Secrets Manager.
    pub vendor_api_key_secret: String,
    /// `WEBHOOK_SECRET_ARN`: the webhook signing secret(s), in Secrets Manager.
    pub webhook_secret: String,
}

/// A required variable is missing or empty.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {0} is not set or invalid; it comes from template.yaml (Globals.Function.Environment) or the local stack")]
pub struct MissingVariable(pub &'static str);

impl StackConfig {
    /// Every variable this struct reads, in declaration order.
    pub const VARIABLES: [&'static str; 13] = [
        "JOBS_TABLE",
        "DEDUPE_TABLE",
        "DOCUMENTS_BUCKET",
        "RESULTS_BUCKET",
        "INTAKE_QUEUE_URL",
        "SUBMIT_QUEUE_URL",
        "RESULTS_QUEUE_URL",
        "INTAKE_DLQ_URL",
        "SUBMIT_DLQ_URL",
        "RESULTS_DLQ_URL",
        "MAX_RECEIVE_COUNT",
        "VENDOR_API_KEY_SECRET_ARN",
        "WEBHOOK_SECRET_ARN",
    ];

    pub fn from_env() -> Result<Self, MissingVariable> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so tests and the local runner can supply a map
    /// instead of mutating the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, MissingVariable> {
        let get = |name: &'static str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or(MissingVariable(name))
        };
        let [jobs, dedupe, bucket, results_bucket, intake, submit, results, intake_dlq, submit_dlq, results_dlq, max_receive, api_key, webhook] =
            Self::VARIABLES;
        Ok(StackConfig {
            jobs_table: get(jobs)?,
            dedupe_table: get(dedupe)?,
            documents_bucket: get(bucket)?,
            results_bucket: get(results_bucket)?,
            intake_queue_url: get(intake)?,
            submit_queue_url: get(submit)?,
            results_queue_url: get(results)?,
            intake_dlq_url: get(intake_dlq)?,
            submit_dlq_url: get(submit_dlq)?,
            results_dlq_url: get(results_dlq)?,
            max_receive_count: get(max_receive)?
                .parse()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or(MissingVariable(max_receive))?,
            vendor_api_key_secret: get(api_key)?,
            webhook_secret: get(webhook)?,
        })
    }

    pub fn ledger_tables(&self) -> crate::ledger::LedgerTables {
        crate::ledger::LedgerTables {
            jobs: self.jobs_table.clone(),
            dedupe: self.dedupe_table.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn reads_every_variable_and_names_the_missing_one() {
        let mut env: HashMap<&str, String> = StackConfig::VARIABLES
            .iter()
            .map(|v| (*v, format!("value-of-{v}")))
            .collect();
        env.insert("MAX_RECEIVE_COUNT", "5".into());
        let config = StackConfig::from_lookup(|k| env.get(k).cloned()).unwrap();
        assert_eq!(config.jobs_table, "value-of-JOBS_TABLE");
        assert_eq!(config.webhook_secret, "value-of-WEBHOOK_SECRET_ARN");

        assert_eq!(config.max_receive_count, 5);
        env.insert("MAX_RECEIVE_COUNT", "0".into());
        assert_eq!(
            StackConfig::from_lookup(|k| env.get(k).cloned())
                .unwrap_err()
                .0,
            "MAX_RECEIVE_COUNT"
        );
        env.insert("MAX_RECEIVE_COUNT", "5".into());
        env.insert("SUBMIT_QUEUE_URL", "  ".into());
        let err = StackConfig::from_lookup(|k| env.get(k).cloned()).unwrap_err();
        assert_eq!(err.0, "SUBMIT_QUEUE_URL");
    }
}

/// A setting that is present but wrong: its name, the value, and what it should be. Every
/// function reads its settings once at init and stops there with this, rather than running on a
/// default the operator did not choose.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting {name}={value:?}: expected {expected}")]
pub struct SettingError {
    pub name: &'static str,
    pub value: String,
    pub expected: String,
}

/// Reads `name`: absent or empty → `default`; present → parsed and checked by `valid`, or a
/// [`SettingError`] that says what was `expected`.
pub fn setting<T: std::str::FromStr>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    expected: &str,
    valid: impl Fn(&T) -> bool,
) -> Result<T, SettingError> {
    match lookup(name).filter(|v| !v.trim().is_empty()) {
        None => Ok(default),
        Some(value) => value
            .trim()
            .parse::<T>()
            .ok()
            .filter(|v| valid(v))
            .ok_or_else(|| SettingError {
                name,
                value,
                expected: expected.to_owned(),
            }),
    }
}

/// A whole number of seconds (or milliseconds, by `unit`), as a duration.
pub fn duration_setting(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: std::time::Duration,
    unit: std::time::Duration,
) -> Result<std::time::Duration, SettingError> {
    let default_units = (default.as_secs_f64() / unit.as_secs_f64()).round() as u64;
    setting(lookup, name, default_units, "a whole number", |_| true)
        .map(|n| unit.saturating_mul(n.min(u32::MAX as u64) as u32))
}

/// `on` or `off`: a feature a stack can turn off (`BREAKER`, `TAG_SOURCE_OBJECTS`); absent or
/// empty → `default`.
pub fn switch_setting(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: bool,
) -> Result<bool, SettingError> {
    let default = if default { "on" } else { "off" };
    let value: String = setting(lookup, name, default.to_owned(), "on or off", |v| {
        v == "on" || v == "off"
    })?;
    Ok(value == "on")
}

#[cfg(test)]
mod setting_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bad_setting_names_itself_and_its_value() {
        let lookup = |k: &str| (k == "X").then(|| "ten".to_owned());
        let e = setting(&lookup, "X", 1u32, "a whole number", |_| true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid setting X=\"ten\": expected a whole number"
        );
        assert_eq!(setting(&lookup, "Y", 7u32, "", |_| true), Ok(7));
        let negative = |k: &str| (k == "Z").then(|| "-2".to_owned());
        assert!(setting(&negative, "Z", 1.0f64, "a positive number", |v| *v > 0.0).is_err());
        let off = |k: &str| (k == "F").then(|| " off ".to_owned());
        assert_eq!(switch_setting(&off, "F", true), Ok(false));
        assert_eq!(switch_setting(&off, "G", true), Ok(true));
        let maybe = |k: &str| (k == "F").then(|| "maybe".to_owned());
        assert_eq!(
            switch_setting(&maybe, "F", true).unwrap_err().to_string(),
            "invalid setting F=\"maybe\": expected on or off"
        );
        let secs = |k: &str| (k == "S").then(|| "30".to_owned());
        assert_eq!(
            duration_setting(&secs, "S", Duration::ZERO, Duration::from_secs(1)),
            Ok(Duration::from_secs(30))
        );
    }
}

/// `PROFILE_PREFIXES`: which profile an upload's key prefix selects, e.g.
/// `receipts/=receipt,invoices/=invoice,ids/=id` (the default). Intake reads a key's profile from it;
/// the URL endpoint writes a fetched document under its profile's prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfilePrefixes(pub Vec<(String, crate::job::Profile)>);

impl Default for ProfilePrefixes {
    fn default() -> Self {
        let profile = |p: &str| crate::job::Profile::new(p).expect("static profile name");
        ProfilePrefixes(vec![
            ("receipts/".into(), profile("receipt")),
            ("invoices/".into(), profile("invoice")),
            ("ids/".into(), profile("id")),
        ])
    }
}

impl ProfilePrefixes {
    /// Parses `PREFIX=PROFILE,…`; the error says which pair is wrong.
    pub fn parse(spec: &str) -> Result<Self, String> {
        spec.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (prefix, profile) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("{pair:?} is not PREFIX=PROFILE"))?;
                Ok((
                    prefix.to_owned(),
                    crate::job::Profile::new(profile).map_err(|e| e.to_string())?,
                ))
            })
            .collect::<Result<_, String>>()
            .map(ProfilePrefixes)
    }

    /// `PROFILE_PREFIXES` from the environment (`lookup`), the default when unset; the error
    /// is [`Self::parse`]'s.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        lookup("PROFILE_PREFIXES").map_or_else(|| Ok(Self::default()), |spec| Self::parse(&spec))
    }

    /// The profile of `key`: the longest matching prefix's.
    pub fn profile_for(&self, key: &str) -> Option<&crate::job::Profile> {
        self.0
            .iter()
            .filter(|(prefix, _)| key.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, profile)| profile)
    }

    /// The prefix a document of `profile` is written under: the shortest one that selects it.
    pub fn prefix_for(&self, profile: &str) -> Option<&str> {
        self.0
            .iter()
            .filter(|(_, p)| p.as_str() == profile)
            .map(|(prefix, _)| prefix.as_str())
            .filter(|prefix| self.profile_for(prefix).map(|p| p.as_str()) == Some(profile))
            .min_by_key(|prefix| prefix.len())
    }
}
