//! The floor for cold-start init: a Rust Lambda function that does nothing but start the runtime
//! and echo its event. `bench-init` builds it with the same profile as the functions and measures
//! it in the same run, so each function's init is reported as a multiple of what any Rust
//! function pays here (process start, the dynamic loader, tokio, the runtime client).
//!
//! `FLOOR_INIT_SLEEP_MS` delays the start by that long. `bench-init` runs it once so: the
//! emulator must report an init at least that long, or it is not measuring init at all.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    if let Some(ms) = std::env::var("FLOOR_INIT_SLEEP_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(event.payload)
    }))
    .await
}
