//! Submit throughput against a vendor rate limit: documents submitted per second with the
//! simulator limited to R requests/s, the achieved/R ratio, and how many 429s it cost.
//!
//! ```text
//! bench-submit [--docs N] [--rps R]       (moto must be running; scripts/bench-submit.sh starts it)
//! ```
//! Jobs are created `Queued` with their submit messages, as intake leaves them, then the submit
//! function drains the queue through the local event source (two concurrent invocations, as
//! `ScalingConfig.MaximumConcurrency` allows), admitting work at R through the shared bucket.

use std::time::{Duration, Instant};

use ocrbridge::aws::{local_sdk_config, AwsClients};
use ocrbridge_local::bench::{fresh_stack, queue_jobs, Flags, GOODPUT, RATE_LIMITED};
use ocrbridge_local::moto;
use ocrbridge_local::pipeline::{Pipeline, PipelineOptions};
use vendor_sim::engine::EngineKind;
use vendor_sim::faults::FaultConfig;

#[tokio::main]
async fn main() -> Result<(), String> {
    let flags = Flags::from_env();
    let docs: usize = flags.parse("--docs", 150);
    let rps: f64 = flags.parse("--rps", 10.0);
    let endpoint = moto::endpoint_from_env();
    let clients = AwsClients::from_sdk_config(&local_sdk_config(&endpoint));
    let stack = fresh_stack(&clients, &endpoint, "bench-submit").await?;
    let options = PipelineOptions {
        engine: EngineKind::Fast,
        faults: FaultConfig {
            rate_limit_rps: Some(rps),
            rate_limit_burst: Some(rps),
            ..FaultConfig::default()
        },
        vendor_rps: rps,
        reconcile_every: Duration::from_secs(3600),
        ..PipelineOptions::default()
    };
    let p = Pipeline::start(clients.clone(), &stack, options).await?;
    // Submissions only: without webhooks nothing parses, so the vendor's quota is all submit's.
    reqwest::Client::new()
        .put(format!("{}/admin/webhook", p.sim.base_url()))
        .json(&serde_json::json!({ "url": "" }))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    queue_jobs(&p, docs).await?;
    let started = Instant::now();
    loop {
        p.pump_once().await;
        let stats: serde_json::Value = reqwest::get(format!("{}/admin/stats", p.sim.base_url()))
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        if stats["accepted_submissions"].as_u64().unwrap_or(0) as usize >= docs
            || started.elapsed() > Duration::from_secs(600)
        {
            let secs = started.elapsed().as_secs_f64();
            let achieved = docs as f64 / secs;
            println!(
                "{}",
                serde_json::json!({
                    "docs": docs,
                    "limit_rps": rps,
                    "seconds": (secs * 10.0).round() / 10.0,
                    "submitted_per_s": (achieved * 100.0).round() / 100.0,
                    "achieved_over_limit": (achieved / rps * 100.0).round() / 100.0,
                    "vendor_requests": stats["requests"],
                    "rate_limited_429": stats["faults_injected"]["rate_limited"].as_u64().unwrap_or(0),
                    "billed_documents": stats["billed_documents"],
                })
            );
            let limited = stats["faults_injected"]["rate_limited"]
                .as_u64()
                .unwrap_or(0);
            println!(
                "{}",
                GOODPUT.line("goodput (achieved / limit)", achieved / rps, "R")
            );
            println!("{}", RATE_LIMITED.line("429s", limited as f64, ""));
            return Ok(());
        }
    }
}
