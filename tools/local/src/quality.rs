//! The quality benchmark on the local stack (`make bench-quality`, `ocrbridge-local
//! bench-quality`): the pack is synced into the results bucket as an operator would, and the
//! same [`Runner`] the scheduled `benchmark` function uses starts the run, waits while the
//! pipeline settles every document, scores it against the pinned baseline and stores it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use ocrbridge::job::BenchmarkRun;
use ocrbridge::metrics::Metrics;
use ocrbridge::quality::pack::{truth_key, Pack};
use ocrbridge::quality::runner::Runner;
use ocrbridge::quality::store::RunStore;
use ocrbridge::quality::{RegressionPolicy, RunRecord};

use crate::pipeline::Pipeline;
use crate::provision::LocalStack;

/// Where packs go in the results bucket (the template's `QualityBenchmarkPackPrefix` default
/// is `benchmark-packs/default/`).
pub fn pack_prefix(pack: &str) -> String {
    format!("benchmark-packs/{pack}/")
}

/// `aws s3 sync PACK s3://RESULTS/benchmark-packs/NAME/`: every document and its truth.
pub async fn upload_pack(p: &Pipeline, pack: &Pack, dir: &Path) -> Result<String, String> {
    let prefix = pack_prefix(&pack.name);
    for (document, path) in &pack.documents {
        let truth = dir.join(truth_key(&document.key));
        for (key, file) in [
            (document.key.clone(), path.clone()),
            (truth_key(&document.key), truth),
        ] {
            let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            p.clients
                .s3
                .put_object()
                .bucket(&p.config.results_bucket)
                .key(format!("{prefix}{key}"))
                .body(ByteStream::from(bytes))
                .send()
                .await
                .map_err(|e| aws_sdk_s3::error::DisplayErrorContext(e).to_string())?;
        }
    }
    Ok(prefix)
}

/// The runner for a local stack, as the `benchmark` function builds it from its environment.
pub fn runner(p: &Pipeline, stack: &LocalStack, vendor: &str) -> Result<Runner, String> {
    let table = stack
        .physical("BenchmarkRunsTable")
        .map(|t| t.ref_value.clone())
        .ok_or("the stack has no BenchmarkRunsTable")?;
    Ok(Runner {
        store: RunStore {
            s3: p.clients.s3.clone(),
            dynamodb: p.clients.dynamodb.clone(),
            results_bucket: p.config.results_bucket.clone(),
            table,
        },
        ledger: p.intake.ledger.clone(),
        s3: p.clients.s3.clone(),
        documents_bucket: p.config.documents_bucket.clone(),
        vendor: vendor.to_owned(),
        metrics: Metrics::memory("benchmark"),
        policy: RegressionPolicy::default(),
    })
}

/// One run: start it, run the pipeline until the runner scores it (every document settled, or
/// `timeout`). Returns the record and its report's key in the results bucket.
pub async fn run_once(
    p: &Pipeline,
    runner: &Runner,
    pack: &str,
    prefix: &str,
    run: &BenchmarkRun,
    timeout: Duration,
) -> Result<(RunRecord, String), String> {
    run_until_scored(p, runner, pack, prefix, run, timeout, |_| async { true }).await
}

/// [`run_once`], scored only once `ready` says so of the scored record too (every document
/// settled is not always the end: a second opinion decides after its parent is in review).
pub async fn run_until_scored<F, Fut>(
    p: &Pipeline,
    runner: &Runner,
    pack: &str,
    prefix: &str,
    run: &BenchmarkRun,
    timeout: Duration,
    ready: F,
) -> Result<(RunRecord, String), String>
where
    F: Fn(RunRecord) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    let started = runner
        .start(pack, prefix, run)
        .await
        .map_err(|e| e.to_string())?;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let watch = async {
        let outcome = loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            match runner.score(&started, timeout).await {
                Ok(Some(scored))
                    if std::time::Instant::now() > deadline || ready(scored.0.clone()).await =>
                {
                    break Ok(scored)
                }
                Ok(Some(_)) => continue,
                Ok(None) => continue,
                Err(e) => break Err(e.to_string()),
            }
        };
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        outcome
    };
    let ((), outcome) = tokio::join!(p.run_until(&stop), watch);
    outcome
}

/// Where a local pack's pinned baseline is kept between runs (each run is a fresh stack).
pub fn baseline_file(out: &Path, pack: &str, vendor: &str) -> PathBuf {
    out.join(format!("baseline-{pack}-{vendor}.json"))
}

/// Brings a baseline kept on disk into the stack and pins it.
pub async fn pin_from_file(runner: &Runner, file: &Path) -> Result<Option<String>, String> {
    let Ok(bytes) = std::fs::read(file) else {
        return Ok(None);
    };
    let record: RunRecord = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{}: not a benchmark run: {e}", file.display()))?;
    runner
        .store
        .import(&record)
        .await
        .map_err(|e| e.to_string())?;
    runner
        .store
        .pin_baseline(&record.run_id)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Some(record.run_id))
}
