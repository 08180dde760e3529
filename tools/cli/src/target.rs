//! Which stack the CLI works on: a deployed one by its CloudFormation name (resources resolved
//! from the stack, the normal AWS credential chain), or the local one through the environment
//! file `ocrbridge-local provision --env-out` and the demo write (`--local`, with moto's
//! endpoint inside).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ocrbridge::aws::{local_sdk_config, AwsClients};
use ocrbridge::config::StackConfig;

use crate::error::CliError;

/// Where the local stack's environment is written by `ocrbridge local demo --keep` and
/// `ocrbridge local provision`.
pub const LOCAL_ENV_FILE: &str = ".local/stack.env";

/// The template's resources and parameters the CLI needs, by the environment variable the
/// functions know them by.
const RESOURCES: [(&str, &str); 12] = [
    ("JOBS_TABLE", "JobsTable"),
    ("DEDUPE_TABLE", "DedupeTable"),
    ("DOCUMENTS_BUCKET", "DocumentsBucket"),
    ("RESULTS_BUCKET", "ResultsBucket"),
    ("INTAKE_QUEUE_URL", "IntakeQueue"),
    ("SUBMIT_QUEUE_URL", "SubmitQueue"),
    ("RESULTS_QUEUE_URL", "ResultsQueue"),
    ("INTAKE_DLQ_URL", "IntakeDLQ"),
    ("SUBMIT_DLQ_URL", "SubmitDLQ"),
    ("RESULTS_DLQ_URL", "ResultsDLQ"),
    ("VENDOR_API_KEY_SECRET_ARN", "VendorApiKeySecret"),
    ("WEBHOOK_SECRET_ARN", "WebhookSigningSecret"),
];
const PARAMETERS: [(&str, &str); 5] = [
    ("MAX_RECEIVE_COUNT", "MaxReceiveCount"),
    ("VENDOR", "VendorName"),
    ("VENDOR_PRICES", "VendorPrices"),
    ("OCRBRIDGE_ENV", "EnvironmentName"),
    ("REVIEWER_HOURLY_RATE", "ReviewerHourlyRate"),
];

/// The stack the commands act on.
pub struct Target {
    /// The stack name, or the environment file's path.
    pub name: String,
    pub config: StackConfig,
    pub clients: AwsClients,
    /// The functions' environment as far as it is known (`VENDOR`, `VENDOR_PRICES`…).
    pub env: BTreeMap<String, String>,
}

impl Target {
    /// `stack`: a deployed stack's name; else `env_file` (or [`LOCAL_ENV_FILE`] with `local`).
    pub async fn resolve(
        stack: Option<&str>,
        env_file: Option<&Path>,
        local: bool,
    ) -> Result<Self, CliError> {
        match (stack, env_file, local) {
            (Some(name), None, false) => Self::deployed(name).await,
            (None, Some(path), _) => Self::from_env_file(path),
            (None, None, true) => Self::from_env_file(Path::new(LOCAL_ENV_FILE)),
            (None, None, false) => Err(CliError::Usage(
                "say which stack: --stack NAME (deployed), --local (the local stack) or --env-file FILE (or set OCRBRIDGE_STACK)".into(),
            )),
            _ => Err(CliError::Usage(
                "--stack, --local and --env-file are alternatives: give one".into(),
            )),
        }
    }

    fn from_env_file(path: &Path) -> Result<Self, CliError> {
        let text = std::fs::read_to_string(path).map_err(|e| CliError::UnknownStack {
            name: path.display().to_string(),
            detail: format!(
                "{e}; start the local stack with `make dev` (or `ocrbridge local demo --keep`), or write the file with `ocrbridge local provision --env-out {}`",
                path.display()
            ),
        })?;
        let env = parse_env(&text);
        let config = StackConfig::from_lookup(|k| env.get(k).cloned()).map_err(|e| {
            CliError::UnknownStack {
                name: path.display().to_string(),
                detail: e.to_string(),
            }
        })?;
        let clients = match env.get("AWS_ENDPOINT_URL") {
            Some(endpoint) => AwsClients::from_sdk_config(&local_sdk_config(endpoint)),
            None => {
                return Err(CliError::Usage(format!(
                    "{} names no AWS_ENDPOINT_URL; for a deployed stack use --stack NAME",
                    path.display()
                )))
            }
        };
        Ok(Target {
            name: env
                .get("OCRBRIDGE_STACK_NAME")
                .map_or_else(|| path.display().to_string(), |n| format!("{n} (local)")),
            config,
            clients,
            env,
        })
    }

    async fn deployed(name: &str) -> Result<Self, CliError> {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let cfn = aws_sdk_cloudformation::Client::new(&sdk);
        let unknown = |detail: String| CliError::UnknownStack {
            name: name.to_owned(),
            detail,
        };
        let resources = cfn
            .describe_stack_resources()
            .stack_name(name)
            .send()
            .await
            .map_err(|e| {
                // The service's own message ("Stack with id … does not exist"), not the dump.
                let said = e
                    .as_service_error()
                    .and_then(|s| aws_sdk_cloudformation::error::ProvideErrorMetadata::message(s))
                    .map(str::to_owned);
                match said {
                    Some(message) if message.contains("does not exist") => unknown(message),
                    Some(message) => CliError::aws(message),
                    None => CliError::aws(aws_sdk_cloudformation::error::DisplayErrorContext(&e)),
                }
            })?;
        let physical: BTreeMap<String, String> = resources
            .stack_resources()
            .iter()
            .filter_map(|r| {
                Some((
                    r.logical_resource_id()?.to_owned(),
                    r.physical_resource_id()?.to_owned(),
                ))
            })
            .collect();
        let stacks = cfn
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
            .map_err(|e| CliError::aws(aws_sdk_cloudformation::error::DisplayErrorContext(&e)))?;
        let parameters: BTreeMap<String, String> = stacks
            .stacks()
            .first()
            .map(|s| {
                s.parameters()
                    .iter()
                    .filter_map(|p| {
                        Some((
                            p.parameter_key()?.to_owned(),
                            p.parameter_value()?.to_owned(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let env = environment(&physical, &parameters).map_err(|missing| {
            unknown(format!("it has no {missing}: is it an ocrbridge stack?"))
        })?;
        let config = StackConfig::from_lookup(|k| env.get(k).cloned())
            .map_err(|e| unknown(e.to_string()))?;
        Ok(Target {
            name: name.to_owned(),
            config,
            clients: AwsClients::from_sdk_config(&sdk),
            env,
        })
    }

    pub fn ledger(&self) -> ocrbridge::ledger::Ledger {
        ocrbridge::ledger::Ledger::new(self.clients.dynamodb.clone(), self.config.ledger_tables())
    }

    pub fn queue(&self) -> ocrbridge::queue::Queue {
        ocrbridge::queue::Queue::new(self.clients.sqs.clone())
    }

    pub fn vendor(&self) -> &str {
        self.env.get("VENDOR").map_or("sim", String::as_str)
    }
}

/// The functions' environment from a stack's physical resources and parameters; `Err` names the
/// first resource it lacks.
pub fn environment(
    physical: &BTreeMap<String, String>,
    parameters: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, &'static str> {
    let mut env = BTreeMap::new();
    for (variable, logical) in RESOURCES {
        env.insert(
            variable.to_owned(),
            physical.get(logical).ok_or(logical)?.clone(),
        );
    }
    for (variable, parameter) in PARAMETERS {
        if let Some(value) = parameters.get(parameter) {
            env.insert(variable.to_owned(), value.clone());
        }
    }
    env.entry("MAX_RECEIVE_COUNT".into())
        .or_insert_with(|| "7".into());
    // The functions' `METRICS_NAMESPACE`: `${MetricsNamespace}/${EnvironmentName}`, as the
    // template writes it (its parameter defaults when the stack kept them).
    let environment = parameters
        .get("EnvironmentName")
        .map_or("dev", String::as_str);
    let base = parameters
        .get("MetricsNamespace")
        .map_or("ocrbridge", String::as_str);
    env.insert("METRICS_NAMESPACE".into(), format!("{base}/{environment}"));
    // The functions `ocrbridge audit` reads the Lambda side of.
    for (variable, logical) in ocrbridge_local::functions::NAMED {
        if let Some(name) = physical.get(logical) {
            env.insert(variable.to_owned(), name.clone());
        }
    }
    // Only the benchmark function has it; a stack deployed before it existed has none.
    if let Some(table) = physical.get("BenchmarkRunsTable") {
        env.insert("BENCHMARK_RUNS_TABLE".into(), table.clone());
    }
    Ok(env)
}

/// `export NAME=value` (or `NAME=value`) lines.
pub fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("export ").unwrap_or(l).split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect()
}

/// Where `--local` looks, made absolute for messages.
pub fn local_env_file() -> PathBuf {
    PathBuf::from(LOCAL_ENV_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployed_stacks_resources_become_the_functions_environment() {
        let physical: BTreeMap<String, String> = RESOURCES
            .iter()
            .map(|(_, logical)| ((*logical).to_owned(), format!("phys-{logical}")))
            .collect();
        let parameters = BTreeMap::from([
            ("VendorName".to_owned(), "azure".to_owned()),
            ("MaxReceiveCount".to_owned(), "9".to_owned()),
        ]);
        let env = environment(&physical, &parameters).unwrap();
        assert_eq!(env["SUBMIT_DLQ_URL"], "phys-SubmitDLQ");
        assert_eq!(env["VENDOR"], "azure");
        let config = StackConfig::from_lookup(|k| env.get(k).cloned()).unwrap();
        assert_eq!(config.max_receive_count, 9);
        assert_eq!(
            env["METRICS_NAMESPACE"], "ocrbridge/dev",
            "the template's defaults"
        );
        let named = BTreeMap::from([
            ("MetricsNamespace".to_owned(), "acme".to_owned()),
            ("EnvironmentName".to_owned(), "prod".to_owned()),
        ]);
        let env = environment(&physical, &named).unwrap();
        assert_eq!(env["METRICS_NAMESPACE"], "acme/prod");
        let mut partial = physical.clone();
        partial.remove("JobsTable");
        assert_eq!(environment(&partial, &parameters), Err("JobsTable"));
    }

    #[test]
    fn env_files_as_provision_writes_them() {
        let env =
            parse_env("export AWS_ENDPOINT_URL=http://127.0.0.1:5055\nexport JOBS_TABLE=t\n# x\n");
        assert_eq!(env["JOBS_TABLE"], "t");
        assert_eq!(env["AWS_ENDPOINT_URL"], "http://127.0.0.1:5055");
    }
}
