//! `intake` Lambda: wiring only. See `lib.rs` for what it does.

// The handler future nests S3, DynamoDB and SQS futures deeply enough to need more room.
#![recursion_limit = "256"]

use intake::{Intake, IntakeConfig};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use ocrbridge::aws::AwsClients;
use ocrbridge::blob::Blob;
use ocrbridge::config::StackConfig;
use ocrbridge::ledger::Ledger;
use ocrbridge::metrics::Metrics;
use ocrbridge::queue::Queue;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ocrbridge::telemetry::init();
    let stack = StackConfig::from_env()?;
    let config = IntakeConfig::from_env()?;
    let clients = AwsClients::from_env().await?;
    let intake = Intake {
        blob: Blob::new(clients.s3.clone()),
        queue: Queue::new(clients.sqs.clone()),
        ledger: Ledger::new(clients.dynamodb.clone(), stack.ledger_tables()),
        metrics: Metrics::stdout("intake"),
        stack,
        config,
    };
    let intake = &intake;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = ocrbridge::time::deadline_of(&event.context);
        intake.handle(event.payload, Some(deadline)).await
    }))
    .await
}
