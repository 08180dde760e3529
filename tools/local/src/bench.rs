//! What the benchmark binaries share: their flags, and a fresh stack from the template.

use std::str::FromStr;
use std::time::Duration;

use ocrbridge::aws::AwsClients;
use ocrbridge::time::UnixMillis;

use crate::provision::{provision, LocalStack, ProvisionOptions};
use crate::template::Template;
use crate::{moto, template_path};

/// `--name value` flags.
pub struct Flags(Vec<String>);

impl Flags {
    pub fn from_env() -> Self {
        Flags(std::env::args().skip(1).collect())
    }

    /// The first argument, for binaries with subcommands.
    pub fn command(&self) -> Option<&str> {
        self.0.first().map(String::as_str)
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.0.get(i + 1))
            .cloned()
    }

    /// The flag parsed, or `default` when absent or unparsable.
    pub fn parse<T: FromStr>(&self, name: &str, default: T) -> T {
        self.get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }
}

/// Waits for moto at `endpoint`, then provisions the template under `<prefix>-<unix secs>`.
pub async fn fresh_stack(
    clients: &AwsClients,
    endpoint: &str,
    prefix: &str,
) -> Result<LocalStack, String> {
    fresh_stack_with(clients, endpoint, prefix, &[]).await
}

/// As [`fresh_stack`], with template parameters (`VendorName`…).
pub async fn fresh_stack_with(
    clients: &AwsClients,
    endpoint: &str,
    prefix: &str,
    parameters: &[(&str, &str)],
) -> Result<LocalStack, String> {
    moto::wait_healthy(endpoint, Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())?;
    let template = Template::load(&template_path()).map_err(|e| e.to_string())?;
    provision(
        clients,
        &template,
        &ProvisionOptions {
            stack_name: format!("{prefix}-{}", UnixMillis::now().0 / 1000),
            parameters: parameters
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| e.to_string())
}

/// Puts `docs` small documents in the bucket and leaves each as intake would: a `Queued` job
/// with its submit message. Returns their ids.
pub async fn queue_jobs(
    p: &crate::pipeline::Pipeline,
    docs: usize,
) -> Result<Vec<ocrbridge::job::JobId>, String> {
    use ocrbridge::job::{ContentHash, DocumentKey, JobState, NewJob, Profile, SourceObject};
    use ocrbridge::ledger::Change;
    use ocrbridge::queue::SubmitRequest;
    let config = &p.config;
    let mut ids = Vec::new();
    for i in 0..docs {
        let bytes = format!("bench document {i} {}", UnixMillis::now().0).into_bytes();
        let key = format!("receipts/bench/{i}.png");
        p.clients
            .s3
            .put_object()
            .bucket(&config.documents_bucket)
            .key(&key)
            .body(bytes.clone().into())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let profile = Profile::new("receipt").map_err(|e| e.to_string())?;
        let content = ContentHash::of(&bytes);
        let new = NewJob {
            channel: None,
            benchmark_run: None,
            key: DocumentKey::new(&content, &profile),
            profile,
            content,
            source: SourceObject {
                bucket: config.documents_bucket.clone(),
                key,
                version_id: None,
            },
            inspection: Default::default(),
        };
        let ledger = &p.intake.ledger;
        let job = ledger
            .create_job(&new, UnixMillis::now())
            .await
            .map_err(|e| e.to_string())?
            .job()
            .clone();
        let job = ledger
            .transition(&job, JobState::Queued, Change::none(), UnixMillis::now())
            .await
            .map_err(|e| e.to_string())?;
        p.submit
            .queue
            .send_json(
                &config.submit_queue_url,
                &SubmitRequest {
                    job_id: job.id.clone(),
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        ids.push(job.id);
    }
    Ok(ids)
}
