//! The moto server the local stack runs on.

use std::time::{Duration, Instant};

/// Where moto listens unless `OCRBRIDGE_MOTO_URL` says otherwise. Always loopback.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:5055";

/// The endpoint from `OCRBRIDGE_MOTO_URL`, or the default.
pub fn endpoint_from_env() -> String {
    std::env::var("OCRBRIDGE_MOTO_URL").unwrap_or_else(|_| DEFAULT_ENDPOINT.to_owned())
}

#[derive(Debug, thiserror::Error)]
#[error("moto server at {endpoint} is not answering GET /moto-api/ ({detail}); start it with `scripts/moto.sh start` or run `make test`, which starts and stops it")]
pub struct NotRunning {
    pub endpoint: String,
    pub detail: String,
}

/// Polls `GET /moto-api/` until it answers 200 or `timeout` passes.
pub async fn wait_healthy(endpoint: &str, timeout: Duration) -> Result<(), NotRunning> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(3))
        .build()
        .map_err(|e| NotRunning {
            endpoint: endpoint.to_owned(),
            detail: e.to_string(),
        })?;
    let url = format!("{}/moto-api/", endpoint.trim_end_matches('/'));
    let started = Instant::now();
    loop {
        let detail = match client.get(&url).send().await {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) => format!("status {}", resp.status()),
            Err(e) => e.to_string(),
        };
        if started.elapsed() >= timeout {
            return Err(NotRunning {
                endpoint: endpoint.to_owned(),
                detail,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// moto's request recorder (`reset-recording`, `start-recording`, `stop-recording`,
/// `download-recording`): every AWS request the stack receives, one JSON line each.
pub async fn recorder(endpoint: &str, path: &str) -> Result<String, String> {
    let http = reqwest::Client::new();
    let url = format!("{endpoint}/moto-api/recorder/{path}");
    let response = if path == "download-recording" {
        http.get(&url).send().await
    } else {
        http.post(&url).send().await
    }
    .map_err(|e| format!("{url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{url}: {}", response.status()));
    }
    response.text().await.map_err(|e| e.to_string())
}

/// The CPU time, in seconds, that the moto server behind `endpoint` has used so far, read from
/// `/proc` (Linux; `None` elsewhere or when no such process is found). The rate benchmarks read
/// it at both ends of their window: moto is one Python process that serves DynamoDB requests one
/// at a time (`tools/python/moto_server.py`), so about one core busy over the window says that
/// moto, not ocrbridge, set the pace.
pub fn cpu_seconds(endpoint: &str) -> Option<f64> {
    let port = endpoint.rsplit(':').next()?.trim_end_matches('/');
    let ticks_per_second = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_moto = args.iter().any(|a| a.ends_with(b"moto_server.py"));
        let on_port = args
            .windows(2)
            .any(|w| w[0] == b"-p" && w[1] == port.as_bytes());
        if !(is_moto && on_port) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
        // Fields after the command's closing parenthesis; utime and stime are the 14th and 15th
        // of the whole line, the 12th and 13th after it.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        return Some((utime + stime) / ticks_per_second);
    }
    None
}
