//! Structured JSON logs via `tracing`, as CloudWatch Logs Insights expects them.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber. The level comes from `RUST_LOG` (default `info`). Safe to call
/// more than once; later calls do nothing.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        // Lambda adds its own timestamp and request id to every line.
        .without_time()
        .with_target(false)
        .try_init();
}
