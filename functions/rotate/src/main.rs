//! `rotate`: rotate the vendor API key and webhook signing secret.
//!
//! Not built yet (issue #6). Until it is, every invocation fails loudly instead of
//! pretending to succeed, so no event is acknowledged and lost: queue messages return to their
//! queue and end in its DLQ.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

async fn not_built_yet(event: LambdaEvent<Value>) -> Result<Value, Error> {
    tracing::error!(
        request_id = %event.context.request_id,
        "the rotate handler is not built yet (issue #6); the event was not processed"
    );
    Err("the rotate handler is not built yet (issue #6)".into())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    ocrbridge::telemetry::init();
    lambda_runtime::run(service_fn(not_built_yet)).await
}
