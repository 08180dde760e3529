//! The Textract twin: Amazon Textract's asynchronous APIs on AWS JSON 1.1 (`POST /` with
//! `X-Amz-Target: Textract.<Operation>`), as `aws-sdk-textract` speaks them, because moto's
//! Textract cannot test an adapter (`../shared/VENDORS.md`).
//!
//! Modelled, from Textract's API reference:
//! - `StartDocumentTextDetection`, `StartDocumentAnalysis` (FORMS, TABLES), `StartExpenseAnalysis`
//!   read the document from S3 (moto), same as Textract: `InvalidS3ObjectException` when it is
//!   not there, `UnsupportedDocumentException` when it is not an image or a PDF;
//! - `ClientRequestToken` (1–64 `[A-Za-z0-9-_]`, remembered `textract_token_ttl`, 7 days in AWS):
//!   the same token, operation and parameters return the same `JobId` with no new job and **no
//!   new notification**; the same token with other parameters is
//!   `IdempotentParameterMismatchException`; another operation is another job. `JobTag` 1–64
//!   `[a-zA-Z0-9_.\-:]`;
//! - at most `textract_max_jobs` jobs in progress: `LimitExceededException`;
//! - `Get*` pages results with `NextToken`: 1,000 blocks per page, **20 expense documents per
//!   page**; `DocumentMetadata.Pages` is an integer; `JobStatus` `IN_PROGRESS`, `SUCCEEDED`,
//!   `FAILED` (with `StatusMessage`);
//! - on completion, Textract's notification message published to the job's SNS topic (moto
//!   delivers it to subscribed SQS queues in an SNS envelope, as AWS does);
//! - every simulator fault: throttling (`ThrottlingException`, and
//!   `ProvisionedThroughputExceededException` from the rate limit), 5xx
//!   (`InternalServerError`), drop and truncate after accept, slow, lost / duplicated / delayed
//!   notifications, failed jobs, and drift (a block type the adapter does not know).
//!
//! - the synchronous `DetectDocumentText`, `AnalyzeDocument`, `AnalyzeExpense` and `AnalyzeID`
//!   on an S3 object ([`analyze`]): read in the call, answered in its response with a
//!   `x-amzn-RequestId`, 10 MB and one page at most; the submission faults (throttling, 5xx,
//!   drop and truncate after the read, slow) apply to them too.
//!
//! Not modelled: SigV4 is not checked (moto does not either); KMS, `OutputConfig` (results
//! written to S3), adapters and queries, `PARTIAL_SUCCESS` (never produced, though the adapter
//! handles it), the real models' accuracy — the words are Tesseract's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::api::{cut_answer, request_fault, submission_received, Refusal, RequestFault};
use crate::engine::Page;
use crate::faults::Fault;
use crate::fields::Field;
use crate::state::{Idempotency, Output, Protocol, SimJob, Status};
use crate::{Accept, Accepted, KeyRule, Sim};

/// Which API a job was started with (or, for a synchronous call, made by).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Text,
    Analysis,
    Expense,
    /// `AnalyzeID`: synchronous only.
    Id,
}

impl Api {
    fn start_operation(self) -> &'static str {
        match self {
            Api::Text => "StartDocumentTextDetection",
            Api::Analysis => "StartDocumentAnalysis",
            Api::Expense => "StartExpenseAnalysis",
            Api::Id => "AnalyzeID",
        }
    }

    /// The `*ModelVersion` field of the API's answers.
    fn model_version_field(self) -> &'static str {
        match self {
            Api::Text => "DetectDocumentTextModelVersion",
            Api::Analysis => "AnalyzeDocumentModelVersion",
            Api::Expense => "AnalyzeExpenseModelVersion",
            Api::Id => "AnalyzeIDModelVersion",
        }
    }

    /// The simulator's extraction profile for the API's documents.
    fn profile(self) -> &'static str {
        match self {
            Api::Expense => "financial",
            Api::Id => "id",
            _ => "generic",
        }
    }

    /// Results per `Get*` page, at most: blocks, or expense documents.
    fn page_size(self) -> usize {
        match self {
            Api::Expense => 20,
            _ => 1_000,
        }
    }
}

/// A Textract job's own parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextractJob {
    pub api: Api,
    pub bucket: String,
    pub key: String,
    pub topic_arn: Option<String>,
    pub job_tag: Option<String>,
    /// Made by a synchronous call: answered in it, never counted among the jobs in progress.
    pub synchronous: bool,
}

pub fn routes() -> Router<Arc<Sim>> {
    Router::new().route("/", post(handle))
}

/// A Textract error in AWS JSON 1.1's shape (the SDK reads `__type`).
fn error(status: StatusCode, kind: &str, message: impl Into<String>) -> Response {
    let mut response = (
        status,
        [("content-type", "application/x-amz-json-1.1")],
        json!({ "__type": kind, "message": message.into() }).to_string(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(kind) {
        response.headers_mut().insert("x-amzn-errortype", v);
    }
    response
}

/// A success, with the request id every AWS response carries.
fn ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [
            ("content-type", "application/x-amz-json-1.1".to_owned()),
            ("x-amzn-requestid", uuid::Uuid::new_v4().to_string()),
        ],
        body.to_string(),
    )
        .into_response()
}

fn invalid(message: impl Into<String>) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "InvalidParameterException",
        message,
    )
}

async fn handle(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: Bytes) -> Response {
    let received = Instant::now();
    let Some(operation) = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Textract."))
        .map(str::to_owned)
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            "missing X-Amz-Target",
        );
    };
    let trace = headers
        .get("x-amzn-trace-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let fault = sim.with_state(|inner| {
        inner.stats.requests += 1;
        request_fault(inner)
    });
    match fault {
        Some(RequestFault::Throttled { retry_after_secs }) if retry_after_secs > 1 => {
            return error(
                StatusCode::BAD_REQUEST,
                "ProvisionedThroughputExceededException",
                "the number of requests exceeded your throughput limit",
            )
        }
        Some(RequestFault::Throttled { .. }) => return error(
            StatusCode::BAD_REQUEST,
            "ThrottlingException",
            "Amazon Textract is temporarily unable to process the request. Try your call again.",
        ),
        // Textract's own 5xx errors, each with its `__type`, and a gateway's with none (an
        // HTML page): each must be taken for "try again", never for a rejected document.
        Some(RequestFault::ServerError { status }) => {
            return match status.as_u16() {
                500 => error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    sim.with_state(|inner| {
                        *inner.dice.pick(&["InternalServerError", "InternalFailure"])
                    }),
                    "Amazon Textract experienced a service issue. Try your call again.",
                ),
                503 => error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "The service is unavailable. Try your call again.",
                ),
                other => (
                    StatusCode::from_u16(other).unwrap_or(StatusCode::BAD_GATEWAY),
                    [(axum::http::header::CONTENT_TYPE, "text/html")],
                    "<html><body><h1>502 Bad Gateway</h1></body></html>",
                )
                    .into_response(),
            };
        }
        None => {}
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "SerializationException",
            "the body is not JSON",
        );
    };
    match operation.as_str() {
        "StartDocumentTextDetection" => {
            start(&sim, Api::Text, &request, received, trace.as_deref()).await
        }
        "StartDocumentAnalysis" => {
            start(&sim, Api::Analysis, &request, received, trace.as_deref()).await
        }
        "StartExpenseAnalysis" => {
            start(&sim, Api::Expense, &request, received, trace.as_deref()).await
        }
        "DetectDocumentText" => analyze(&sim, Api::Text, &request, received).await,
        "AnalyzeDocument" => analyze(&sim, Api::Analysis, &request, received).await,
        "AnalyzeExpense" => analyze(&sim, Api::Expense, &request, received).await,
        "AnalyzeID" => analyze(&sim, Api::Id, &request, received).await,
        "GetDocumentTextDetection" => get(&sim, Api::Text, &request),
        "GetDocumentAnalysis" => get(&sim, Api::Analysis, &request),
        "GetExpenseAnalysis" => get(&sim, Api::Expense, &request),
        other => error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            format!("{other} is not modelled by the Textract twin"),
        ),
    }
}

/// A submission the simulator refused at the door, as Textract says it.
fn refused(refusal: Refusal) -> Response {
    match refusal {
        Refusal::Unauthorized => error(
            StatusCode::BAD_REQUEST,
            "AccessDeniedException",
            "You aren't authorized to perform the action.",
        ),
        Refusal::Throttled(_) => error(
            StatusCode::BAD_REQUEST,
            "ThrottlingException",
            "Amazon Textract is temporarily unable to process the request. Try your call again.",
        ),
        Refusal::Rejected => error(
            StatusCode::BAD_REQUEST,
            "BadDocumentException",
            "Amazon Textract isn't able to read the document.",
        ),
    }
}

fn valid_token(token: &str) -> bool {
    (1..=64).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn valid_job_tag(tag: &str) -> bool {
    (1..=64).contains(&tag.len())
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-:".contains(&b))
}

/// Starts a job; `trace`, the request's `X-Amzn-Trace-Id`, is kept by job id
/// (`/admin/traces`), as X-Ray would see the call.
async fn start(
    sim: &Arc<Sim>,
    api: Api,
    request: &Value,
    received: Instant,
    trace: Option<&str>,
) -> Response {
    let subject = request["JobTag"]
        .as_str()
        .or(request["ClientRequestToken"].as_str())
        .unwrap_or_default();
    if let Err(refusal) = submission_received(sim, subject).proceed().await {
        return refused(refusal);
    }
    let s3 = &request["DocumentLocation"]["S3Object"];
    let (Some(bucket), Some(key)) = (s3["Bucket"].as_str(), s3["Name"].as_str()) else {
        return invalid("DocumentLocation.S3Object needs Bucket and Name");
    };
    let version = s3["Version"].as_str();
    let token = request["ClientRequestToken"].as_str();
    if token.is_some_and(|t| !valid_token(t)) {
        return invalid("ClientRequestToken must be 1-64 characters of [a-zA-Z0-9-_]");
    }
    let job_tag = request["JobTag"].as_str();
    if job_tag.is_some_and(|t| !valid_job_tag(t)) {
        return invalid("JobTag must be 1-64 characters of [a-zA-Z0-9_.\\-:]");
    }
    let features: Vec<&str> = request["FeatureTypes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if api == Api::Analysis && features.is_empty() {
        return invalid("FeatureTypes is required");
    }
    let channel = &request["NotificationChannel"];
    let topic_arn = channel["SNSTopicArn"].as_str();
    if topic_arn.is_some() && channel["RoleArn"].as_str().is_none() {
        return invalid("NotificationChannel needs SNSTopicArn and RoleArn");
    }
    // What must match for the token to return the same job.
    let fingerprint = hex::encode(Sha256::digest(
        json!([bucket, key, version, job_tag, topic_arn, features]).to_string(),
    ));
    let rule = token.map(|t| KeyRule {
        key: format!("{}:{t}", api.start_operation()),
        fingerprint: fingerprint.clone(),
        memory: Idempotency::Expiring {
            ttl_ms: sim.twins.textract_token_ttl.as_millis() as u64,
        },
    });
    if let Some(rule) = &rule {
        let known = sim.with_state(|inner| inner.job_for_key(&rule.key).cloned());
        match known {
            Some(job) if job.fingerprint == fingerprint => {
                sim.with_state(|inner| inner.stats.idempotent_replays += 1);
                return ok(json!({ "JobId": job.id }));
            }
            Some(_) => {
                sim.with_state(|inner| inner.stats.idempotency_conflicts += 1);
                return error(
                    StatusCode::BAD_REQUEST,
                    "IdempotentParameterMismatchException",
                    "A ClientRequestToken input parameter was reused with an operation, but at least one of the other input parameters is different from the previous call to the operation.",
                );
            }
            None => {}
        }
    }
    let in_progress = sim.with_state(|inner| {
        inner
            .jobs
            .values()
            .filter(|j| {
                matches!(&j.protocol, Protocol::Textract(t) if !t.synchronous)
                    && !j.status.is_final()
            })
            .count()
    });
    if in_progress >= sim.twins.textract_max_jobs {
        return error(
            StatusCode::BAD_REQUEST,
            "LimitExceededException",
            "An Amazon Textract service limit was exceeded: open jobs exceed maximum concurrent job limit",
        );
    }
    let document = match read_object(sim, bucket, key, version).await {
        Ok(bytes) => bytes,
        Err(response) => return response,
    };
    if let Some(refusal) = unsupported(&document) {
        return refusal;
    }
    let accept = Accept {
        protocol: Protocol::Textract(TextractJob {
            api,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            topic_arn: topic_arn.map(str::to_owned),
            job_tag: job_tag.map(str::to_owned),
            synchronous: false,
        }),
        profile: api.profile().into(),
        // Textract keeps no reference of ours but the JobTag, which ocrbridge sets to its job.
        external_ref: job_tag.map(str::to_owned),
        key: rule,
        document,
        received,
    };
    match sim.accept(accept) {
        Accepted::New { job, cut } => {
            if let Some(trace) = trace {
                sim.with_state(|inner| inner.traces.insert(job.id.clone(), trace.to_owned()));
            }
            let mut response = ok(json!({ "JobId": job.id }));
            cut_answer(&mut response, cut);
            response
        }
        Accepted::Replayed(job) => ok(json!({ "JobId": job.id })),
        Accepted::Conflict => error(
            StatusCode::BAD_REQUEST,
            "IdempotentParameterMismatchException",
            "A ClientRequestToken input parameter was reused with different parameters.",
        ),
    }
}

/// The longest a synchronous call is kept waiting for its document (the `never_finishes` fault):
/// then the connection is dropped, as a gateway's timeout would.
const ANSWER_PATIENCE: Duration = Duration::from_secs(120);

/// A synchronous call: the document read during the request and the result in the response,
/// as `DetectDocumentText`, `AnalyzeDocument`, `AnalyzeExpense` and `AnalyzeID` answer. Nothing
/// is kept to look up, no token is taken and no notification is published; the twin keys the
/// call by the document's content (`sha256:…`), as it does for Azure, so a test can hold each
/// document to one bill. Limits as Textract's: 10 MB, one page (a longer PDF is
/// `UnsupportedDocumentException`, and read nonetheless: the engine counts pages by reading);
/// `AnalyzeID`'s second page (a card's back) is not modelled.
async fn analyze(sim: &Arc<Sim>, api: Api, request: &Value, received: Instant) -> Response {
    let document = match api {
        Api::Id => match request["DocumentPages"].as_array().map(Vec::as_slice) {
            Some([one]) => one,
            Some([_, _]) => {
                return invalid("the Textract twin reads one page of DocumentPages, not two")
            }
            _ => return invalid("DocumentPages must hold one or two documents"),
        },
        _ => &request["Document"],
    };
    let s3 = &document["S3Object"];
    let (Some(bucket), Some(key)) = (s3["Bucket"].as_str(), s3["Name"].as_str()) else {
        return invalid("Document.S3Object needs Bucket and Name (the twin does not model Bytes)");
    };
    if api == Api::Analysis
        && request["FeatureTypes"]
            .as_array()
            .is_none_or(|f| f.is_empty())
    {
        return invalid("FeatureTypes is required");
    }
    let bytes = match read_object(sim, bucket, key, s3["Version"].as_str()).await {
        Ok(bytes) => bytes,
        Err(response) => return response,
    };
    let subject = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
    if let Err(refusal) = submission_received(sim, &subject).proceed().await {
        return refused(refusal);
    }
    if bytes.len() > 10 * 1024 * 1024 {
        return error(
            StatusCode::BAD_REQUEST,
            "DocumentTooLargeException",
            "The document can't be processed because it's too large. The maximum document size for synchronous operations 10 MB.",
        );
    }
    if let Some(refusal) = unsupported(&bytes) {
        return refusal;
    }
    let accept = Accept {
        protocol: Protocol::Textract(TextractJob {
            api,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            topic_arn: None,
            job_tag: None,
            synchronous: true,
        }),
        profile: api.profile().into(),
        external_ref: Some(subject),
        key: None,
        document: bytes,
        received,
    };
    let (job, cut) = match sim.accept(accept) {
        Accepted::New { job, cut } => (job, cut),
        // No key, so never a replay or a conflict.
        Accepted::Replayed(_) | Accepted::Conflict => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "the twin replayed a call that has no token",
            )
        }
    };
    let waited = Instant::now();
    let job = loop {
        match sim.job(&job.id) {
            Some(done) if done.status.is_final() => break done,
            _ if waited.elapsed() > ANSWER_PATIENCE => {
                let mut response = ok(json!({}));
                cut_answer(&mut response, Some(crate::Cut::Drop));
                return response;
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let mut response = match (&job.status, &job.output) {
        (Status::Succeeded, Some(output)) if output.pages.len() > 1 => error(
            StatusCode::BAD_REQUEST,
            "UnsupportedDocumentException",
            "Request has unsupported document format: synchronous operations take one page.",
        ),
        (Status::Succeeded, Some(output)) => {
            let mut answer = ok(answer_body(&job, api, output));
            // The request's id is the twin's name for the call: its job, so a test can find
            // the call in the twin's books from what ocrbridge recorded.
            if let Ok(id) = HeaderValue::from_str(&job.id) {
                answer.headers_mut().insert("x-amzn-requestid", id);
            }
            answer
        }
        // The document could not be read (or the `failed_job` fault): Textract's answer to a
        // document it cannot process is this error, in the call.
        _ => error(
            StatusCode::BAD_REQUEST,
            "BadDocumentException",
            "Amazon Textract isn't able to read the document.",
        ),
    };
    cut_answer(&mut response, cut);
    response
}

/// A synchronous call's whole answer: what `Get*` pages, in one body, and no `JobStatus`.
fn answer_body(job: &SimJob, api: Api, output: &Output) -> Value {
    let mut answer = json!({
        api.model_version_field(): "1.0",
        "DocumentMetadata": { "Pages": output.pages.len() },
    });
    match api {
        Api::Expense => answer["ExpenseDocuments"] = json!(expense_documents(job, output)),
        Api::Text => answer["Blocks"] = json!(blocks(job, output, false)),
        Api::Analysis => answer["Blocks"] = json!(blocks(job, output, true)),
        Api::Id => answer["IdentityDocuments"] = json!(identity_documents(job, output)),
    }
    answer
}

/// `AnalyzeID`'s `IdentityDocuments`: one per page, its typed fields as the simulator read them
/// (every field AnalyzeID types, empty where nothing was read, as Textract sends them), dates
/// with their `NormalizedValue`, and the page's blocks.
fn identity_documents(job: &SimJob, output: &Output) -> Vec<Value> {
    let all_blocks = blocks(job, output, false);
    output
        .pages
        .iter()
        .zip(&output.page_fields)
        .enumerate()
        .map(|(i, (page, fields))| {
            let typed = [
                ("ID_TYPE", "document_type"),
                ("DOCUMENT_NUMBER", "document_number"),
                ("LAST_NAME", "surname"),
                ("FIRST_NAME", "given_names"),
                ("DATE_OF_BIRTH", "date_of_birth"),
                ("EXPIRATION_DATE", "expiry_date"),
                ("MRZ_CODE", "mrz"),
            ];
            let id_fields: Vec<Value> = typed
                .into_iter()
                .map(|(kind, ours)| {
                    let Some(f) = fields.get(ours) else {
                        return json!({
                            "Type": { "Text": kind },
                            "ValueDetection": { "Text": "", "Confidence": 99.0 },
                        });
                    };
                    let text = match kind {
                        "ID_TYPE" => f.value.to_uppercase(),
                        // Its lines, space-separated, as AnalyzeID sends the MRZ.
                        "MRZ_CODE" => f.value.split_whitespace().collect::<Vec<_>>().join(" "),
                        _ => f.value.clone(),
                    };
                    let mut value = json!({ "Text": text, "Confidence": f.confidence });
                    if kind.contains("DATE") {
                        if let Some(d) = crate::fields::typed_date(&f.value, None) {
                            value["NormalizedValue"] = json!({
                                "Value": d.format("%Y-%m-%dT00:00:00").to_string(),
                                "ValueType": "Date",
                            });
                        }
                    }
                    json!({ "Type": { "Text": kind }, "ValueDetection": value })
                })
                .collect();
            let page_blocks: Vec<&Value> = all_blocks
                .iter()
                .filter(|b| b["Page"] == page.number)
                .collect();
            json!({
                "DocumentIndex": i + 1,
                "IdentityDocumentFields": id_fields,
                "Blocks": page_blocks,
            })
        })
        .collect()
}

/// Textract's refusal of a document in none of its formats, if `document` is one.
fn unsupported(document: &[u8]) -> Option<Response> {
    (!(crate::engine::looks_like_pdf(document) || looks_like_image(document))).then(|| {
        error(
            StatusCode::BAD_REQUEST,
            "UnsupportedDocumentException",
            "The format of the input document isn't supported. Documents for operations can be in PNG, JPEG, PDF, or TIFF format.",
        )
    })
}

fn looks_like_image(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x89PNG")
        || bytes.starts_with(&[0xFF, 0xD8, 0xFF])
        || bytes.starts_with(b"II*\0")
        || bytes.starts_with(b"MM\0*")
}

async fn read_object(
    sim: &Sim,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Result<Bytes, Response> {
    let Some(aws) = sim.aws() else {
        return Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "the Textract twin was started without --aws-endpoint: it cannot read S3",
        ));
    };
    let object = aws
        .s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(str::to_owned))
        .send()
        .await
        .map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                "InvalidS3ObjectException",
                format!(
                    "Unable to get object metadata from S3. Check object key, region and/or access permissions. ({})",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                ),
            )
        })?;
    let bytes = object.body.collect().await.map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "InvalidS3ObjectException",
            e.to_string(),
        )
    })?;
    Ok(bytes.into_bytes())
}

fn get(sim: &Sim, api: Api, request: &Value) -> Response {
    let Some(job_id) = request["JobId"].as_str() else {
        return invalid("JobId is required");
    };
    let job = sim.with_state(|inner| {
        inner.stats.status_requests += 1;
        inner.jobs.get(job_id).cloned()
    });
    // An unknown job and one Textract no longer keeps look the same: a 400, not a 404.
    let job = match job {
        Some(job)
            if matches!(&job.protocol, Protocol::Textract(t) if t.api == api)
                && !job.is_gone(sim.twins.result_ttl) =>
        {
            job
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidJobIdException",
                "An invalid job identifier was passed.",
            )
        }
    };
    let max = request["MaxResults"]
        .as_u64()
        .map_or(api.page_size(), |m| (m as usize).clamp(1, api.page_size()));
    let start: usize = match request["NextToken"].as_str() {
        None => 0,
        Some(token) => match token.strip_prefix("page-").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => return invalid("NextToken is not one this service issued"),
        },
    };
    let mut answer = json!({ api.model_version_field(): "1.0" });
    match job.status {
        Status::Queued | Status::Processing => {
            answer["JobStatus"] = json!("IN_PROGRESS");
            return ok(answer);
        }
        Status::Failed => {
            answer["JobStatus"] = json!("FAILED");
            answer["StatusMessage"] = json!(job
                .error
                .as_ref()
                .map_or("the document could not be processed", |e| e
                    .message
                    .as_str()));
            return ok(answer);
        }
        Status::Succeeded => {}
    }
    let Some(output) = &job.output else {
        return ok(json!({ "JobStatus": "FAILED", "StatusMessage": "no output" }));
    };
    answer["JobStatus"] = json!("SUCCEEDED");
    answer["DocumentMetadata"] = json!({ "Pages": output.pages.len() });
    let (items, key) = match api {
        Api::Expense => (expense_documents(&job, output), "ExpenseDocuments"),
        Api::Text | Api::Id => (blocks(&job, output, false), "Blocks"),
        Api::Analysis => (blocks(&job, output, true), "Blocks"),
    };
    let end = (start + max).min(items.len());
    answer[key] = Value::Array(items.get(start..end).unwrap_or_default().to_vec());
    if end < items.len() {
        answer["NextToken"] = json!(format!("page-{end}"));
    }
    ok(answer)
}

fn geometry(bbox: &crate::engine::BBox, page: &Page) -> Value {
    let (left, top, width, height) = bbox.normalized(page.width, page.height);
    json!({
        "BoundingBox": { "Width": width, "Height": height, "Left": left, "Top": top },
        "Polygon": [
            { "X": left, "Y": top },
            { "X": left + width, "Y": top },
            { "X": left + width, "Y": top + height },
            { "X": left, "Y": top + height },
        ],
    })
}

/// Textract's block list for a job: a PAGE per page, its LINEs and their WORDs; for analysis,
/// a KEY_VALUE_SET pair for every `key: value` line.
fn blocks(job: &SimJob, output: &Output, forms: bool) -> Vec<Value> {
    let mut out = Vec::new();
    let mut next = 0u32;
    let mut id = || {
        next += 1;
        format!("{}-{next:06}", &job.id[..8])
    };
    for page in &output.pages {
        let page_id = id();
        let mut page_children = Vec::new();
        let mut rest = Vec::new();
        for line in &page.lines {
            let line_id = id();
            page_children.push(line_id.clone());
            let mut word_ids = Vec::new();
            for word in &line.words {
                let word_id = id();
                word_ids.push(word_id.clone());
                rest.push(json!({
                    "BlockType": "WORD", "Id": word_id, "Text": word.text, "TextType": "PRINTED",
                    "Confidence": word.confidence, "Geometry": geometry(&word.bbox, page),
                    "Page": page.number,
                }));
            }
            rest.push(json!({
                "BlockType": "LINE", "Id": line_id, "Text": line.text,
                "Confidence": line.confidence, "Geometry": geometry(&line.bbox, page),
                "Relationships": [{ "Type": "CHILD", "Ids": word_ids.clone() }],
                "Page": page.number,
            }));
            if forms {
                if let Some(split) = line.text.find(':') {
                    let key_words = word_ids
                        .iter()
                        .zip(&line.words)
                        .filter(|(_, w)| line.text.find(&w.text).is_some_and(|at| at < split))
                        .map(|(id, _)| id.clone())
                        .collect::<Vec<_>>();
                    let value_words: Vec<String> = word_ids
                        .iter()
                        .filter(|id| !key_words.contains(id))
                        .cloned()
                        .collect();
                    let (key_id, value_id) = (id(), id());
                    rest.push(json!({
                        "BlockType": "KEY_VALUE_SET", "Id": key_id, "EntityTypes": ["KEY"],
                        "Confidence": line.confidence, "Geometry": geometry(&line.bbox, page),
                        "Relationships": [
                            { "Type": "VALUE", "Ids": [value_id] },
                            { "Type": "CHILD", "Ids": key_words },
                        ],
                        "Page": page.number,
                    }));
                    rest.push(json!({
                        "BlockType": "KEY_VALUE_SET", "Id": value_id, "EntityTypes": ["VALUE"],
                        "Confidence": line.confidence, "Geometry": geometry(&line.bbox, page),
                        "Relationships": [{ "Type": "CHILD", "Ids": value_words }],
                        "Page": page.number,
                    }));
                }
            }
        }
        out.push(json!({
            "BlockType": "PAGE", "Id": page_id,
            "Geometry": {
                "BoundingBox": { "Width": 1.0, "Height": 1.0, "Left": 0.0, "Top": 0.0 },
                "Polygon": [{"X":0.0,"Y":0.0},{"X":1.0,"Y":0.0},{"X":1.0,"Y":1.0},{"X":0.0,"Y":1.0}],
            },
            "Relationships": [{ "Type": "CHILD", "Ids": page_children }],
            "Page": page.number,
        }));
        out.extend(rest);
        if output.drifted {
            // A block type newer than the adapter: drift to report, not a reason to fail.
            out.push(json!({ "BlockType": "LAYOUT_FIGURE_V2", "Id": id(), "Page": page.number }));
        }
    }
    out
}

/// The expense summary type for a simulator field.
fn expense_type(field: &str) -> Option<&'static str> {
    Some(match field {
        "total" => "TOTAL",
        "subtotal" => "SUBTOTAL",
        "tax" => "TAX",
        "date" | "invoice_date" => "INVOICE_RECEIPT_DATE",
        "due_date" => "DUE_DATE",
        "company" | "vendor_name" => "VENDOR_NAME",
        "invoice_id" => "INVOICE_RECEIPT_ID",
        "address" => "VENDOR_ADDRESS",
        _ => return None,
    })
}

/// The label printed before a field's value on its line (`Total` in `Total: 9.50`), which
/// Textract sends as the summary field's `LabelDetection` when the document has one: the text
/// before a colon, else the words before the first one with a digit. (The engine reads a field
/// from one line: its box is that line's.)
fn label_of(page: &crate::engine::Page, field: &Field) -> Option<String> {
    let line = page.lines.iter().find(|l| l.bbox == field.bbox)?;
    let label = match line.text.split_once(':') {
        Some((label, _)) => label.trim().to_owned(),
        None => line
            .text
            .split_whitespace()
            .take_while(|w| !w.chars().any(|c| c.is_ascii_digit()))
            .collect::<Vec<_>>()
            .join(" "),
    };
    (!label.is_empty() && label != field.value).then_some(label)
}

/// An ISO 4217 code for the currency the document shows.
pub(crate) fn currency_code(symbol: &str) -> String {
    match symbol.trim() {
        "$" => "USD".into(),
        "€" => "EUR".into(),
        "£" => "GBP".into(),
        "RM" => "MYR".into(),
        other => other.to_uppercase(),
    }
}

/// One expense document per page, as Textract returns one per receipt or invoice it finds, each
/// with its page's own text blocks.
fn expense_documents(job: &SimJob, output: &Output) -> Vec<Value> {
    let all_blocks = blocks(job, output, false);
    output
        .pages
        .iter()
        .zip(&output.page_fields)
        .enumerate()
        .map(|(i, (page, fields))| {
            let currency = fields.get("currency").map(|f| currency_code(&f.value));
            let mut seen = BTreeMap::new();
            let summary: Vec<Value> = fields
                .iter()
                .filter_map(|(name, f)| Some((expense_type(name)?, f)))
                .filter(|(kind, _)| seen.insert(*kind, ()).is_none())
                .map(|(kind, f): (&str, &Field)| {
                    let mut field = expense_field(kind, &f.value, f.confidence, &f.bbox, page);
                    if let Some(label) = label_of(page, f) {
                        field["LabelDetection"] = json!({
                            "Text": label, "Confidence": f.confidence,
                            "Geometry": geometry(&f.bbox, page),
                        });
                    }
                    if let (true, Some(code)) = (
                        matches!(kind, "TOTAL" | "SUBTOTAL" | "TAX"),
                        currency.as_ref(),
                    ) {
                        field["Currency"] = json!({ "Code": code });
                    }
                    field
                })
                .collect();
            let page_blocks: Vec<&Value> = all_blocks
                .iter()
                .filter(|b| b["Page"] == page.number && b["BlockType"] != "LAYOUT_FIGURE_V2")
                .collect();
            let mut document = json!({
                "ExpenseIndex": i + 1,
                "SummaryFields": summary,
                "LineItemGroups": line_item_groups(page, &output.line_items),
                "Blocks": page_blocks,
            });
            if let (true, Some(summary)) =
                (output.drifted, document["SummaryFields"].as_array_mut())
            {
                summary.push(json!({
                    "Type": { "Text": "LOYALTY_POINTS_V2" },
                    "ValueDetection": { "Text": "1" },
                    "PageNumber": page.number,
                }));
            }
            document
        })
        .collect()
}

/// One expense field (a summary field or a line item's): its type, and the value as read.
fn expense_field(
    kind: &str,
    text: &str,
    confidence: f32,
    bbox: &crate::engine::BBox,
    page: &crate::engine::Page,
) -> Value {
    json!({
        "Type": { "Text": kind, "Confidence": 99.0 },
        "ValueDetection": {
            "Text": text, "Confidence": confidence, "Geometry": geometry(bbox, page),
        },
        "PageNumber": page.number,
    })
}

/// The page's item rows as one line-item group, each row's fields (`ITEM`, `QUANTITY`,
/// `UNIT_PRICE`, `PRICE`) and the whole row (`EXPENSE_ROW`), as AnalyzeExpense sends them.
/// A page without items has no group.
fn line_item_groups(page: &crate::engine::Page, items: &[crate::fields::ItemReading]) -> Value {
    let rows: Vec<Value> = items
        .iter()
        .filter(|item| item.page == page.number)
        .map(|item| {
            let parts = [
                ("ITEM", Some(&item.description)),
                ("QUANTITY", item.quantity.as_ref()),
                ("UNIT_PRICE", item.unit_price.as_ref()),
                ("PRICE", Some(&item.amount)),
                ("EXPENSE_ROW", Some(&item.text)),
            ];
            let fields: Vec<Value> = parts
                .into_iter()
                .filter_map(|(kind, text)| Some((kind, text?)))
                .map(|(kind, text)| expense_field(kind, text, item.confidence, &item.bbox, page))
                .collect();
            json!({ "LineItemExpenseFields": fields })
        })
        .collect();
    if rows.is_empty() {
        return json!([]);
    }
    json!([{ "LineItemGroupIndex": 1, "LineItems": rows }])
}

/// Publishes Textract's completion message to the job's SNS topic, if it has one, through the
/// notification faults (lost, duplicated, delayed).
pub fn notify(sim: &Arc<Sim>, job: SimJob) {
    let Protocol::Textract(textract) = &job.protocol else {
        return;
    };
    let Some(topic) = textract.topic_arn.clone() else {
        return;
    };
    let subject = job.subject().to_owned();
    let (lost, copies, delay) = sim.with_state(|inner| {
        let lost = inner.strikes_for(Fault::LostWebhook, &subject);
        let copies = if inner.strikes_for(Fault::DuplicateWebhook, &subject) {
            2
        } else {
            1
        };
        let delay = if inner.strikes_for(Fault::DelayedWebhook, &subject) {
            Duration::from_millis(inner.dice.config.webhook_delay_ms)
        } else {
            Duration::ZERO
        };
        (lost, copies, delay)
    });
    if lost {
        return;
    }
    let message = json!({
        "JobId": job.id,
        "Status": if job.status == Status::Succeeded { "SUCCEEDED" } else { "FAILED" },
        "API": textract.api.start_operation(),
        "JobTag": textract.job_tag,
        "Timestamp": chrono::Utc::now().timestamp_millis(),
        "DocumentLocation": { "S3ObjectName": textract.key, "S3Bucket": textract.bucket },
    })
    .to_string();
    let Some(aws) = sim.aws().cloned() else {
        return;
    };
    let sim = Arc::clone(sim);
    tokio::spawn(async move {
        sim.hold_delivery(&subject, delay).await;
        for _ in 0..copies {
            let sent = aws
                .sns
                .publish()
                .topic_arn(&topic)
                .message(&message)
                .send()
                .await;
            sim.with_state(|inner| match sent {
                Ok(_) => inner.stats.notifications_published += 1,
                Err(_) => inner.stats.webhook_attempts_failed += 1,
            });
        }
    });
}
