//! The Textract adapter (`aws-sdk-textract`).
//!
//! - **Start by profile** ([`super::select::ModelMap`]): `expense` → `StartExpenseAnalysis`,
//!   `analysis` → `StartDocumentAnalysis` with FORMS and TABLES, `text` →
//!   `StartDocumentTextDetection`, `id` → text detection too (`AnalyzeID` has no `Start*`). The
//!   document is the uploaded S3 object itself (bucket, key, version), not a URL.
//! - **Or answer now** (`TEXTRACT_SYNCHRONOUS=on`): a one-page PNG, JPEG, PDF or TIFF of at most
//!   10 MB is read by the synchronous call of the same model — `AnalyzeExpense`,
//!   `AnalyzeDocument`, `DetectDocumentText`, or `AnalyzeID` (PNG and JPEG) — and its response
//!   is the result ([`super::answer`]): no job, no notification, no `Get*`. Such a call has no
//!   token: a lost answer is resolved by the ambiguity policy's fallback, never by resending.
//! - **Idempotency**: `ClientRequestToken` is our job id (`doc-` + 40 hex: valid characters,
//!   44 ≤ 64), so the same job always sends the same token with the same parameters; Textract
//!   remembers it 7 days, and resending it is how a lost answer is resolved (no lookup exists).
//!   `JobTag` carries the job id too, which is how a completion names the job.
//!   `IdempotentParameterMismatchException` means the same token went out with different
//!   parameters — a bug, not a retry: the job fails with it.
//! - **Completion**: Textract publishes to an SNS topic (named `AmazonTextract…`, with a role it
//!   assumes); the topic feeds an SQS queue parse reads ([`notice_from_sns`]). Only `SUCCEEDED` is
//!   success; reconcile finds lost notifications through `Get*`.
//! - **Results**: `Get*` paged with `NextToken` (1,000 blocks, or 20 expense documents, a page),
//!   merged into one payload that keeps Textract's own bytes for each item.
//! - **Errors**: throttling → back off (Textract sends no Retry-After); `LimitExceededException`
//!   (too many jobs in progress) → back off longer, counted; bad, too large, unsupported or
//!   unreadable documents → the job fails with a reason a person understands; access denied →
//!   the credentials class. The SDK's own retries are off: submit and parse retry through their
//!   queues, with budgets.

pub mod normalize;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_textract::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
};
use aws_sdk_textract::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_textract::error::{BoxError, ProvideErrorMetadata, SdkError};
use aws_sdk_textract::operation::RequestId;
use aws_sdk_textract::types::{
    Document, DocumentLocation, FeatureType, JobStatus, NotificationChannel, S3Object,
};
use serde_json::{json, Value};

use super::answer::Answer;
use super::select::ModelMap;
use super::{
    Capabilities, Completion, Idempotency, Submission, Vendor, VendorError, VendorJob, VendorStatus,
};
use crate::job::Profile;

/// The asynchronous API a job was started with. It is part of our vendor job id
/// (`expense:<JobId>`): each API has its own `Get*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Text,
    Analysis,
    Expense,
    /// `AnalyzeID`: synchronous only. A document it cannot take (a PDF, over its limits, or
    /// `TEXTRACT_SYNCHRONOUS=off`) is read as text instead, its MRZ found among the lines.
    Id,
}

impl Api {
    fn from_model(model: &str) -> Result<Self, VendorError> {
        match model {
            "text" => Ok(Api::Text),
            "analysis" => Ok(Api::Analysis),
            "expense" => Ok(Api::Expense),
            "id" => Ok(Api::Id),
            other => Err(VendorError::Rejected {
                status: 0,
                code: "unknown_model".into(),
                message: format!(
                    "Textract model {other:?} is not one of text, analysis, expense, id (VENDOR_MODELS)"
                ),
            }),
        }
    }

    /// The API a job is started with: `AnalyzeID` has no `Start*`.
    fn asynchronous(self) -> Self {
        match self {
            Api::Id => Api::Text,
            other => other,
        }
    }

    /// Whether the synchronous call takes `file_type` (all four of Textract's formats; a PDF or
    /// TIFF of one page), for `AnalyzeID` only images: its documents are photos and scans of
    /// cards.
    fn answers(self, file_type: crate::inspect::FileType) -> bool {
        use crate::inspect::FileType;
        match self {
            Api::Id => matches!(file_type, FileType::Png | FileType::Jpeg),
            _ => matches!(
                file_type,
                FileType::Png | FileType::Jpeg | FileType::Pdf | FileType::Tiff
            ),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Api::Text => "text",
            Api::Analysis => "analysis",
            Api::Expense => "expense",
            Api::Id => "id",
        }
    }

    /// From the `API` field of Textract's notification.
    fn from_start_operation(name: &str) -> Option<Self> {
        match name {
            "StartDocumentTextDetection" => Some(Api::Text),
            "StartDocumentAnalysis" => Some(Api::Analysis),
            "StartExpenseAnalysis" => Some(Api::Expense),
            _ => None,
        }
    }
}

/// Our vendor job id for a Textract job.
pub fn vendor_job_id(api: Api, job_id: &str) -> String {
    format!("{}:{job_id}", api.as_str())
}

fn split_vendor_job_id(id: &str) -> Result<(Api, &str), VendorError> {
    let (api, job) = id.split_once(':').ok_or_else(|| {
        VendorError::Protocol(format!(
            "{id:?} is not a Textract vendor job id (api:JobId)"
        ))
    })?;
    Ok((Api::from_model(api)?, job))
}

/// Where Textract publishes its completions (`TEXTRACT_SNS_TOPIC_ARN`, `TEXTRACT_ROLE_ARN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub topic_arn: String,
    pub role_arn: String,
}

/// The largest document Textract's synchronous calls take: 10 MB, and one page ("Set Quotas in
/// Amazon Textract", docs.aws.amazon.com/textract/latest/dg/limits-document.html).
pub const SYNCHRONOUS_MAX_BYTES: u64 = 10 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct TextractVendor {
    client: aws_sdk_textract::Client,
    models: ModelMap,
    channel: Option<Channel>,
    max_result_bytes: usize,
    synchronous: bool,
}

impl TextractVendor {
    /// `TEXTRACT_SYNCHRONOUS=on`: one-page documents within the synchronous limits are read in
    /// the call ([`crate::vendors::answer`]).
    pub fn with_synchronous(mut self, on: bool) -> Self {
        self.synchronous = on;
        self
    }

    /// The largest merged result read (all `Get*` pages together).
    pub fn with_max_result_bytes(mut self, limit: usize) -> Self {
        self.max_result_bytes = limit;
        self
    }

    /// `client` is used with the SDK's retries off (see the module docs).
    pub fn new(
        client: &aws_sdk_textract::Client,
        models: ModelMap,
        channel: Option<Channel>,
    ) -> Self {
        let config = client
            .config()
            .to_builder()
            .retry_config(aws_sdk_textract::config::retry::RetryConfig::disabled())
            .interceptor(TraceHeader)
            .build();
        TextractVendor {
            client: aws_sdk_textract::Client::from_conf(config),
            models,
            channel,
            max_result_bytes: crate::vendors::http::DEFAULT_MAX_RESULT_BYTES,
            synchronous: false,
        }
    }
}

/// Carries the document's trace (the task-local [`crate::trace_context`]) on every Textract
/// call as `X-Amzn-Trace-Id`, so a job's calls to Textract join its X-Ray trace. The SDK's own
/// header comes from the invocation's `_X_AMZN_TRACE_ID`, which names the invocation — a batch
/// of many documents — and it only sets one where none is.
#[derive(Debug, Clone, Copy)]
struct TraceHeader;

impl Intercept for TraceHeader {
    fn name(&self) -> &'static str {
        "TraceHeader"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(header) = crate::trace_context::current() {
            context
                .request_mut()
                .headers_mut()
                .insert(crate::trace_context::HTTP_HEADER, header);
        }
        Ok(())
    }
}

/// Keeps a response's body bytes as Textract sent them (the SDK deserializes them into types
/// that cannot be serialized back), so the archive holds what was paid for.
#[derive(Debug, Clone, Default)]
struct KeepBody {
    slot: Arc<Mutex<Option<bytes::Bytes>>>,
}

impl KeepBody {
    fn take(&self) -> Option<bytes::Bytes> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl Intercept for KeepBody {
    fn name(&self) -> &'static str {
        "KeepBody"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = context
            .response()
            .body()
            .bytes()
            .map(bytes::Bytes::copy_from_slice);
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = body;
        Ok(())
    }
}

/// The SDK's error as ours. The classes follow the module docs.
fn classify<E>(err: SdkError<E, aws_sdk_textract::config::http::HttpResponse>) -> VendorError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or("Unknown").to_owned();
            let message = service.err().message().unwrap_or_default().to_owned();
            match code.as_str() {
                "ThrottlingException" | "ProvisionedThroughputExceededException" => {
                    VendorError::Throttled { retry_after: None }
                }
                "LimitExceededException" => VendorError::Busy {
                    retry_after: Duration::from_secs(30),
                },
                // Textract's own and AWS's generic server-side errors: try again later.
                "InternalServerError"
                | "InternalFailure"
                | "ServiceUnavailable"
                | "ServiceUnavailableException"
                | "ServiceException" => VendorError::Unavailable {
                    status: if status >= 500 { status } else { 500 },
                    retry_after: None,
                },
                // An unknown or expired job id (Textract keeps results 7 days): a 400, not a
                // 404 — the job is gone, and waiting will not bring it back.
                "InvalidJobIdException" => VendorError::Gone(format!("{code}: {message}")),
                "AccessDeniedException" => VendorError::Auth { status: 403 },
                "BadDocumentException" => rejected(status, &code, "Textract cannot read the document (it may be corrupt or password-protected)"),
                "DocumentTooLargeException" => rejected(status, &code, "the document is too large for Textract (500 MB and 3,000 pages for PDF and TIFF, 10 MB for images)"),
                "UnsupportedDocumentException" => rejected(status, &code, "Textract does not read this format (PNG, JPEG, PDF and TIFF only)"),
                "InvalidS3ObjectException" => rejected(status, &code, "Textract cannot read the S3 object (missing, another region, or no access)"),
                "IdempotentParameterMismatchException" => rejected(status, &code, "the same ClientRequestToken went out with different parameters: a bug in ocrbridge, not a reason to retry"),
                // Any other error of the server's side — a new type, or a gateway's page with
                // no type at all — is the service failing, never the document being wrong.
                _ if status >= 500 => VendorError::Unavailable {
                    status,
                    retry_after: None,
                },
                _ => VendorError::Rejected {
                    status,
                    code,
                    message,
                },
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            VendorError::NoAnswer(aws_sdk_textract::error::DisplayErrorContext(&err).to_string())
        }
        SdkError::ResponseError(response) => VendorError::Unreadable {
            status: response.raw().status().as_u16(),
            detail: aws_sdk_textract::error::DisplayErrorContext(&err).to_string(),
        },
        _ => VendorError::Protocol(aws_sdk_textract::error::DisplayErrorContext(&err).to_string()),
    }
}

/// A call that gives up when the submission's time does (what is left of the submit lease).
fn bounded(submission: &Submission<'_>) -> aws_sdk_textract::config::Builder {
    aws_sdk_textract::config::Builder::default().timeout_config(
        aws_sdk_textract::config::timeout::TimeoutConfig::builder()
            .operation_timeout(submission.time_limit)
            .build(),
    )
}

/// The uploaded object, as Textract reads it in place (bucket, key, version).
fn s3_object(submission: &Submission<'_>) -> S3Object {
    S3Object::builder()
        .bucket(&submission.object.bucket)
        .name(&submission.object.key)
        .set_version(submission.object.version_id.clone())
        .build()
}

fn rejected(status: u16, code: &str, what: &str) -> VendorError {
    VendorError::Rejected {
        status,
        code: code.to_owned(),
        message: what.to_owned(),
    }
}

fn status_of(status: Option<&JobStatus>, message: Option<&str>) -> VendorStatus {
    let message = message.unwrap_or_default().to_owned();
    match status {
        Some(JobStatus::InProgress) => VendorStatus::Processing,
        Some(JobStatus::Succeeded) => VendorStatus::Succeeded,
        Some(JobStatus::Failed) => VendorStatus::Failed {
            code: "FAILED".into(),
            message,
        },
        Some(JobStatus::PartialSuccess) => VendorStatus::Partial { message },
        Some(other) => VendorStatus::Unknown(other.as_str().to_owned()),
        None => VendorStatus::Unknown("missing".into()),
    }
}

impl Vendor for TextractVendor {
    fn name(&self) -> &'static str {
        "textract"
    }

    fn model(&self, profile: &Profile) -> String {
        self.models
            .model_for(profile)
            .map_or_else(|_| "unconfigured".to_owned(), str::to_owned)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            idempotency: Idempotency::Native {
                remembers_for: Some(Duration::from_secs(7 * 86_400)),
            },
            lookup_by_key: false,
            completion: Completion::Notification,
            completion_carries_reference: true,
            reads_spend_rate_limit: false,
        }
    }

    async fn submit(&self, submission: &Submission<'_>) -> Result<String, VendorError> {
        let api = Api::from_model(self.models.model_for(submission.profile)?)?.asynchronous();
        let location = DocumentLocation::builder()
            .s3_object(s3_object(submission))
            .build();
        let channel = match &self.channel {
            Some(c) => Some(
                NotificationChannel::builder()
                    .sns_topic_arn(&c.topic_arn)
                    .role_arn(&c.role_arn)
                    .build()
                    .map_err(|e| VendorError::Protocol(e.to_string()))?,
            ),
            None => None,
        };
        let bounded = bounded(submission);
        let job_id = match api {
            Api::Expense => {
                self.client
                    .start_expense_analysis()
                    .document_location(location)
                    .client_request_token(submission.idempotency_key)
                    .job_tag(submission.external_ref)
                    .set_notification_channel(channel)
                    .customize()
                    .config_override(bounded)
                    .send()
                    .await
                    .map_err(classify)?
                    .job_id
            }
            Api::Analysis => {
                self.client
                    .start_document_analysis()
                    .document_location(location)
                    .feature_types(FeatureType::Forms)
                    .feature_types(FeatureType::Tables)
                    .client_request_token(submission.idempotency_key)
                    .job_tag(submission.external_ref)
                    .set_notification_channel(channel)
                    .customize()
                    .config_override(bounded)
                    .send()
                    .await
                    .map_err(classify)?
                    .job_id
            }
            Api::Text | Api::Id => {
                self.client
                    .start_document_text_detection()
                    .document_location(location)
                    .client_request_token(submission.idempotency_key)
                    .job_tag(submission.external_ref)
                    .set_notification_channel(channel)
                    .customize()
                    .config_override(bounded)
                    .send()
                    .await
                    .map_err(classify)?
                    .job_id
            }
        };
        // A 2xx without a JobId still means Textract took the document.
        let job_id = job_id.ok_or_else(|| VendorError::Unreadable {
            status: 200,
            detail: "Textract accepted the job but sent no JobId".into(),
        })?;
        Ok(vendor_job_id(api, &job_id))
    }

    fn model_of(&self, job: &crate::job::Job) -> String {
        let model = self.model(&job.profile);
        match Api::from_model(&model) {
            Ok(api @ Api::Id) if !self.answers_now(job) => api.asynchronous().as_str().to_owned(),
            _ => model,
        }
    }

    fn answers_now(&self, job: &crate::job::Job) -> bool {
        let Ok(api) = self
            .models
            .model_for(&job.profile)
            .and_then(Api::from_model)
        else {
            return false;
        };
        self.synchronous
            && job.inspection.pages == Some(1)
            && job.inspection.size_bytes <= SYNCHRONOUS_MAX_BYTES
            && job.inspection.file_type.is_some_and(|t| api.answers(t))
    }

    /// `AnalyzeExpense`, `AnalyzeDocument` (FORMS and TABLES), `DetectDocumentText` or
    /// `AnalyzeID` on the S3 object, bounded like a submission; the response's bytes are the
    /// answer, as Textract sent them.
    async fn answer(&self, submission: &Submission<'_>) -> Result<Answer, VendorError> {
        let api = Api::from_model(self.models.model_for(submission.profile)?)?;
        let document = Document::builder().s3_object(s3_object(submission)).build();
        let bounded = bounded(submission);
        let keep = KeepBody::default();
        // One synchronous call, bounded, its body kept: its request id.
        macro_rules! kept {
            ($call:expr) => {
                $call
                    .customize()
                    .config_override(bounded)
                    .interceptor(keep.clone())
                    .send()
                    .await
                    .map_err(classify)?
                    .request_id()
                    .map(str::to_owned)
            };
        }
        let request_id = match api {
            Api::Expense => kept!(self.client.analyze_expense().document(document)),
            Api::Analysis => kept!(self
                .client
                .analyze_document()
                .document(document)
                .feature_types(FeatureType::Forms)
                .feature_types(FeatureType::Tables)),
            Api::Text => kept!(self.client.detect_document_text().document(document)),
            Api::Id => kept!(self.client.analyze_id().document_pages(document)),
        };
        // Read and billed: an answer we cannot keep is a lost one, never a failure.
        let raw = keep.take().ok_or_else(|| VendorError::Unreadable {
            status: 200,
            detail: "Textract answered but the response body was not kept".into(),
        })?;
        Ok(Answer {
            request_id,
            raw: raw.to_vec(),
        })
    }

    async fn find_by_idempotency_key(&self, _key: &str) -> Result<Option<VendorJob>, VendorError> {
        // Textract has no lookup; resending the same token is the lookup (capabilities say so).
        Err(VendorError::Protocol(
            "Textract cannot look a job up by token; resend the same token instead".into(),
        ))
    }

    async fn status(&self, vendor_job_id: &str) -> Result<VendorJob, VendorError> {
        let (api, job) = split_vendor_job_id(vendor_job_id)?;
        let status = match api {
            Api::Expense => {
                let out = self
                    .client
                    .get_expense_analysis()
                    .job_id(job)
                    .max_results(1)
                    .send()
                    .await
                    .map_err(classify)?;
                status_of(out.job_status(), out.status_message())
            }
            Api::Analysis => {
                let out = self
                    .client
                    .get_document_analysis()
                    .job_id(job)
                    .max_results(1)
                    .send()
                    .await
                    .map_err(classify)?;
                status_of(out.job_status(), out.status_message())
            }
            Api::Text | Api::Id => {
                let out = self
                    .client
                    .get_document_text_detection()
                    .job_id(job)
                    .max_results(1)
                    .send()
                    .await
                    .map_err(classify)?;
                status_of(out.job_status(), out.status_message())
            }
        };
        Ok(VendorJob {
            id: vendor_job_id.to_owned(),
            status,
            retry_after: None,
        })
    }

    /// Every page of the result, merged: `Blocks` (or `ExpenseDocuments`) appended in order, each
    /// item as Textract sent it.
    async fn fetch_result(&self, vendor_job_id: &str) -> Result<Vec<u8>, VendorError> {
        let (api, job) = split_vendor_job_id(vendor_job_id)?;
        let key = match api {
            Api::Expense => "ExpenseDocuments",
            _ => "Blocks",
        };
        let mut merged = json!({});
        let mut items: Vec<Value> = Vec::new();
        let mut next: Option<String> = None;
        // The pages' own bytes, summed: the merged payload is about as large.
        let mut read = 0usize;
        loop {
            let keep = KeepBody::default();
            let (status, message, token) = match api {
                Api::Expense => {
                    let out = self
                        .client
                        .get_expense_analysis()
                        .job_id(job)
                        .set_next_token(next.clone())
                        .customize()
                        .interceptor(keep.clone())
                        .send()
                        .await
                        .map_err(classify)?;
                    (
                        out.job_status().cloned(),
                        out.status_message().map(str::to_owned),
                        out.next_token().map(str::to_owned),
                    )
                }
                Api::Analysis => {
                    let out = self
                        .client
                        .get_document_analysis()
                        .job_id(job)
                        .set_next_token(next.clone())
                        .customize()
                        .interceptor(keep.clone())
                        .send()
                        .await
                        .map_err(classify)?;
                    (
                        out.job_status().cloned(),
                        out.status_message().map(str::to_owned),
                        out.next_token().map(str::to_owned),
                    )
                }
                Api::Text | Api::Id => {
                    let out = self
                        .client
                        .get_document_text_detection()
                        .job_id(job)
                        .set_next_token(next.clone())
                        .customize()
                        .interceptor(keep.clone())
                        .send()
                        .await
                        .map_err(classify)?;
                    (
                        out.job_status().cloned(),
                        out.status_message().map(str::to_owned),
                        out.next_token().map(str::to_owned),
                    )
                }
            };
            if status_of(status.as_ref(), message.as_deref()) != VendorStatus::Succeeded {
                return Err(VendorError::Rejected {
                    status: 409,
                    code: "not_succeeded".into(),
                    message: format!("the job is {status:?}, not SUCCEEDED"),
                });
            }
            let raw = keep.take().ok_or_else(|| VendorError::Unreadable {
                status: 200,
                detail: "the response body was not kept".into(),
            })?;
            read += raw.len();
            if read > self.max_result_bytes {
                return Err(VendorError::TooLarge {
                    limit: self.max_result_bytes,
                    size: None,
                });
            }
            let mut page: Value =
                serde_json::from_slice(&raw).map_err(|e| VendorError::Unreadable {
                    status: 200,
                    detail: e.to_string(),
                })?;
            if let Some(list) = page.get_mut(key).and_then(Value::as_array_mut) {
                items.append(list);
            }
            if let Some(object) = page.as_object_mut() {
                object.remove(key);
                object.remove("NextToken");
                // The first page's metadata stands for the whole result.
                if merged.as_object().is_some_and(|m| m.is_empty()) {
                    merged = Value::Object(object.clone());
                }
            }
            match token {
                Some(t) if !t.is_empty() => next = Some(t),
                _ => break,
            }
        }
        merged[key] = Value::Array(items);
        serde_json::to_vec(&merged).map_err(|e| VendorError::Protocol(e.to_string()))
    }

    async fn refresh_credentials(&self) {
        // The function's role: the SDK refreshes its credentials itself.
    }

    fn notice_from_queue(&self, body: &str) -> Option<Result<crate::queue::ResultNotice, String>> {
        let channel = self.channel.as_ref()?;
        Some(
            notice_from_sns(body, &channel.topic_arn)
                .map_err(|e| e.to_string())
                .and_then(|n| {
                    Ok(crate::queue::ResultNotice {
                        job_id: crate::job::JobId::parse(&n.job_tag)
                            .map_err(|e| format!("the JobTag names no job of ours: {e}"))?,
                        vendor_job_id: n.vendor_job_id,
                        status: n.status.to_ascii_lowercase(),
                        vendor_timestamp: None,
                        // Delivered inside AWS through a topic only Textract's role publishes to.
                        event_id: Some(n.message_id),
                        vendor: Some(crate::vendors::select::VendorKind::Textract.as_str().into()),
                    })
                }),
        )
    }

    fn normalize(
        &self,
        raw: &[u8],
        job_id: &str,
        vendor_job_id: &str,
        profile: &Profile,
    ) -> Result<super::normalize::Normalized, super::normalize::NormalizeError> {
        normalize::normalize(raw, job_id, vendor_job_id, profile)
    }
}

/// What parse needs from a Textract notification: the job it names and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Our job id, from `JobTag`.
    pub job_tag: String,
    /// Our vendor job id (`api:JobId`).
    pub vendor_job_id: String,
    /// `SUCCEEDED`, `FAILED`, `ERROR` — or anything else Textract may send.
    pub status: String,
    /// The SNS message id: unique per notification, for deduplication.
    pub message_id: String,
}

/// Why a message on the Textract queue is not a notification of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    #[error("not an SNS notification: {0}")]
    NotSns(String),
    #[error("from topic {actual}, not {expected}")]
    WrongTopic { expected: String, actual: String },
    #[error("not a Textract completion message: {0}")]
    NotTextract(String),
}

/// Reads the SNS envelope an SQS subscription delivers, checks that it comes from `topic_arn`,
/// and reads Textract's message inside it.
pub fn notice_from_sns(body: &str, topic_arn: &str) -> Result<Notification, NotificationError> {
    let envelope: Value =
        serde_json::from_str(body).map_err(|e| NotificationError::NotSns(e.to_string()))?;
    if envelope["Type"] != "Notification" {
        return Err(NotificationError::NotSns("Type is not Notification".into()));
    }
    let topic = envelope["TopicArn"].as_str().unwrap_or_default();
    if topic != topic_arn {
        return Err(NotificationError::WrongTopic {
            expected: topic_arn.to_owned(),
            actual: topic.to_owned(),
        });
    }
    let message: Value = serde_json::from_str(envelope["Message"].as_str().unwrap_or_default())
        .map_err(|e| NotificationError::NotTextract(e.to_string()))?;
    let (Some(job), Some(api), Some(status)) = (
        message["JobId"].as_str(),
        message["API"].as_str().and_then(Api::from_start_operation),
        message["Status"].as_str(),
    ) else {
        return Err(NotificationError::NotTextract(
            "JobId, API or Status missing".into(),
        ));
    };
    Ok(Notification {
        job_tag: message["JobTag"].as_str().unwrap_or_default().to_owned(),
        vendor_job_id: vendor_job_id(api, job),
        status: status.to_owned(),
        message_id: envelope["MessageId"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(topic: &str, message: Value) -> String {
        json!({
            "Type": "Notification", "MessageId": "m-1", "TopicArn": topic,
            "Message": message.to_string(), "Timestamp": "2026-01-01T00:00:00.000Z",
        })
        .to_string()
    }

    #[test]
    fn notifications_are_read_from_their_topic_only() {
        let topic = "arn:aws:sns:us-east-1:123456789012:AmazonTextract-x";
        let message = json!({
            "JobId": "j1", "Status": "SUCCEEDED", "API": "StartExpenseAnalysis",
            "JobTag": "doc-1", "Timestamp": 1, "DocumentLocation": {"S3ObjectName": "k", "S3Bucket": "b"},
        });
        let notice = notice_from_sns(&envelope(topic, message.clone()), topic).unwrap();
        assert_eq!(notice.vendor_job_id, "expense:j1");
        assert_eq!(notice.job_tag, "doc-1");
        assert_eq!(notice.status, "SUCCEEDED");
        assert!(matches!(
            notice_from_sns(&envelope("arn:aws:sns:us-east-1:1:other", message), topic),
            Err(NotificationError::WrongTopic { .. })
        ));
        assert!(matches!(
            notice_from_sns(r#"{"job_id":"doc-1"}"#, topic),
            Err(NotificationError::NotSns(_))
        ));
        assert!(matches!(
            notice_from_sns(
                &envelope(
                    topic,
                    json!({"JobId": "j", "Status": "X", "API": "AnalyzeID"})
                ),
                topic
            ),
            Err(NotificationError::NotTextract(_))
        ));
    }

    #[test]
    fn only_succeeded_is_success() {
        assert_eq!(
            status_of(Some(&JobStatus::Succeeded), None),
            VendorStatus::Succeeded
        );
        assert!(matches!(
            status_of(Some(&JobStatus::Failed), Some("bad")),
            VendorStatus::Failed { .. }
        ));
        assert!(matches!(
            status_of(Some(&JobStatus::PartialSuccess), None),
            VendorStatus::Partial { .. }
        ));
        assert_eq!(
            status_of(Some(&JobStatus::from("SUCCEEDED_V2")), None),
            VendorStatus::Unknown("SUCCEEDED_V2".into())
        );
        assert_eq!(
            status_of(None, None),
            VendorStatus::Unknown("missing".into())
        );
    }

    #[test]
    fn vendor_job_ids_carry_the_api() {
        assert_eq!(vendor_job_id(Api::Analysis, "x-1"), "analysis:x-1");
        assert_eq!(
            split_vendor_job_id("expense:x-1").unwrap(),
            (Api::Expense, "x-1")
        );
        assert!(split_vendor_job_id("x-1").is_err());
    }
}
