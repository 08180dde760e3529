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
