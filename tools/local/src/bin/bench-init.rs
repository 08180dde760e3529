//! Cold-start init duration of every function binary under the Runtime Interface Emulator,
//! against the floor: a trivial Rust function built the same way and measured in the same run.
//!
//! ```text
//! bench-init [--binaries DIR] [--runs N]
//!     (moto must be running; scripts/bench-init.sh starts it and builds release binaries)
//! ```
//! Each run starts a fresh emulator process (a cold container), invokes the function once with its
//! sample event from `events/`, and reads the emulator's `INIT REPORT(durationMs: …)`: from
//! starting `bootstrap` to its first request for work — what Lambda bills as Init Duration.
//!
//! Two checks that the figure is what it says:
//! - the floor is run once more with `FLOOR_INIT_SLEEP_MS=50`: its init must come out at least
//!   50 ms longer;
//! - the emulator's other figure, the `Init Duration` of its `REPORT` line (what `sam local
//!   invoke` prints), is shown beside it. It is taken before the runtime starts (the emulator's
//!   issue #106), so it stays a fraction of a millisecond even for the sleeping floor: it is not
//!   an init time, and no figure of ours is read from it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ocrbridge::aws::{local_sdk_config, AwsClients};
use ocrbridge_local::bench::{fresh_stack, Flags, INIT_MS, INIT_OVER_FLOOR};
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

/// The trivial function every figure is compared with (tools/lambda-floor).
const FLOOR: &str = "lambda-floor";
/// How long the calibration run of the floor sleeps at init.
const CALIBRATION_MS: f64 = 50.0;

/// Median, min and max of one binary's cold starts: the emulator's init report and its REPORT
/// line's `Init Duration`.
struct Measured {
    init: Vec<f64>,
    report: Vec<f64>,
}

impl Measured {
    fn median(values: &[f64]) -> f64 {
        values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
    }
}

async fn measure(
    rie: &Path,
    binary: &Path,
    env: &BTreeMap<String, String>,
    event: &serde_json::Value,
    runs: usize,
    log_dir: &Path,
) -> Result<Measured, String> {
    let mut measured = Measured {
        init: Vec::new(),
        report: Vec::new(),
    };
    for _ in 0..runs {
        let emulated = Emulated::start(rie, binary, env, log_dir)?;
        // The answer does not matter (the sample event names objects that do not exist); the
        // init report is written before the first invocation is handed over.
        let _ = emulated.invoke(event).await;
        measured.init.extend(emulated.init_durations());
        measured.report.extend(emulated.report_init_durations());
    }
    measured.init.sort_by(f64::total_cmp);
    measured.report.sort_by(f64::total_cmp);
    if measured.init.is_empty() {
        return Err(format!(
            "{}: the emulator reported no init duration",
            binary.display()
        ));
    }
    Ok(measured)
}

fn event(root: &Path, file: &str) -> Result<serde_json::Value, String> {
    serde_json::from_slice(
        &std::fs::read(root.join("events").join(file))
            .map_err(|e| format!("events/{file}: {e}"))?,
    )
    .map_err(|e| format!("events/{file}: {e}"))
}

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
        "{:<22} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8}",
        "function", "min", "median", "max", "x floor", "REPORT", "size MB"
    );
    let schedule = event(&root, "schedule.json")?;
    let floor_binary = binaries.join(FLOOR);
    let floor = measure(&rie, &floor_binary, &env, &schedule, runs, &log_dir).await?;
    let floor_median = Measured::median(&floor.init);
    let mut sleepy_env = env.clone();
    sleepy_env.insert("FLOOR_INIT_SLEEP_MS".into(), CALIBRATION_MS.to_string());
    let sleepy = measure(&rie, &floor_binary, &sleepy_env, &schedule, 1, &log_dir).await?;
    let row = |name: &str, m: &Measured, binary: &Path| {
        let size = std::fs::metadata(binary)
            .map(|m| m.len() as f64 / 1e6)
            .unwrap_or(f64::NAN);
        println!(
            "{:<22} {:>7.1} {:>7.1} {:>7.1} {:>8.2} {:>8.2} {:>8.1}",
            name,
            m.init[0],
            Measured::median(&m.init),
            m.init[m.init.len() - 1],
            Measured::median(&m.init) / floor_median,
            Measured::median(&m.report),
            size
        );
    };
    row("floor (trivial fn)", &floor, &floor_binary);
    row("floor, sleeping 50 ms", &sleepy, &floor_binary);
    let calibrated = Measured::median(&sleepy.init) - floor_median >= CALIBRATION_MS * 0.9;
    let mut medians = Vec::new();
    for (function, event_file) in FUNCTIONS {
        let binary = binaries.join(function);
        let measured = measure(
            &rie,
            &binary,
            &env,
            &event(&root, event_file)?,
            runs,
            &log_dir,
        )
        .await?;
        row(function, &measured, &binary);
        medians.push((function, Measured::median(&measured.init)));
    }
    println!(
        "(REPORT: the emulator's REPORT-line Init Duration, as sam local prints it; taken before the runtime starts)"
    );
    if !calibrated {
        return Err(format!(
            "the floor sleeping {CALIBRATION_MS} ms at init measured {:.1} ms against {floor_median:.1}: the emulator's init report is not measuring init",
            Measured::median(&sleepy.init)
        ));
    }
    for (function, median) in medians {
        println!(
            "{}",
            INIT_MS.line(&format!("{function} init, median"), median, "ms")
        );
        println!(
            "{}",
            INIT_OVER_FLOOR.line(
                &format!("{function} init over the floor"),
                median / floor_median,
                "x"
            )
        );
    }
    Ok(())
}
