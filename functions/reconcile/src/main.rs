//! `reconcile` Lambda: wiring only. See `lib.rs` for what it does.

// The handler future nests SDK and HTTP futures deeply enough to need more room.
#![recursion_limit = "256"]

use lambda_runtime::{service_fn, Error, LambdaEvent};
use ocrbridge::aws::AwsClients;
use ocrbridge::config::StackConfig;
use ocrbridge::ledger::Ledger;
use ocrbridge::metrics::Metrics;
use ocrbridge::queue::Queue;
use ocrbridge::time::UnixMillis;
use ocrbridge::vendors::route::Routes;
use ocrbridge::vendors::select::{AnyVendor, VendorSettings};
use reconcile::{Reconcile, ReconcileConfig};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ocrbridge::telemetry::init();
    let stack = StackConfig::from_env()?;
    let clients = AwsClients::from_env().await?;
    let settings = VendorSettings::from_env()?;
    let reconcile = Reconcile {
        vendor: AnyVendor::build(&settings, &clients, &stack.vendor_api_key_secret)?,
        routes: Routes::build(settings.kind, |k| std::env::var(k).ok(), &clients)?,
        ledger: Ledger::new(clients.dynamodb.clone(), stack.ledger_tables()),
        queue: Queue::new(clients.sqs.clone()),
        metrics: Metrics::stdout("reconcile"),
        config: ReconcileConfig::from_lookup(|k| std::env::var(k).ok())?,
        stack,
    };
    let reconcile = &reconcile;
    // The schedule's event carries nothing we need; any payload runs one sweep.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = ocrbridge::time::deadline_of(&event.context);
        Ok::<_, Error>(serde_json::to_value(
            reconcile
                .run_before(UnixMillis::now(), Some(deadline))
                .await,
        )?)
    }))
    .await
}
