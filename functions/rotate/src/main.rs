//! `rotate` Lambda: wiring only. See `lib.rs` for what it does.

// The handler future nests SDK and HTTP futures deeply enough to need more room.
#![recursion_limit = "256"]

use lambda_runtime::{service_fn, Error, LambdaEvent};
use ocrbridge::aws::AwsClients;
use ocrbridge::config::StackConfig;
use ocrbridge::metrics::Metrics;
use ocrbridge::vendors::select::{AnyVendor, VendorSettings};
use rotate::{Invocation, Rotate};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ocrbridge::telemetry::init();
    let stack = StackConfig::from_env()?;
    let clients = AwsClients::from_env().await?;
    let rotate = Rotate {
        secrets: clients.secrets(),
        registry: AnyVendor::build(
            &VendorSettings::from_env()?,
            &clients,
            &stack.vendor_api_key_secret,
        )?,
        metrics: Metrics::stdout("rotate"),
        require_rotation_enabled: std::env::var("REQUIRE_ROTATION_ENABLED")
            .map_or(true, |v| v != "false"),
        stack,
    };
    let rotate = &rotate;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        match Invocation::from_json(&event.payload)? {
            Invocation::Rotation(rotation) => rotate.handle(&rotation).await?,
            Invocation::KeyCheck => {
                rotate
                    .check_key(ocrbridge::time::UnixMillis::now().0)
                    .await?;
            }
        }
        Ok::<_, Error>(Value::Null)
    }))
    .await
}
