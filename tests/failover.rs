//! Issue #29: routes of vendors, failing over on a breaker, exactly-once across vendors — on the
//! local stack, the first vendor the simulator's own API and the second the Azure twin, each
//! behind a simulator of its own, so that an outage at one leaves the other alone.

use std::time::Duration;

use ocrbridge::breaker::BreakerPolicy;
use ocrbridge::job::{Job, JobId, JobState};
use ocrbridge::vendors::select::VendorKind;
use ocrbridge_local::pipeline::{FallbackVendor, Pipeline, PipelineOptions};
use ocrbridge_tests::{
    job_id_for, run_until_settled, set_faults, sim_stats, stack, text_pdf, TestStack,
};
use serde_json::json;
use vendor_sim::RunningSim;

const ROUTES: &str = "receipt=sim,azure";

async fn routed(s: &TestStack, breaker: BreakerPolicy) -> Pipeline {
    Pipeline::start(
        s.clients.clone(),
        &s.stack,
        PipelineOptions {
            vendor: VendorKind::Sim,
            fallback: Some(FallbackVendor {
                vendor: VendorKind::Azure,
                routes: ROUTES.into(),
            }),
            breaker: Some(breaker),
            reconcile_every: Duration::from_secs(3),
            ..PipelineOptions::default()
        },
    )
    .await
    .expect("the pipeline starts")
}

fn receipt(n: usize) -> Vec<u8> {
    text_pdf(&[
        &format!("CORNER SHOP {n}"),
        "Date: 14/11/2026",
        "Coffee 2 x 4.00 8.00",
        "Total: 8.00",
    ])
}

async fn upload(s: &TestStack, range: std::ops::Range<usize>) -> Vec<JobId> {
    let mut ids = Vec::new();
    for n in range {
        let bytes = receipt(n);
        s.put(&format!("receipts/r{n}.pdf"), bytes.clone(), None)
            .await;
        ids.push(job_id_for(&bytes, "receipt"));
    }
    ids
}

async fn billed(sim: &RunningSim) -> u64 {
    sim_stats(sim).await["billed_documents"]
        .as_u64()
        .unwrap_or(0)
}

fn fallback_sim(p: &Pipeline) -> &RunningSim {
    p.fallback_sim.as_ref().expect("a second vendor")
}

fn assert_done(jobs: &[Job], ids: &[JobId]) {
    assert_eq!(jobs.len(), ids.len());
    for job in jobs {
        assert!(
            matches!(job.state, JobState::Completed | JobState::NeedsReview),
            "{job:?}"
        );
    }
}

/// The first vendor goes down (every call 503): its breaker opens after `min_calls`, and new
/// submissions go to the route's next vendor; every document is read once, by one of them.
/// When the first is back, the half-open probe closes its breaker and traffic returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_sends_new_documents_to_the_next_vendor_and_recovery_brings_them_back() {
    let s = stack().await;
    let p = routed(
        &s,
        BreakerPolicy {
            error_rate: 0.5,
            min_calls: 3,
            window_minutes: 1,
            cool_down: Duration::from_secs(4),
            probe_lease: Duration::from_secs(4),
        },
    )
    .await;
    set_faults(&p.sim, json!({"seed": 29, "rates": {"server_error": 1.0}})).await;
    let ids = upload(&s, 0..8).await;
    let jobs = run_until_settled(&p, &s.ledger, &ids, Duration::from_secs(90)).await;
    assert_done(&jobs, &ids);
    let refused = sim_stats(&p.sim).await["faults_injected"]["server_error"]
        .as_u64()
        .unwrap_or(0);
    eprintln!(
        "outage: the first vendor answered {refused} calls with 5xx before its breaker opened"
    );
    // Nothing got past the outage at the first vendor; the second read each document once.
    assert_eq!(billed(&p.sim).await, 0);
    assert_eq!(billed(fallback_sim(&p)).await, 8);
    for job in &jobs {
        assert_eq!(job.vendor.as_deref(), Some("azure"), "{job:?}");
        assert!(
            job.vendor_job_id
                .as_deref()
                .is_some_and(|op| op.starts_with(&fallback_sim(&p).base_url())),
            "{job:?}"
        );
    }
    let recorded = p.submit.metrics.recorded();
    let fell_back = recorded
        .get("FallbackSubmissions[receipt,sim,azure,breaker_open]")
        .copied()
        .unwrap_or(0.0);
    assert_eq!(
        fell_back, 8.0,
        "every document went to the second: {recorded:?}"
    );
    assert!(
        recorded.get("BreakerTransitions[sim,open]").copied() >= Some(1.0),
        "{recorded:?}"
    );
    // The first vendor is back: after the cool-down one probe goes to it and closes its
    // breaker (while the probe is out, others still go to the second), and the documents go
    // to it again.
    set_faults(&p.sim, json!({"seed": 29, "rates": {}})).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let probe = upload(&s, 8..9).await;
    let jobs = run_until_settled(&p, &s.ledger, &probe, Duration::from_secs(60)).await;
    assert_done(&jobs, &probe);
    assert_eq!(
        jobs[0].vendor.as_deref(),
        Some("sim"),
        "the probe: {:?}",
        jobs[0]
    );
    let later = upload(&s, 9..12).await;
    let jobs = run_until_settled(&p, &s.ledger, &later, Duration::from_secs(60)).await;
    assert_done(&jobs, &later);
    for job in &jobs {
        assert_eq!(job.vendor.as_deref(), Some("sim"), "{job:?}");
    }
    assert_eq!(billed(&p.sim).await, 4);
    assert_eq!(billed(fallback_sim(&p)).await, 8);
    let recorded = p.submit.metrics.recorded();
    assert!(
        recorded.get("BreakerTransitions[sim,closed]").copied() >= Some(1.0),
        "{recorded:?}"
    );
}

/// A submission whose answer was lost at the first vendor (accepted, then the connection
/// dropped; the look-up that follows fails too), and whose failure opened that vendor's breaker:
/// the route would now choose the second vendor, but the job may already be at the first. It is
/// resolved there — looked up by its key and adopted — and never sent to the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresolved_attempt_is_resolved_at_its_vendor_before_the_route_moves_on() {
    let s = stack().await;
    let p = routed(
        &s,
        BreakerPolicy {
            error_rate: 0.5,
            // The lost answer alone opens it.
            min_calls: 1,
            window_minutes: 1,
            cool_down: Duration::from_secs(120),
            probe_lease: Duration::from_secs(120),
        },
    )
    .await;
    // The submission (the simulator's first request) is accepted and its answer dropped; the
    // look-up submit makes at once (the second) fails, so the attempt stays unresolved.
    let job = job_id_for(&receipt(0), "receipt");
    set_faults(
        &p.sim,
        json!({"seed": 29, "rates": {}, "force": {
            "drop": [{"subject": job.as_str()}],
            "server_error": [{"request": 2}],
        }}),
    )
    .await;
    let ids = upload(&s, 0..1).await;
    let jobs = run_until_settled(&p, &s.ledger, &ids, Duration::from_secs(60)).await;
    assert_done(&jobs, &ids);
    let stats = sim_stats(&p.sim).await;
    assert_eq!(stats["faults_injected"]["drop"], 1, "{stats}");
    let recorded = p.submit.metrics.recorded();
    assert!(
        recorded.get("BreakerTransitions[sim,open]").copied() >= Some(1.0),
        "the first vendor's breaker opened: {recorded:?}"
    );
    // Read once, by the vendor that had it; the second never saw it.
    assert_eq!(billed(&p.sim).await, 1);
    assert_eq!(billed(fallback_sim(&p)).await, 0);
    assert_eq!(jobs[0].vendor.as_deref(), Some("sim"), "{:?}", jobs[0]);
    assert_eq!(jobs[0].risky_resubmits, 0);
    assert_eq!(
        recorded
            .get("FallbackSubmissions[receipt,sim,azure,breaker_open]")
            .copied(),
        None,
        "{recorded:?}"
    );
}
