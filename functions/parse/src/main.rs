//! `parse` Lambda: wiring only. See `lib.rs` for what it does.

// The handler future nests SDK and HTTP futures deeply enough to need more room.
#![recursion_limit = "256"]

use lambda_runtime::{service_fn, Error, LambdaEvent};
use ocrbridge::aws::AwsClients;
use ocrbridge::blob::Blob;
use ocrbridge::config::StackConfig;
use ocrbridge::ledger::Ledger;
use ocrbridge::metrics::Metrics;
use ocrbridge::queue::Queue;
use ocrbridge::retry::Budgets;
use ocrbridge::time::deadline_of;
use ocrbridge::vendors::route::Routes;
use ocrbridge::vendors::select::{AnyVendor, VendorSettings};
use ocrbridge::vendors::Vendor;
use parse::{Parse, ParseConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    ocrbridge::telemetry::init();
    let stack = StackConfig::from_env()?;
    let clients = AwsClients::from_env().await?;
    let settings = VendorSettings::from_env()?;
    let vendor = AnyVendor::build(&settings, &clients, &stack.vendor_api_key_secret)?;
    let parse = Parse {
        budgets: Budgets::for_vendor(vendor.name(), |k| std::env::var(k).ok())?,
        routes: Routes::build(settings.kind, |k| std::env::var(k).ok(), &clients)?,
        vendor,
        ledger: Ledger::new(clients.dynamodb.clone(), stack.ledger_tables()),
        blob: Blob::new(clients.s3.clone()),
        queue: Queue::new(clients.sqs.clone()),
        metrics: Metrics::stdout("parse"),
        config: ParseConfig::from_lookup(|k| std::env::var(k).ok())?,
        stack,
    };
    let parse = &parse;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| async move {
            let deadline = deadline_of(&event.context);
            Ok::<_, Error>(parse.handle_sqs(event.payload, deadline).await)
        },
    ))
    .await
}
