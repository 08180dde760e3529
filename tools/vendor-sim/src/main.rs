//! `vendor-sim`: start the simulator.
//!
//! ```text
//! vendor-sim [--listen 127.0.0.1:8090] [--api-key KEY]... [--webhook-url URL]
//!            [--webhook-secret whsec_...]... [--webhook-retries-ms 0,1000,5000]
//!            [--engine tesseract|fast] [--ocr-concurrency N] [--processing-delay-ms N]
//!            [--faults throttle=0.1,drop=0.02,...] [--seed N] [--model-update total:0.5] [--rate-limit RPS]
//!            [--idempotency native|expiring:SECS|none] [--aws-endpoint URL]
//!
//! One server speaks four APIs: its own (`/v1`), Textract's (`POST /`, AWS JSON 1.1; needs
//! `--aws-endpoint`, moto's URL, to read S3 and publish to SNS), Azure Document Intelligence's
//! (`/documentintelligence`) and Mindee v2's (`/v2`).
//! ```
//!
//! `VENDOR_SIM_API_KEY` and `VENDOR_SIM_WEBHOOK_SECRET` are read when the flags are absent, so
//! secrets need not appear in process listings. See README.md for the API.

use std::process::ExitCode;

use vendor_sim::engine::EngineKind;
use vendor_sim::faults::FaultConfig;
use vendor_sim::{start, webhooks, SimConfig};

fn parse() -> Result<SimConfig, String> {
    let mut config = SimConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => config.listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--api-key" => config.api_keys.push(value()?),
            "--webhook-url" => config.webhook_url = Some(value()?),
            "--webhook-secret" => config.webhook_secrets.push(value()?),
            "--webhook-retries-ms" => {
                config.webhook_retry_schedule = webhooks::parse_retry_schedule(&value()?)?
            }
            "--engine" => {
                config.engine = match value()?.as_str() {
                    "tesseract" => EngineKind::Tesseract,
                    "fast" => EngineKind::Fast,
                    other => return Err(format!("--engine: unknown engine {other:?}")),
                }
            }
            "--ocr-concurrency" => {
                config.ocr_concurrency = value()?
                    .parse()
                    .map_err(|e| format!("--ocr-concurrency: {e}"))?
            }
            "--processing-delay-ms" => {
                config.processing_delay = std::time::Duration::from_millis(
                    value()?
                        .parse()
                        .map_err(|e| format!("--processing-delay-ms: {e}"))?,
                )
            }
            "--faults" => {
                config.faults.rates =
                    FaultConfig::parse_rates(&value()?).map_err(|e| e.to_string())?
            }
            "--seed" => {
                config.faults.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?
            }
            "--model-update" => {
                config.faults.model_update = Some(
                    vendor_sim::model_update::ModelUpdate::parse(&value()?)
                        .map_err(|e| e.to_string())?,
                )
            }
            "--idempotency" => config.idempotency = vendor_sim::Idempotency::parse(&value()?)?,
            "--aws-endpoint" => config.aws_endpoint = Some(value()?),
            "--rate-limit" => {
                config.faults.rate_limit_rps =
                    Some(value()?.parse().map_err(|e| format!("--rate-limit: {e}"))?)
            }
            "-h" | "--help" => {
                return Err(
                    "see the usage at the top of tools/vendor-sim/src/main.rs or README.md".into(),
                )
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if config.api_keys.is_empty() {
        if let Ok(key) = std::env::var("VENDOR_SIM_API_KEY") {
            config.api_keys.push(key);
        }
    }
    if config.webhook_secrets.is_empty() {
        if let Ok(secret) = std::env::var("VENDOR_SIM_WEBHOOK_SECRET") {
            config.webhook_secrets.push(secret);
        }
    }
    if config.api_keys.is_empty() {
        return Err("give at least one --api-key (or VENDOR_SIM_API_KEY)".into());
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = match parse() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vendor-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let engine = config.engine;
    let running = match start(config).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vendor-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "vendor-sim listening on {} (engine {engine:?}); stats at {}/admin/stats",
        running.base_url(),
        running.base_url()
    );
    let _ = tokio::signal::ctrl_c().await;
    running.stop().await;
    ExitCode::SUCCESS
}
