//! `webhook` Lambda: wiring only. See `lib.rs` for what it does.

// The handler future nests SDK futures deeply enough to need more room.
#![recursion_limit = "256"]

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use ocrbridge::aws::AwsClients;
use ocrbridge::config::StackConfig;
use ocrbridge::keyring::{Keyring, Stage, DEFAULT_MAX_AGE};
use ocrbridge::ledger::Ledger;
use ocrbridge::metrics::Metrics;
use ocrbridge::queue::Queue;
use webhook::{Webhook, WebhookConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    ocrbridge::telemetry::init();
    let stack = StackConfig::from_env()?;
    let clients = AwsClients::from_env().await?;
    let webhook = Webhook {
        keyring: Keyring::new(
            clients.secrets(),
            &stack.webhook_secret,
            &[Stage::Current, Stage::Pending, Stage::Previous],
            DEFAULT_MAX_AGE,
        ),
        ledger: Ledger::new(clients.dynamodb.clone(), stack.ledger_tables()),
        queue: Queue::new(clients.sqs.clone()),
        metrics: Metrics::stdout("webhook"),
        config: WebhookConfig::from_lookup(|k| std::env::var(k).ok())?,
        stack,
    };
    let webhook = &webhook;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<LambdaFunctionUrlRequest>| async move {
            Ok::<_, Error>(webhook.handle_event(&event.payload).await)
        },
    ))
    .await
}
