//! Real function binaries under the AWS Lambda Runtime Interface Emulator (RIE), the one the
//! aws-sam-cli wheel ships — the `sam local invoke` path without Docker. Always on 127.0.0.1.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The emulator binary from `.venv-sam`.
pub fn emulator(root: &Path) -> Result<PathBuf, String> {
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "x86_64"
    };
    let lib = root.join(".venv-sam/lib");
    std::fs::read_dir(&lib)
        .map_err(|e| format!("{}: {e}; run scripts/setup.sh", lib.display()))?
        .filter_map(Result::ok)
        .map(|python| {
            python.path().join(format!(
                "site-packages/samcli/local/rapid/aws-lambda-rie-{arch}"
            ))
        })
        .find(|p| p.exists())
        .ok_or_else(|| {
            format!(
                "no aws-lambda-rie-{arch} under {}: run scripts/setup.sh",
                lib.display()
            )
        })
}

fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| e.to_string())
}

pub(crate) fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// One function binary running under the emulator — its own (`start`), or in a container
/// behind `sam local start-lambda` (`through_sam`).
pub struct Emulated {
    /// The emulator process, when it is ours.
    child: Option<Child>,
    /// Where an invocation is POSTed (Lambda's Invoke API path).
    url: String,
    pub name: String,
    pub log: PathBuf,
    http: reqwest::Client,
    /// The emulator runs one invocation at a time (it panics on a concurrent one, where Lambda
    /// would start another instance): invocations wait their turn.
    turn: tokio::sync::Mutex<()>,
}

impl Drop for Emulated {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Emulated {
    /// Starts `binary` under `emulator`, with `env` as the function's environment.
    pub fn start(
        emulator: &Path,
        binary: &Path,
        env: &BTreeMap<String, String>,
        log_dir: &Path,
    ) -> Result<Self, String> {
        let name = binary
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("function")
            .to_owned();
        if !binary.exists() {
            return Err(format!(
                "{} is missing: run cargo build --workspace --bins",
                binary.display()
            ));
        }
        let port = free_port()?;
        let log = log_dir.join(format!("rie-{name}-{port}.log"));
        let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(emulator)
            .arg("--runtime-interface-emulator-address")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--runtime-api-address")
            .arg(format!("127.0.0.1:{}", free_port()?))
            .arg(binary)
            .envs(env)
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", emulator.display()))?;
        Ok(Emulated {
            child: Some(child),
            url: format!("http://127.0.0.1:{port}/2015-03-31/functions/function/invocations"),
            name,
            log,
            http: http_client()?,
            turn: tokio::sync::Mutex::new(()),
        })
    }

    /// The function `logical_id` of the template behind `sam local start-lambda` at
    /// `endpoint` (SAM runs it in a container; `log` is SAM's).
    pub fn through_sam(endpoint: &str, logical_id: &str, log: &Path) -> Result<Self, String> {
        Ok(Emulated {
            child: None,
            url: format!(
                "{}/2015-03-31/functions/{logical_id}/invocations",
                endpoint.trim_end_matches('/')
            ),
            name: logical_id.to_owned(),
            log: log.to_owned(),
            http: http_client()?,
            turn: tokio::sync::Mutex::new(()),
        })
    }

    /// Invokes the function with `event` and returns its response (an error object for a
    /// failed invocation, as Lambda returns it).
    pub async fn invoke(&self, event: &Value) -> Result<Value, String> {
        let url = &self.url;
        let _turn = self.turn.lock().await;
        let started = Instant::now();
        loop {
            match self.http.post(url).json(event).send().await {
                Ok(response) => return response.json().await.map_err(|e| e.to_string()),
                Err(e) if e.is_connect() && started.elapsed() < Duration::from_secs(10) => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => return Err(format!("invoking {} failed: {e}", self.name)),
            }
        }
    }

    /// Whether the function ran at least once: the emulator reported its init, or SAM logged
    /// a successful invocation of it.
    pub fn was_invoked(&self) -> bool {
        if self.child.is_some() {
            return !self.init_durations().is_empty();
        }
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .contains(&format!(
                "functions/{}/invocations HTTP/1.1\" 200",
                self.name
            ))
    }

    /// Init durations the emulator reported (`INIT REPORT(durationMs: …)`: from starting the
    /// bootstrap to its first request for work), in milliseconds.
    pub fn init_durations(&self) -> Vec<f64> {
        self.logged_numbers("INIT REPORT(durationMs: ", ')')
    }

    /// The `Init Duration` of the emulator's `REPORT` lines — what `sam local invoke` prints.
    /// The emulator takes it before the runtime has even started (aws-lambda-runtime-interface-
    /// emulator issue #106), so it is a fraction of a millisecond whatever the function does at
    /// init; `bench-init` prints it beside [`Self::init_durations`] to show exactly that.
    pub fn report_init_durations(&self) -> Vec<f64> {
        self.logged_numbers("Init Duration: ", ' ')
    }

    /// The `Billed Duration` of every invocation the emulator reported, in milliseconds: what
    /// Lambda would bill (the duration rounded up to the millisecond), one per invocation.
    pub fn billed_durations(&self) -> Vec<f64> {
        self.logged_numbers("Billed Duration: ", ' ')
    }

    fn logged_numbers(&self, marker: &str, end: char) -> Vec<f64> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.match_indices(marker)
            .filter_map(|(i, m)| text[i + m.len()..].split(end).next()?.trim().parse().ok())
            .collect()
    }
}
