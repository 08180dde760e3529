//! `sam local start-lambda`: SAM's local Lambda endpoint, with every function of the template
//! in Docker, as the local runner's alternative to the bare emulator (`--sam`). The event
//! sources then invoke `WebhookFunction`, `IntakeFunction`… through SAM's Invoke API, as
//! `aws lambda invoke --endpoint-url` would.
//!
//! What it needs is what `make invoke` needs (README, "Test locally with `sam local invoke`"):
//! Docker, the invoke image (`scripts/lambda-image.sh`: SAM's own, or the offline stand-in),
//! the binaries laid out as `sam build` lays them out (`scripts/sam-layout.py`), and the bridge
//! that lets containers reach moto and the simulator on the host's loopback
//! (`scripts/docker-bridge.py` on Docker's gateway).

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long SAM may take to read the template and listen.
const STARTUP: Duration = Duration::from_secs(120);

/// A running `sam local start-lambda` and its bridge; both stop when this is dropped.
pub struct SamLambda {
    sam: Child,
    bridge: Child,
    /// SAM's Invoke API, e.g. `http://127.0.0.1:3001`.
    pub endpoint: String,
    pub log: PathBuf,
}

impl Drop for SamLambda {
    fn drop(&mut self) {
        // SIGINT, so that SAM stops its containers; then make sure.
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.sam.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.sam.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.sam.kill();
        let _ = self.sam.wait();
        let _ = self.bridge.kill();
        let _ = self.bridge.wait();
    }
}

fn script(root: &Path, name: &str) -> Result<String, String> {
    let out = Command::new(root.join("scripts").join(name))
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("scripts/{name}: {e}"))?;
    if !out.status.success() {
        return Err(format!("scripts/{name} failed ({})", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn port_of(url: &str) -> Option<u16> {
    let rest = url.split("://").nth(1)?;
    let authority = rest.split('/').next()?;
    authority.rsplit(':').next()?.parse().ok()
}

impl SamLambda {
    /// Starts SAM on `port` with the functions' environment `env` (as the emulator would get
    /// it); the loopback services it names (moto, the simulator) are bridged to the containers.
    pub fn start(
        root: &Path,
        binaries: &Path,
        env: &BTreeMap<String, String>,
        port: u16,
        log_dir: &Path,
    ) -> Result<Self, String> {
        let image_args = script(root, "lambda-image.sh")?;
        let gateway = script(root, "docker-gateway.sh")?;
        let layout = Command::new("python3")
            .current_dir(root)
            .arg("scripts/sam-layout.py")
            .arg(binaries)
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("scripts/sam-layout.py: {e}"))?;
        if !layout.success() {
            return Err("scripts/sam-layout.py failed".into());
        }

        // Loopback URLs become the gateway's; the ports they name are bridged.
        let mut ports = std::collections::BTreeSet::new();
        let mut variables = serde_json::Map::new();
        for (k, v) in env {
            let value = if v.contains("://127.0.0.1:") {
                if let Some(p) = port_of(v) {
                    ports.insert(p);
                }
                v.replace("://127.0.0.1:", &format!("://{gateway}:"))
            } else {
                v.clone()
            };
            variables.insert(k.clone(), value.into());
        }
        if let Some(endpoint) = variables.get("AWS_ENDPOINT_URL").cloned() {
            // What the functions' AWS clients honour in a container (AwsClients::from_env).
            variables.insert(ocrbridge::aws::LOCAL_ENDPOINT_VARIABLE.to_owned(), endpoint);
        }
        let env_vars = log_dir.join(format!("sam-start-lambda-{port}.env.json"));
        let document = serde_json::json!({
            "Parameters": variables,
            // The local stack does not emulate AWS::SecretsManager::RotationSchedule.
            "RotateFunction": { "REQUIRE_ROTATION_ENABLED": "false" },
        });
        std::fs::write(&env_vars, document.to_string()).map_err(|e| e.to_string())?;

        let bridge_log = log_dir.join(format!("docker-bridge-{port}.log"));
        let bridge = Command::new("python3")
            .current_dir(root)
            .arg("scripts/docker-bridge.py")
            .arg(&gateway)
            .args(ports.iter().map(u16::to_string))
            .stdout(Stdio::from(
                std::fs::File::create(&bridge_log).map_err(|e| e.to_string())?,
            ))
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("scripts/docker-bridge.py: {e}"))?;

        let log = log_dir.join(format!("sam-start-lambda-{port}.log"));
        let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        let sam = Command::new(root.join(".venv-sam/bin/sam"))
            .current_dir(root)
            .args(["local", "start-lambda", "--host", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .arg("--env-vars")
            .arg(&env_vars)
            .args(["--parameter-overrides", "Architecture=x86_64"])
            .args(["--warm-containers", "LAZY"])
            .args(image_args.split_whitespace())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("SAM_CLI_TELEMETRY", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("cannot start sam local start-lambda: {e}"))?;
        let mut running = SamLambda {
            sam,
            bridge,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = running.sam.try_wait() {
                return Err(format!(
                    "sam local start-lambda exited ({status}); see {}",
                    running.log.display()
                ));
            }
            if started.elapsed() > STARTUP {
                return Err(format!(
                    "sam local start-lambda did not listen within {STARTUP:?}; see {}",
                    running.log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        running.endpoint = format!("http://127.0.0.1:{port}");
        Ok(running)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports_of_loopback_urls() {
        assert_eq!(super::port_of("http://127.0.0.1:5055"), Some(5055));
        assert_eq!(
            super::port_of("http://127.0.0.1:5055/123456789012/q"),
            Some(5055)
        );
        assert_eq!(super::port_of("http://127.0.0.1"), None);
    }
}
