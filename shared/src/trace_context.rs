//! One trace per document: the X-Ray trace header carried from intake through every queue and
//! into the vendor call.
//!
//! SQS carries a trace as the `AWSTraceHeader` system attribute, and Lambda hands it to the
//! consumer in the record's `attributes`. Each record is handled inside [`within`] its header,
//! and everything sent while handling it — [`crate::queue::Queue`]'s messages, the vendor's HTTP
//! requests (`X-Amzn-Trace-Id`) — carries [`current`]. A document's first record (S3's
//! notification) carries none: intake starts the trace from its invocation's
//! (`_X_AMZN_TRACE_ID`, set by Lambda with active tracing) or, where there is none (the local
//! stack), a new one, and the job keeps it (`trace_header`), so reconcile's messages join the
//! same trace and `ocrbridge jobs show` prints it.

use std::future::Future;

use rand::Rng;

tokio::task_local! {
    static HEADER: Option<String>;
}

/// The SQS system attribute, and the record attribute Lambda passes it in.
pub const SQS_ATTRIBUTE: &str = "AWSTraceHeader";
/// The HTTP header X-Ray reads.
pub const HTTP_HEADER: &str = "X-Amzn-Trace-Id";

/// Runs `work` with `header` as the current trace.
pub async fn within<F: Future>(header: Option<String>, work: F) -> F::Output {
    HEADER.scope(header, work).await
}

/// The trace of the record being handled, if any.
pub fn current() -> Option<String> {
    HEADER.try_with(Clone::clone).ok().flatten()
}

/// The invocation's trace (Lambda sets `_X_AMZN_TRACE_ID` per invocation under active
/// tracing), else a new root: every document gets a trace, on the local stack too.
pub fn invocation_or_new() -> String {
    std::env::var("_X_AMZN_TRACE_ID")
        .ok()
        .filter(|h| root(h).is_some())
        .unwrap_or_else(new_root)
}

/// A new X-Ray trace header: `Root=1-<8 hex: epoch seconds>-<24 hex random>;Sampled=1`.
pub fn new_root() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let random: u128 = rand::rng().random();
    format!(
        "Root=1-{:08x}-{:024x};Sampled=1",
        seconds as u32,
        random & ((1u128 << 96) - 1)
    )
}

/// The trace id (`1-…-…`) of a header, which names the trace in the X-Ray console.
pub fn root(header: &str) -> Option<&str> {
    header
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Root="))
        .filter(|r| r.starts_with("1-") && r.len() == 35)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_root_is_an_x_ray_trace_id() {
        let header = new_root();
        let id = root(&header).expect("a root");
        assert_eq!(id.len(), 35, "{id}");
        assert_eq!(
            root("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"),
            Some("1-5759e988-bd862e3fe1be46a994272793")
        );
        assert_eq!(root("Parent=1;Sampled=0"), None);
    }

    #[tokio::test]
    async fn the_current_trace_is_the_records_and_only_inside_it() {
        assert_eq!(current(), None);
        let inside = within(Some("Root=1-a".into()), async { current() }).await;
        assert_eq!(inside.as_deref(), Some("Root=1-a"));
        assert_eq!(current(), None);
    }
}
