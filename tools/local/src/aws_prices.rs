//! AWS's list prices for the requests `bench-pipeline` counts, so that it can print what a
//! document costs in AWS besides the vendor (issue #33).
//!
//! us-east-1, the first paid tier, as published on each service's pricing page
//! (as of [`ocrbridge::cost::LIST_PRICES_AS_OF`]; free tiers left out, since a production stack
//! outgrows them):
//! - DynamoDB on demand: $0.625 per million write request units, $0.125 per million read request
//!   units (the prices since November 2024). A unit is a write of up to 1 KB or a strongly
//!   consistent read of up to 4 KB; a bigger item takes more units. [`request_usd`] prices one
//!   unit per request, so the DynamoDB figure is a floor, and the benchmark says so.
//! - SQS standard queues: $0.40 per million requests (each 64 KB of payload is one).
//! - S3 Standard: $0.005 per 1,000 PUT, COPY, POST and LIST requests (PutObjectTagging is a PUT);
//!   $0.0004 per 1,000 GET and other requests.
//! - Secrets Manager: $0.05 per 10,000 API calls.
//! - SNS standard topics: $0.50 per million publishes; deliveries to SQS are free.
//! - Lambda: $0.20 per million invocations, and GB-seconds at [`ocrbridge::cost::lambda_gb_second`].

use ocrbridge::cost::Decimal;

/// A price per million requests, in USD.
fn per_million(usd: Decimal) -> Decimal {
    usd / Decimal::from(1_000_000)
}

/// What one request costs at list price (one capacity unit for DynamoDB), or `None` for an
/// operation this table does not price (the caller shows it as unpriced, never as free).
pub fn request_usd(service: &str, operation: &str) -> Option<Decimal> {
    let usd = match service {
        "dynamodb" => match operation {
            "PutItem" | "UpdateItem" | "DeleteItem" | "BatchWriteItem" => {
                per_million(Decimal::new(625, 3))
            }
            "GetItem" | "BatchGetItem" | "Query" | "Scan" => per_million(Decimal::new(125, 3)),
            // A transaction takes two units per item: price the writes.
            "TransactWriteItems" => per_million(Decimal::new(1_250, 3)),
            "TransactGetItems" => per_million(Decimal::new(250, 3)),
            _ => return None,
        },
        "sqs" => per_million(Decimal::new(40, 2)),
        "s3" => match operation {
            "PutObject"
            | "CopyObject"
            | "PutObjectTagging"
            | "ListObjectsV2"
            | "ListObjects"
            | "CreateMultipartUpload"
            | "UploadPart"
            | "CompleteMultipartUpload" => Decimal::new(5, 3) / Decimal::from(1_000),
            "GetObject" | "HeadObject" | "GetObjectTagging" => {
                Decimal::new(4, 4) / Decimal::from(1_000)
            }
            // S3 does not charge for deletes.
            "DeleteObject" | "DeleteObjects" => Decimal::ZERO,
            _ => return None,
        },
        "secretsmanager" => Decimal::new(5, 2) / Decimal::from(10_000),
        "sns" => per_million(Decimal::new(50, 2)),
        _ => return None,
    };
    Some(usd)
}

/// Lambda's price of one invocation.
pub fn lambda_invocation_usd() -> Decimal {
    per_million(Decimal::new(20, 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_million_of_each_costs_its_list_price() {
        let million = |service, operation| {
            request_usd(service, operation).map(|usd| (usd * Decimal::from(1_000_000)).normalize())
        };
        assert_eq!(
            million("dynamodb", "UpdateItem"),
            Some(Decimal::new(625, 3))
        );
        assert_eq!(million("dynamodb", "GetItem"), Some(Decimal::new(125, 3)));
        assert_eq!(million("sqs", "SendMessage"), Some(Decimal::new(4, 1)));
        assert_eq!(million("s3", "PutObject"), Some(Decimal::from(5)));
        assert_eq!(million("s3", "GetObject"), Some(Decimal::new(4, 1)));
        assert_eq!(million("s3", "PutObjectTagging"), Some(Decimal::from(5)));
        assert_eq!(
            million("secretsmanager", "GetSecretValue"),
            Some(Decimal::from(5))
        );
        assert_eq!(million("sns", "Publish"), Some(Decimal::new(5, 1)));
        assert_eq!(
            (lambda_invocation_usd() * Decimal::from(1_000_000)).normalize(),
            Decimal::new(2, 1)
        );
    }

    #[test]
    fn an_operation_it_does_not_know_is_unpriced_not_free() {
        assert_eq!(request_usd("dynamodb", "DescribeTable"), None);
        assert_eq!(request_usd("s3", "RestoreObject"), None);
        assert_eq!(
            request_usd("s3", "DeleteObject"),
            Some(Decimal::ZERO),
            "deletes are free"
        );
        assert_eq!(request_usd("kinesis", "PutRecord"), None);
    }
}
