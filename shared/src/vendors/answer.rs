//! A synchronous answer: the vendor read the document during the call and sent the result back
//! in its response (Textract's `AnalyzeExpense`, `AnalyzeDocument`, `DetectDocumentText`,
//! `AnalyzeID` for a one-page document under their limits).
//!
//! Nothing completes later and nothing is polled: submit archives the answer where parse would
//! have archived a fetched result, records the job `Submitted` with an *answered* vendor job id
//! ([`Answer::vendor_job_id`]) and tells parse at once. Parse and reconcile recognise the id
//! ([`is_answered`]): its status is "succeeded" without asking anyone ([`status`]), and its
//! result is read back from the archive ([`archive_of`]), never from the vendor, which keeps
//! nothing.
//!
//! What a synchronous call cannot do is be deduplicated: it has no idempotency token and no
//! job to look up, so an answer lost on the way (a timeout, a dropped connection, a worker killed
//! mid-call) is resolved by the ambiguity policy's fallback alone
//! ([`super::Capabilities::synchronous`]): hold the job for a person, or resubmit counted as a
//! possible second charge. The attempt says which kind of call it was
//! ([`crate::job::Attempt::call`]), so the next holder resolves it as what it was.

use crate::blob::ObjectRef;
use crate::job::JobId;

use super::{Vendor, VendorError, VendorJob, VendorStatus};

/// What every answered vendor job id starts with.
const PREFIX: &str = "answered:";

/// The archived answer's user metadata naming the vendor's request (`x-amz-meta-…`).
pub const REQUEST_ID_METADATA: &str = "vendor-request-id";

/// A vendor's synchronous answer: the raw result, exactly as sent, and the vendor's name for
/// the request (Textract's `x-amzn-RequestId`: what AWS support asks for), when it gave one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub request_id: Option<String>,
    pub raw: Vec<u8>,
}

/// The vendor job id of the answer to the attempt `attempt_id`:
/// `answered:<attempt id>[:<vendor request id>]`. The attempt says where the answer is archived
/// — so a worker that inherits the attempt finds what its predecessor archived and did not live
/// to record — and the request id is the vendor's name for the call.
pub fn vendor_job_id(attempt_id: &str, request_id: Option<&str>) -> String {
    match request_id {
        Some(request) => format!("{PREFIX}{attempt_id}:{request}"),
        None => format!("{PREFIX}{attempt_id}"),
    }
}

/// Whether `vendor_job_id` names an answer (kept in our archive) rather than a job the vendor
/// keeps.
pub fn is_answered(vendor_job_id: &str) -> bool {
    vendor_job_id.starts_with(PREFIX)
}

/// Where the raw answer of `vendor_job_id` is archived: beside the results parse fetches
/// (`raw/<job>/…`, under the same retention rule), named for the attempt, so two answers for one
/// document (a resubmission) never overwrite each other. `None` for a vendor job the vendor keeps.
pub fn archive_of(results_bucket: &str, job_id: &JobId, vendor_job_id: &str) -> Option<ObjectRef> {
    let named = vendor_job_id.strip_prefix(PREFIX)?;
    let attempt = named.split_once(':').map_or(named, |(attempt, _)| attempt);
    Some(archive_for_attempt(results_bucket, job_id, attempt))
}

/// Where the answer to the attempt `attempt_id` is archived ([`archive_of`]).
pub fn archive_for_attempt(results_bucket: &str, job_id: &JobId, attempt_id: &str) -> ObjectRef {
    // Only what is safe in a key (an attempt id is a UUID; this is for ids from elsewhere).
    let name: String = attempt_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    ObjectRef {
        bucket: results_bucket.to_owned(),
        key: format!("raw/{job_id}/answered-{name}.json.gz"),
        version_id: None,
    }
}

/// The vendor's status for `vendor_job_id`: an answer succeeded when it was given (and nobody is
/// asked); any other id is the vendor's to say.
pub async fn status<V: Vendor>(vendor: &V, vendor_job_id: &str) -> Result<VendorJob, VendorError> {
    if is_answered(vendor_job_id) {
        return Ok(VendorJob {
            id: vendor_job_id.to_owned(),
            status: VendorStatus::Succeeded,
            retry_after: None,
        });
    }
    vendor.status(vendor_job_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_named_and_archived_by_its_attempt() {
        let attempt = "sync-6f1c9a2e-77b0-4c1e-9d55-0d6f0e5d9a11";
        let job = JobId::parse(&format!("doc-{}", "a".repeat(40))).unwrap();
        let expected = format!("raw/{job}/answered-{attempt}.json.gz");
        for request in [Some("b5f0c1d2-aaaa-4bbb-8ccc-0123456789ab"), None] {
            let id = vendor_job_id(attempt, request);
            assert!(is_answered(&id));
            let archive = archive_of("results", &job, &id).unwrap();
            assert_eq!(archive.key, expected, "{id}");
            assert_eq!(archive, archive_for_attempt("results", &job, attempt));
        }
        assert_eq!(
            vendor_job_id(attempt, Some("req-1")),
            format!("answered:{attempt}:req-1")
        );
        assert!(!is_answered("expense:6f1c9a2e"));
        assert_eq!(archive_of("results", &job, "expense:abc"), None);
        let odd = archive_of("results", &job, "answered:a/../b c").unwrap();
        assert_eq!(odd.key, format!("raw/{job}/answered-a____b_c.json.gz"));
    }
}
