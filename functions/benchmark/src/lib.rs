//! `benchmark` Lambda: the scheduled quality benchmark (see `ocrbridge::quality`).
//!
//! Two schedules invoke it:
//! - `{"action": "start"}` (weekly by default, `QualityBenchmarkSchedule`): uploads the pack
//!   stored under `BENCHMARK_PACK_PREFIX` in the results bucket as benchmark traffic and records
//!   the run as running;
//! - `{"action": "score"}` (every 15 minutes): scores each running run whose documents have all
//!   settled (or that has waited `BENCHMARK_MAX_WAIT_SECS`), compares it with the pinned
//!   baseline, stores the record and the HTML report, and emits `QualityRegression`; then it
//!   reports the newest scored run's age (`BenchmarkAgeHours`) for the benchmark-missing alarm.

use std::time::Duration;

use ocrbridge::job::BenchmarkRun;
use ocrbridge::quality::runner::{RunError, Runner};
use ocrbridge::time::UnixMillis;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct BenchmarkConfig {
    /// `BENCHMARK_PACK_PREFIX`: where the pack is, in the results bucket.
    pub pack_prefix: String,
    /// `BENCHMARK_MAX_WAIT_SECS`: how long a run waits for its documents before it is scored
    /// with the unsettled ones as missing.
    pub max_wait: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}={value:?} is not valid: {why}")]
    Invalid {
        name: &'static str,
        value: String,
        why: &'static str,
    },
}

impl BenchmarkConfig {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let pack_prefix =
            get("BENCHMARK_PACK_PREFIX").unwrap_or_else(|| "benchmark-packs/default/".into());
        if pack_prefix.is_empty() || !pack_prefix.ends_with('/') {
            return Err(ConfigError::Invalid {
                name: "BENCHMARK_PACK_PREFIX",
                value: pack_prefix,
                why: "a prefix ending in '/'",
            });
        }
        let max_wait = match get("BENCHMARK_MAX_WAIT_SECS") {
            None => Duration::from_secs(6 * 3600),
            Some(v) => Duration::from_secs(v.parse().map_err(|_| ConfigError::Invalid {
                name: "BENCHMARK_MAX_WAIT_SECS",
                value: v.clone(),
                why: "whole seconds",
            })?),
        };
        Ok(BenchmarkConfig {
            pack_prefix,
            max_wait,
        })
    }

    /// The pack's name: the prefix's last segment (`benchmark-packs/default/` → `default`).
    pub fn pack_name(&self) -> &str {
        self.pack_prefix
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("pack")
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Start,
    Score,
}

pub struct Benchmark {
    pub runner: Runner,
    pub config: BenchmarkConfig,
}

impl Benchmark {
    pub async fn handle(&self, event: Value) -> Result<Value, RunError> {
        let action: Action = match serde_json::from_value(event.clone()) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "not a benchmark action ({{\"action\": \"start\"|\"score\"}}); nothing done");
                return Ok(json!({ "ignored": e.to_string() }));
            }
        };
        match action {
            Action::Start => {
                let run = BenchmarkRun::parse(&format!("bq-{}", UnixMillis::now().0))
                    .expect("bq- and digits is a valid run id");
                let started = self
                    .runner
                    .start(self.config.pack_name(), &self.config.pack_prefix, &run)
                    .await?;
                Ok(json!({ "started": started.run_id, "documents": started.documents.len() }))
            }
            Action::Score => {
                let mut scored = Vec::new();
                let mut waiting = Vec::new();
                for started in self.runner.store.running().await? {
                    match self.runner.score(&started, self.config.max_wait).await? {
                        Some((record, report)) => scored.push(json!({
                            "run": record.run_id,
                            "report": report,
                            "regressions": record.regressions(),
                        })),
                        None => waiting.push(started.run_id),
                    }
                }
                let age_hours = self.runner.report_age(UnixMillis::now()).await?;
                Ok(
                    json!({ "scored": scored, "waiting": waiting, "newest_scored_hours_ago": age_hours }),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_fails_with_the_setting_and_its_value() {
        let config = BenchmarkConfig::from_lookup(|_| None).unwrap();
        assert_eq!(config.pack_name(), "default");
        let e = BenchmarkConfig::from_lookup(|k| {
            (k == "BENCHMARK_MAX_WAIT_SECS").then(|| "soon".into())
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("BENCHMARK_MAX_WAIT_SECS") && e.contains("soon"),
            "{e}"
        );
        assert!(BenchmarkConfig::from_lookup(
            |k| (k == "BENCHMARK_PACK_PREFIX").then(|| "packs".into())
        )
        .is_err());
    }
}
