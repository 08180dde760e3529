//! `intake`: validate S3 uploads and create jobs.
//!
//! Not built yet (issue #4). Until it is, every invocation fails loudly instead of
//! pretending to succeed, so no event is acknowledged and lost: queue messages return to their
//! queue and end in its DLQ.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

async fn not_built_yet(event: LambdaEvent<Value>) -> Result<Value, Error> {
    tracing::error!(
        request_id = %event.context.request_id,
        "the intake handler is not built yet (issue #4); the event was not processed"
    );
    Err("the intake handler is not built yet (issue #4)".into())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    ocrbridge::telemetry::init();
    lambda_runtime::run(service_fn(not_built_yet)).await
}
