//! Submissions plus polls against a vendor that counts polls against its rate limit (the Azure
//! twin limited to R requests/s, as Azure's S0 tier counts every `GET` of an operation): the
//! request rate ocrbridge achieves while it has more work than the limit allows, as a fraction
//! of R, and how many requests the vendor refused with 429.
//!
//! ```text
//! bench-poll [--docs N] [--rps R] [--processing-ms MS] [--headroom F] [--burst B] [--concurrency C]
//!            (moto must be running; scripts/bench-poll.sh)
//! ```
//! `--headroom F` admits at F·R instead of R; `--burst B` sets `VENDOR_RATE_BURST` (default 1).
//! ```text
//! ```
//! Jobs are created `Queued` with their submit messages; submit and parse drain them through the
//! local event sources, every submission and every poll taking a token from the one admission
//! bucket. Each analysis takes `--processing-ms`, so each document is polled several times
//! (Retry-After 1 s) while later documents are still being submitted. The window measured is
//! the one in which demand exceeds R: from the first request until the last submission, when
//! the queue of work starts to run dry.

use std::time::{Duration, Instant};

use ocrbridge::aws::{local_sdk_config, AwsClients};
use ocrbridge::vendors::select::VendorKind;
use ocrbridge_local::bench::{
    at_the_vendors_limit, count, fresh_stack_with, queue_jobs, sim_stats as stats, Flags, GOODPUT,
    RATE_LIMITED,
};
use ocrbridge_local::moto;
use ocrbridge_local::pipeline::{Pipeline, PipelineOptions};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), String> {
    let flags = Flags::from_env();
    let docs: usize = flags.parse("--docs", 120);
    let rps: f64 = flags.parse("--rps", 10.0);
    let processing = Duration::from_millis(flags.parse("--processing-ms", 3_000));
    let headroom: f64 = flags.parse("--headroom", 1.0);
    let endpoint = moto::endpoint_from_env();
    let clients = AwsClients::from_sdk_config(&local_sdk_config(&endpoint));
    let stack = fresh_stack_with(
        &clients,
        &endpoint,
        "bench-poll",
        &[("VendorName", "azure")],
    )
    .await?;
    let options = PipelineOptions {
        vendor: VendorKind::Azure,
        processing_delay: processing,
        vendor_rps: rps * headroom,
        concurrency: flags.parse("--concurrency", 4),
        // Reconcile's safety-net polls are not part of the measured path.
        submitted_stale: Duration::from_secs(3600),
        ..at_the_vendors_limit(&flags, rps)
    };
    let p = Pipeline::start(clients.clone(), &stack, options).await?;
    queue_jobs(&p, docs).await?;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let started = Instant::now();
    let (_, measured) = tokio::join!(p.run_until(&stop), async {
        let mut first: Option<(f64, Value)> = None;
        let mut saturated: Option<(f64, Value, Value)> = None;
        let mut moto_at_first = None;
        let mut moto_busy = None;
        let result = loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let Ok(s) = stats(&p).await else { continue };
            if first.is_none() && count(&s, &["requests"]) > 0 {
                first = Some((started.elapsed().as_secs_f64(), s.clone()));
                moto_at_first = moto::cpu_seconds(&endpoint);
            }
            if let (None, Some((from, at_start))) = (&saturated, &first) {
                if count(&s, &["accepted_submissions"]) as usize >= docs {
                    saturated = Some((
                        started.elapsed().as_secs_f64() - from,
                        at_start.clone(),
                        s.clone(),
                    ));
                    moto_busy = moto_at_first.zip(moto::cpu_seconds(&endpoint));
                }
            }
            let finished = count(&s, &["jobs_by_status", "succeeded"]) as usize >= docs;
            if finished || started.elapsed() > Duration::from_secs(900) {
                break (saturated, s, started.elapsed().as_secs_f64(), moto_busy);
            }
        };
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        result
    });
    let (saturated, end, total_secs, moto_busy) = measured;
    let (window_secs, at_window_start, at_window_end) =
        saturated.ok_or("not every document was submitted")?;
    // Cores of moto's CPU over the window: near 1, moto (one process) set the pace.
    let moto_cores =
        moto_busy.map(|(from, to)| ((to - from) / window_secs * 100.0).round() / 100.0);
    let refused = |s: &Value| {
        count(s, &["faults_injected", "rate_limited"]) + count(s, &["faults_injected", "throttle"])
    };
    // Requests the vendor served (not refused) in the saturated window.
    let served = (count(&at_window_end, &["requests"]) - refused(&at_window_end))
        - (count(&at_window_start, &["requests"]) - refused(&at_window_start));
    let achieved = served as f64 / window_secs;
    let requests = count(&end, &["requests"]);
    println!(
        "{}",
        serde_json::json!({
            "docs": docs,
            "limit_rps": rps,
            "processing_ms": processing.as_millis() as u64,
            "saturated_window_s": (window_secs * 10.0).round() / 10.0,
            "served_in_window": served,
            "achieved_rps": (achieved * 100.0).round() / 100.0,
            "achieved_over_limit": (achieved / rps * 1000.0).round() / 1000.0,
            "total_s": (total_secs * 10.0).round() / 10.0,
            "vendor_requests": requests,
            "submissions": count(&end, &["submit_requests"]),
            "status_requests": count(&end, &["status_requests"]),
            "refused_429": refused(&end),
            "refused_share": if requests > 0 { (refused(&end) as f64 / requests as f64 * 10_000.0).round() / 10_000.0 } else { 0.0 },
            "billed_documents": end["billed_documents"],
            "moto_cores_busy": moto_cores,
            "submit_429": p.submit.metrics.recorded().get("SubmitRetries[azure,429]").copied().unwrap_or(0.0),
            "admission_delayed": p.submit.metrics.recorded().get("AdmissionDelayed[azure]").copied().unwrap_or(0.0)
                + p.parse.metrics.recorded().get("AdmissionDelayed[azure]").copied().unwrap_or(0.0),
        })
    );
    println!(
        "{}",
        GOODPUT.line("goodput with polls (achieved / limit)", achieved / rps, "R")
    );
    println!("{}", RATE_LIMITED.line("429s", refused(&end) as f64, ""));
    Ok(())
}
