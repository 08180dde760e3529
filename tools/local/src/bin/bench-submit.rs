//! Submit throughput against a vendor rate limit: documents submitted per second with the
//! simulator limited to R requests/s, the achieved/R ratio, and how many 429s it cost.
//!
//! ```text
//! bench-submit [--docs N] [--rps R] [--burst B]
//!     (moto must be running; scripts/bench-submit.sh starts it)
//! ```
//! Jobs are created `Queued` with their submit messages, as intake leaves them, then the submit
//! function drains the queue through the local event source (its pollers each receiving,
//! invoking and acknowledging on their own, as many as `ScalingConfig.MaximumConcurrency`
//! allows), admitting work at R through the shared bucket. `--burst B` sets `VENDOR_RATE_BURST`.
//!
//! The window measured is from the vendor's first request to its last accepted submission: the
//! time the limit could be used. (Until #33 the clock started before the first receive and the
//! event source ran in rounds that waited for their slowest invocation, which charged the
//! harness's own gaps to submit.)

use std::time::{Duration, Instant};

use ocrbridge::aws::{local_sdk_config, AwsClients};
use ocrbridge::vendors::Vendor;
use ocrbridge_local::bench::{
    at_the_vendors_limit, count, fresh_stack, queue_jobs, sim_stats as stats, Flags, GOODPUT,
    RATE_LIMITED,
};
use ocrbridge_local::moto;
use ocrbridge_local::pipeline::Pipeline;

#[tokio::main]
async fn main() -> Result<(), String> {
    let flags = Flags::from_env();
    let docs: usize = flags.parse("--docs", 150);
    let rps: f64 = flags.parse("--rps", 10.0);
    let endpoint = moto::endpoint_from_env();
    let clients = AwsClients::from_sdk_config(&local_sdk_config(&endpoint));
    let stack = fresh_stack(&clients, &endpoint, "bench-submit").await?;
    let options = at_the_vendors_limit(&flags, rps);
    let burst = options.vendor_burst;
    let p = Pipeline::start(clients.clone(), &stack, options).await?;
    // Submissions only: without webhooks nothing parses, so the vendor's quota is all submit's.
    reqwest::Client::new()
        .put(format!("{}/admin/webhook", p.sim.base_url()))
        .json(&serde_json::json!({ "url": "" }))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    queue_jobs(&p, docs).await?;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let started = Instant::now();
    let (_, measured) = tokio::join!(p.run_until(&stop), async {
        let mut first: Option<f64> = None;
        let mut moto_at_first = None;
        let result = loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let Ok(s) = stats(&p).await else { continue };
            if first.is_none() && count(&s, &["requests"]) > 0 {
                first = Some(started.elapsed().as_secs_f64());
                moto_at_first = moto::cpu_seconds(&endpoint);
            }
            let done = count(&s, &["accepted_submissions"]) as usize >= docs;
            if done || started.elapsed() > Duration::from_secs(600) {
                let moto_busy = moto_at_first.zip(moto::cpu_seconds(&endpoint));
                break (first, s, started.elapsed().as_secs_f64(), moto_busy);
            }
        };
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        result
    });
    let (first, stats, ended, moto_busy) = measured;
    let secs = ended - first.ok_or("the vendor saw no request")?;
    // Cores of moto's CPU over the window: near 1, moto (one process) set the pace.
    let moto_cores = moto_busy.map(|(from, to)| ((to - from) / secs * 100.0).round() / 100.0);
    let accepted = count(&stats, &["accepted_submissions"]) as f64;
    // The first submission is admitted at the window's start: N submissions span N - 1 gaps.
    let achieved = (accepted - 1.0).max(0.0) / secs;
    let limited = count(&stats, &["faults_injected", "rate_limited"]);
    println!(
        "{}",
        serde_json::json!({
            "docs": docs,
            "limit_rps": rps,
            "burst": burst,
            "seconds": (secs * 100.0).round() / 100.0,
            "submitted_per_s": (achieved * 100.0).round() / 100.0,
            "achieved_over_limit": (achieved / rps * 1000.0).round() / 1000.0,
            "vendor_requests": stats["requests"],
            "rate_limited_429": limited,
            "billed_documents": stats["billed_documents"],
            "moto_cores_busy": moto_cores,
            "admission_delayed": p.submit.metrics.recorded().get(&format!("AdmissionDelayed[{}]", p.submit.vendor.name())).copied().unwrap_or(0.0),
        })
    );
    println!(
        "{}",
        GOODPUT.line("goodput (achieved / limit)", achieved / rps, "R")
    );
    println!("{}", RATE_LIMITED.line("429s", limited as f64, ""));
    Ok(())
}
