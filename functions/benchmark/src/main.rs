//! `benchmark` Lambda: wiring only. See `lib.rs` for what it does.

#![recursion_limit = "256"]

use benchmark::{Benchmark, BenchmarkConfig};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use ocrbridge::aws::AwsClients;
use ocrbridge::config::StackConfig;
use ocrbridge::ledger::Ledger;
use ocrbridge::metrics::Metrics;
use ocrbridge::quality::runner::Runner;
use ocrbridge::quality::store::RunStore;
use ocrbridge::quality::RegressionPolicy;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ocrbridge::telemetry::init();
    let stack = StackConfig::from_env()?;
    let clients = AwsClients::from_env().await?;
    let table = std::env::var("BENCHMARK_RUNS_TABLE")
        .ok()
        .filter(|t| !t.is_empty())
        .ok_or("BENCHMARK_RUNS_TABLE is not set: the benchmark runs table's name")?;
    let benchmark = Benchmark {
        runner: Runner {
            store: RunStore {
                s3: clients.s3.clone(),
                dynamodb: clients.dynamodb.clone(),
                results_bucket: stack.results_bucket.clone(),
                table,
            },
            ledger: Ledger::new(clients.dynamodb.clone(), stack.ledger_tables()),
            s3: clients.s3.clone(),
            documents_bucket: stack.documents_bucket.clone(),
            vendor: std::env::var("VENDOR").unwrap_or_else(|_| "sim".into()),
            metrics: Metrics::stdout("benchmark"),
            policy: RegressionPolicy::default(),
        },
        config: BenchmarkConfig::from_lookup(|k| std::env::var(k).ok())?,
    };
    let benchmark = &benchmark;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(benchmark.handle(event.payload).await?)
    }))
    .await
}
