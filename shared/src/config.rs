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
