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

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long SAM may take to read the template and listen.
const STARTUP: Duration = Duration::from_secs(120);

/// A running `sam local start-lambda` and its bridge; both stop when this is dropped.
pub struct SamLambda {
    sam: Child,
    /// Dropped after SAM stops (field order).
    _bridge: DockerBridge,
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
    }
}

/// What `scripts/NAME` printed, or why it failed (its own message goes to stderr).
pub fn script(root: &Path, name: &str) -> Result<String, String> {
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

/// Lays the function binaries in `binaries` out as `sam build` does (`scripts/sam-layout.py`).
pub fn lay_out(root: &Path, binaries: &Path) -> Result<(), String> {
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
    Ok(())
}

/// SAM's `--env-vars` document for the functions' environment `env` in a container: loopback
/// URLs become the Docker `gateway`'s, `OCRBRIDGE_LOCAL_ENDPOINT` carries `AWS_ENDPOINT_URL`
/// (what the AWS clients honour in a container, `AwsClients::from_env`), and the loopback
/// ports those URLs named, which must be bridged.
pub fn container_env_vars(
    env: &BTreeMap<String, String>,
    gateway: &str,
) -> (serde_json::Value, BTreeSet<u16>) {
    let mut ports = BTreeSet::new();
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
        variables.insert(ocrbridge::aws::LOCAL_ENDPOINT_VARIABLE.to_owned(), endpoint);
    }
    let document = serde_json::json!({
        "Parameters": variables,
        // The local stack does not emulate AWS::SecretsManager::RotationSchedule, so no secret
        // has rotation enabled: the rotate function is told not to require it.
        "RotateFunction": { "REQUIRE_ROTATION_ENABLED": "false" },
    });
    (document, ports)
}

/// `scripts/docker-bridge.py`: containers reach these loopback `ports` on the Docker
/// `gateway`. Listening once `start` returns; stopped when dropped.
pub struct DockerBridge(Child);

impl DockerBridge {
    pub fn start(root: &Path, gateway: &str, ports: &BTreeSet<u16>) -> Result<Self, String> {
        use std::io::BufRead;
        let mut child = Command::new("python3")
            .current_dir(root)
            .arg("scripts/docker-bridge.py")
            .arg(gateway)
            .args(ports.iter().map(u16::to_string))
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("scripts/docker-bridge.py: {e}"))?;
        // It says so once it listens (or exits with the reason on stderr).
        let mut line = String::new();
        if let Some(stdout) = child.stdout.as_mut() {
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        }
        let bridge = DockerBridge(child);
        if !line.starts_with("docker-bridge:") {
            return Err(format!("scripts/docker-bridge.py did not start: {line:?}"));
        }
        Ok(bridge)
    }
}

impl Drop for DockerBridge {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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
        lay_out(root, binaries)?;
        let (document, ports) = container_env_vars(env, &gateway);
        let env_vars = log_dir.join(format!("sam-start-lambda-{port}.env.json"));
        std::fs::write(&env_vars, document.to_string()).map_err(|e| e.to_string())?;
        let bridge = DockerBridge::start(root, &gateway, &ports)?;

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
            _bridge: bridge,
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
