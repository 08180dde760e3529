//! What the CLI's unit tests build jobs from.

use ocrbridge::job::{Inspection, Job, JobId, JobState, Profile, SourceObject};
use ocrbridge::time::UnixMillis;

/// Job number `n`: a receipt in review since it arrived at 1 000 ms, nothing else known. Tests
/// set the fields they are about.
pub fn job(n: u32) -> Job {
    Job {
        id: JobId::parse(&format!("doc-{n:040x}")).unwrap(),
        state: JobState::NeedsReview,
        version: 3,
        profile: Profile::new("receipt").unwrap(),
        content_sha256: String::new(),
        source: SourceObject {
            bucket: "b".into(),
            key: format!("in/{n}.pdf"),
            version_id: None,
        },
        created_at: UnixMillis(1_000),
        state_since: UnixMillis(1_000),
        lease: None,
        attempt: None,
        vendor: None,
        vendor_job_id: None,
        reason: None,
        inspection: Inspection::default(),
        result_key: None,
        result_summary: None,
        queued_at: None,
        vendor_failures: 0,
        retry_owed: 0,
        risky_resubmits: 0,
        resubmit_approved: false,
        orphan_vendor_jobs: vec![],
        history: vec![],
        review: None,
        cost: None,
        benchmark_run: None,
        channel: None,
        trace_header: None,
        text: None,
        second_opinion_of: None,
        second_opinion: None,
        prepared: None,
        prep_compute: None,
        parts: None,
        part_of: None,
    }
}
