//! Cold-start init duration of every function binary under the Runtime Interface Emulator.
//!
//! ```text
//! bench-init [--binaries DIR] [--runs N]
//!     (moto must be running; scripts/bench-init.sh starts it and builds release binaries)
//! ```
//! Each run starts a fresh emulator process (a cold container), invokes the function once with its
//! sample event from `events/`, and reads the emulator's `INIT REPORT(durationMs: …)`: from
//! starting `bootstrap` to its first request for work — what Lambda bills as Init Duration.

use std::path::PathBuf;

use ocrbridge::aws::{local_sdk_config, AwsClients};
use ocrbridge_local::bench::{fresh_stack, Flags, INIT_MS};
use ocrbridge_local::pipeline::{binary_environment, PipelineOptions};
use ocrbridge_local::rie::{emulator, Emulated};
use ocrbridge_local::{moto, template_path};

const FUNCTIONS: [(&str, &str); 6] = [
    ("intake", "sqs-s3-put.json"),
    ("submit", "sqs-submit.json"),
    ("webhook", "function-url-webhook.json"),
    ("parse", "sqs-result.json"),
    ("reconcile", "schedule.json"),
    ("rotate", "rotation-createSecret.json"),
];

#[tokio::main]
async fn main() -> Result<(), String> {
    let flags = Flags::from_env();
    let root = template_path().with_file_name("");
    let binaries = flags
        .get("--binaries")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/release"));
    let runs: usize = flags.parse("--runs", 5);
    let endpoint = moto::endpoint_from_env();
    let clients = AwsClients::from_sdk_config(&local_sdk_config(&endpoint));
    let stack = fresh_stack(&clients, &endpoint, "bench-init").await?;
    // The vendor is not needed to start: a closed port.
    let env = binary_environment(
        &stack,
        &endpoint,
        "http://127.0.0.1:9",
        &PipelineOptions::default(),
    )?;
    let rie = emulator(&root)?;
    let log_dir = root.join(".local/bench-init");
    std::fs::create_dir_all(&log_dir).map_err(|e| e.to_string())?;

    println!(
        "init duration under the RIE, {} ({} cold starts each), ms",
        binaries.display(),
        runs
    );
    println!(
        "{:<10} {:>7} {:>7} {:>7} {:>7}",
        "function", "min", "median", "max", "size MB"
    );
    let mut medians = Vec::new();
    for (function, event_file) in FUNCTIONS {
        let event: serde_json::Value = serde_json::from_slice(
            &std::fs::read(root.join("events").join(event_file))
                .map_err(|e| format!("events/{event_file}: {e}"))?,
        )
        .map_err(|e| format!("events/{event_file}: {e}"))?;
        let binary = binaries.join(function);
        let mut durations = Vec::new();
        for _ in 0..runs {
            let emulated = Emulated::start(&rie, &binary, &env, &log_dir)?;
            // The answer does not matter (the sample event names objects that do not exist);
            // the init report is written before the first invocation is handed over.
            let _ = emulated.invoke(&event).await;
            durations.extend(emulated.init_durations());
        }
        durations.sort_by(f64::total_cmp);
        let size = std::fs::metadata(&binary)
            .map(|m| m.len() as f64 / 1e6)
            .unwrap_or(f64::NAN);
        if durations.is_empty() {
            return Err(format!(
                "{function}: the emulator reported no init duration"
            ));
        }
        println!(
            "{:<10} {:>7.1} {:>7.1} {:>7.1} {:>7.1}",
            function,
            durations[0],
            durations[durations.len() / 2],
            durations[durations.len() - 1],
            size
        );
        medians.push((function, durations[durations.len() / 2]));
    }
    for (function, median) in medians {
        println!(
            "{}",
            INIT_MS.line(&format!("{function} init, median"), median, "ms")
        );
    }
    Ok(())
}
