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
//!
//! A second figure is ours: from starting the binary to its first connection to the runtime
//! API (a listener of this benchmark's), `exec→API`, the median of the same number of starts.
//! It checks the emulator's figure from outside, and the sleeping floor checks it too.

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

/// From starting `binary` to its first connection to the runtime API, `runs` times, sorted, in
/// milliseconds: the API is a listener of ours, and the process is stopped once it connects.
fn exec_to_api(
    binary: &Path,
    env: &BTreeMap<String, String>,
    runs: usize,
) -> Result<Vec<f64>, String> {
    let mut out = Vec::new();
    for _ in 0..runs {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let started = std::time::Instant::now();
        let mut child = std::process::Command::new(binary)
            .envs(env)
            // What Lambda (and the emulator) sets for every function; lambda_runtime needs it.
            .env("AWS_LAMBDA_FUNCTION_NAME", "bench-init")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench-init")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench-init")
            .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", binary.display()))?;
        // Polled, so that a binary that exits (or hangs) before it connects is reported, not
        // waited for.
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let connected = loop {
            match listener.accept() {
                Ok(_) => break Ok(started.elapsed().as_secs_f64() * 1000.0),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if let Ok(Some(status)) = child.try_wait() {
                        break Err(format!("exited ({status}) before it connected"));
                    }
                    if started.elapsed() > std::time::Duration::from_secs(10) {
                        break Err("no connection in 10 s".to_owned());
                    }
                    std::thread::sleep(std::time::Duration::from_micros(50));
                }
                Err(e) => break Err(e.to_string()),
            }
        };
        let _ = child.kill();
        let _ = child.wait();
        out.push(connected.map_err(|e| format!("{}: {e}", binary.display()))?);
    }
    out.sort_by(f64::total_cmp);
    Ok(out)
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
        "{:<22} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8} {:>9}",
        "function", "min", "median", "max", "x floor", "REPORT", "size MB", "exec→API"
    );
    let schedule = event(&root, "schedule.json")?;
    let floor_binary = binaries.join(FLOOR);
    let floor = measure(&rie, &floor_binary, &env, &schedule, runs, &log_dir).await?;
    let floor_median = Measured::median(&floor.init);
    let mut sleepy_env = env.clone();
    sleepy_env.insert("FLOOR_INIT_SLEEP_MS".into(), CALIBRATION_MS.to_string());
    let sleepy = measure(&rie, &floor_binary, &sleepy_env, &schedule, 1, &log_dir).await?;
    // The emulator's figures, and our own, exec→API, with `env`.
    let row = |name: &str,
               m: &Measured,
               binary: &Path,
               env: &BTreeMap<String, String>|
     -> Result<f64, String> {
        let size = std::fs::metadata(binary)
            .map(|m| m.len() as f64 / 1e6)
            .unwrap_or(f64::NAN);
        let own = Measured::median(&exec_to_api(binary, env, runs)?);
        println!(
            "{:<22} {:>7.1} {:>7.1} {:>7.1} {:>8.2} {:>8.2} {:>8.1} {:>9.1}",
            name,
            m.init[0],
            Measured::median(&m.init),
            m.init[m.init.len() - 1],
            Measured::median(&m.init) / floor_median,
            Measured::median(&m.report),
            size,
            own
        );
        Ok(own)
    };
    let floor_own = row("floor (trivial fn)", &floor, &floor_binary, &env)?;
    let sleepy_own = row("floor, sleeping 50 ms", &sleepy, &floor_binary, &sleepy_env)?;
    let calibrated = Measured::median(&sleepy.init) - floor_median >= CALIBRATION_MS * 0.9
        && sleepy_own - floor_own >= CALIBRATION_MS * 0.9;
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
        row(function, &measured, &binary, &env)?;
        medians.push((function, Measured::median(&measured.init)));
    }
    println!(
        "(REPORT: the emulator's REPORT-line Init Duration, as sam local prints it; taken before the runtime starts)"
    );
    println!(
        "(exec→API: from starting the binary to its first connection to the runtime API, a listener of ours, median)"
    );
    if !calibrated {
        return Err(format!(
            "the floor sleeping {CALIBRATION_MS} ms at init measured {:.1} ms against {floor_median:.1} (the emulator's init report) and {sleepy_own:.1} against {floor_own:.1} (exec→API): a figure that does not grow by the sleep is not measuring init",
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
