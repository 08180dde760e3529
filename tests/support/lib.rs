//! Test support: a freshly provisioned local stack per test, on the shared moto server.
//!
//! moto must be running (`make test` starts it). If it is not, tests fail with the reason; they
//! never skip, because a skipped integration test proves nothing.

use std::time::Duration;

use ocrbridge::aws::{local_sdk_config, AwsClients};
use ocrbridge::config::StackConfig;
use ocrbridge::ledger::Ledger;
use ocrbridge_local::provision::{provision, LocalStack, ProvisionOptions};
use ocrbridge_local::template::Template;
use ocrbridge_local::{moto, template_path};

pub struct TestStack {
    pub endpoint: String,
    pub clients: AwsClients,
    pub stack: LocalStack,
    pub config: StackConfig,
    pub ledger: Ledger,
}

/// Provisions the template under a unique stack name, so tests can run in parallel against one
/// moto server without resets.
pub async fn stack() -> TestStack {
    let endpoint = moto::endpoint_from_env();
    if let Err(e) = moto::wait_healthy(&endpoint, Duration::from_secs(5)).await {
        panic!("{e}");
    }
    let clients = AwsClients::from_sdk_config(&local_sdk_config(&endpoint));
    let template = Template::load(&template_path()).expect("template.yaml loads");
    let options = ProvisionOptions {
        stack_name: unique_name("t"),
        ..Default::default()
    };
    let stack = provision(&clients, &template, &options)
        .await
        .expect("the template provisions into moto");
    let config = stack
        .stack_config()
        .expect("the template sets every variable");
    let ledger = Ledger::new(clients.dynamodb.clone(), config.ledger_tables());
    TestStack {
        endpoint,
        clients,
        stack,
        config,
        ledger,
    }
}

/// `prefix-` and 10 random hex characters; lowercase, so it is valid in bucket names.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}
