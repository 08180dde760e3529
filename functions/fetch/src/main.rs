//! `fetch` Lambda: wiring only. See `lib.rs` for what it does.

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use fetch::{Fetch, FetchConfig};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use ocrbridge::aws::AwsClients;
use ocrbridge::blob::Blob;
use ocrbridge::config::StackConfig;
use ocrbridge::metrics::Metrics;
use ocrbridge::url_fetch::{FetchPolicy, Fetcher, SystemResolver};

#[tokio::main]
async fn main() -> Result<(), Error> {
    ocrbridge::telemetry::init();
    let stack = StackConfig::from_env()?;
    let lookup = |k: &str| std::env::var(k).ok();
    let clients = AwsClients::from_env().await?;
    let fetch = Fetch {
        fetcher: Fetcher::new(FetchPolicy::from_lookup(lookup)?, SystemResolver),
        blob: Blob::new(clients.s3.clone()),
        config: FetchConfig::from_lookup(lookup)?,
        metrics: Metrics::stdout("fetch"),
        stack,
    };
    let fetch = &fetch;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<LambdaFunctionUrlRequest>| async move {
            Ok::<_, Error>(fetch.handle_event(&event.payload).await)
        },
    ))
    .await
}
