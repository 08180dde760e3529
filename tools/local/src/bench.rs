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
            prepared: None,
            prep_compute: None,
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

/// A benchmark figure's goal (issue #33), printed beside today's figure so that a regression is
/// seen in `make bench`'s output, not only in a note.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    AtLeast(f64),
    AtMost(f64),
}

impl Goal {
    pub fn met(self, today: f64) -> bool {
        match self {
            Goal::AtLeast(goal) => today >= goal,
            Goal::AtMost(goal) => today <= goal,
        }
    }

    /// `  <figure>  <today><unit>  goal ≥ <goal><unit>  met` (or `MISSED`).
    pub fn line(self, figure: &str, today: f64, unit: &str) -> String {
        let (sign, goal) = match self {
            Goal::AtLeast(goal) => ("≥", goal),
            Goal::AtMost(goal) => ("≤", goal),
        };
        let verdict = if self.met(today) { "met" } else { "MISSED" };
        format!("  {figure:<40} {today:>8.2}{unit:<3} goal {sign} {goal}{unit:<3} {verdict}")
    }
}

/// Submit's (and submit with polls') goodput: what it achieves over the vendor's limit R.
pub const GOODPUT: Goal = Goal::AtLeast(0.95);
/// 429s the vendor answered while the limit was used.
pub const RATE_LIMITED: Goal = Goal::AtMost(0.0);
/// A function's cold init under the emulator, release, in ms (a trivial Rust function measures
/// about 4 here).
pub const INIT_MS: Goal = Goal::AtMost(8.0);
/// The same over the trivial function's init measured in the same run: 8 ms over the floor of
/// about 4 the goal was set against. The ratio is what travels between machines.
pub const INIT_OVER_FLOOR: Goal = Goal::AtMost(2.0);
/// Billable AWS requests per document on the happy path.
pub const BILLABLE_REQUESTS: Goal = Goal::AtMost(18.0);
/// The pipeline's overhead beyond the vendor's own time, p95, in ms.
pub const OVERHEAD_P95_MS: Goal = Goal::AtMost(250.0);

/// What both rate-limit benchmarks start from: the fast engine, the simulator limited to `rps`
/// requests a second (a bucket of one second's worth), our admission at `rps`, reconcile out of
/// the measured path, and the flags `--burst` (`VENDOR_RATE_BURST`), `--submit-concurrency` and
/// `--parse-concurrency` (`MESSAGE_CONCURRENCY`).
pub fn at_the_vendors_limit(flags: &Flags, rps: f64) -> crate::pipeline::PipelineOptions {
    fn number<T: FromStr>(flags: &Flags, name: &str) -> Option<T> {
        flags.get(name).and_then(|v| v.parse().ok())
    }
    crate::pipeline::PipelineOptions {
        engine: vendor_sim::engine::EngineKind::Fast,
        faults: vendor_sim::faults::FaultConfig {
            rate_limit_rps: Some(rps),
            rate_limit_burst: Some(rps),
            ..vendor_sim::faults::FaultConfig::default()
        },
        vendor_rps: rps,
        vendor_burst: number(flags, "--burst"),
        submit_concurrency: number(flags, "--submit-concurrency"),
        parse_concurrency: number(flags, "--parse-concurrency"),
        reconcile_every: Duration::from_secs(3600),
        ..crate::pipeline::PipelineOptions::default()
    }
}

/// The simulator's `/admin/stats` (requests, submissions, faults injected, billing).
pub async fn sim_stats(p: &crate::pipeline::Pipeline) -> Result<serde_json::Value, String> {
    reqwest::get(format!("{}/admin/stats", p.sim.base_url()))
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())
}

/// A counter in the simulator's stats, by its path (0 when absent).
pub fn count(stats: &serde_json::Value, path: &[&str]) -> u64 {
    path.iter().fold(stats, |v, k| &v[*k]).as_u64().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_is_held_to_its_goal_in_the_right_direction() {
        assert!(GOODPUT.met(0.95) && !GOODPUT.met(0.79));
        assert!(INIT_MS.met(7.9) && !INIT_MS.met(11.8));
        let line = BILLABLE_REQUESTS.line("billable AWS requests per document", 25.1, "");
        assert!(line.ends_with("MISSED"), "{line}");
        assert!(line.contains("goal ≤ 18"), "{line}");
        assert!(RATE_LIMITED.line("429s", 0.0, "").ends_with("met"));
    }
}
