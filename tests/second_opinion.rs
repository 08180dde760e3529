//! Issue #29, item 4: a result that would go to review for a rule `SECOND_OPINION` names is read
//! again by the next vendor of its route — on the local stack, the first vendor the simulator's
//! own API and the second the Azure twin, each behind a simulator of its own.

use std::time::Duration;

use ocrbridge::cost::{report, Spend};
use ocrbridge::job::{Job, JobId, JobState};
use ocrbridge::second_opinion::{child_key, Outcome};
use ocrbridge::vendors::select::VendorKind;
use ocrbridge_local::pipeline::{FallbackVendor, Pipeline, PipelineOptions};
use ocrbridge_tests::{
    job_id_for, run_until, run_until_settled, set_faults, sim_stats, stack, text_pdf, TestStack,
};
use serde_json::json;
use vendor_sim::RunningSim;

async fn billed(sim: &RunningSim) -> u64 {
    sim_stats(sim).await["billed_documents"]
        .as_u64()
        .unwrap_or(0)
}

fn receipt(shop: &str, subtotal: &str, tax: &str, total: &str) -> Vec<u8> {
    text_pdf(&[
        shop,
        "Date: 14/11/2026",
        &format!("Subtotal: {subtotal}"),
        &format!("Tax: {tax}"),
        &format!("Total: {total}"),
    ])
}

/// A merchant name of letters only (the simulator takes a line of words as the merchant), one
/// per run and document.
fn merchant(salt: &str, n: usize) -> String {
    let letters: String = format!("{salt}{n:02}")
        .chars()
        .filter_map(|c| c.to_digit(16))
        .map(|d| char::from(b'A' + d as u8))
        .collect();
    format!("CORNER SHOP {letters}")
}

/// A route of two vendors, the simulator's API then the Azure twin, each behind a simulator of
/// its own, with `SECOND_OPINION=receipt:total_mismatch`.
async fn second_opinion_pipeline(s: &TestStack, crash_redelivery: Option<Duration>) -> Pipeline {
    let defaults = PipelineOptions::default();
    Pipeline::start(
        s.clients.clone(),
        &s.stack,
        PipelineOptions {
            vendor: VendorKind::Sim,
            fallback: Some(FallbackVendor {
                vendor: VendorKind::Azure,
                routes: "receipt=sim,azure".into(),
            }),
            environment: vec![("SECOND_OPINION".into(), "receipt:total_mismatch".into())],
            reconcile_every: Duration::from_secs(3),
            crash_redelivery: crash_redelivery.unwrap_or(defaults.crash_redelivery),
            ..defaults
        },
    )
    .await
    .expect("the pipeline starts")
}

fn job<'a>(jobs: &'a [Job], id: &JobId) -> &'a Job {
    jobs.iter()
        .find(|j| &j.id == id)
        .unwrap_or_else(|| panic!("job {id} exists"))
}

/// Three receipts through a route of two vendors with `SECOND_OPINION` on:
/// - one whose printed total is not its parts' sum (`total_mismatch` at both vendors): the
///   second vendor reads it the same, and the job completes on the agreement;
/// - one the first vendor's silently updated model reads with the decimal point moved (90.00
///   for 9.00, `total_mismatch`): the second reads the printed total, and the job stays in
///   review with both values;
/// - one that adds up: no second opinion is asked.
///
/// Each second reading is one job of its own, billed once at the second vendor and labelled
/// `second_pass`; the first vendor bills each document once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_for_review_is_read_again_by_the_next_vendor_and_decided_by_both() {
    let s = stack().await;
    let p = second_opinion_pipeline(&s, None).await;

    // Phase 1, both vendors' models as shipped.
    let mismatched = receipt("CORNER SHOP", "8.00", "0.80", "9.00");
    let sound = receipt("PAPER MILL", "8.00", "1.00", "9.00");
    s.put("receipts/mismatched.pdf", mismatched.clone(), None)
        .await;
    s.put("receipts/sound.pdf", sound.clone(), None).await;
    let agreed_id = job_id_for(&mismatched, "receipt");
    let sound_id = job_id_for(&sound, "receipt");
    let agreed_child = child_key(&agreed_id).job_id();
    let jobs = run_until_settled(
        &p,
        &s.ledger,
        &[agreed_id.clone(), sound_id.clone(), agreed_child.clone()],
        Duration::from_secs(90),
    )
    .await;
    assert_eq!(jobs.len(), 3, "{jobs:#?}");

    let sound_job = job(&jobs, &sound_id);
    assert_eq!(sound_job.state, JobState::Completed, "{sound_job:#?}");
    assert_eq!(sound_job.second_opinion, None);
    let sound_child = s
        .ledger
        .get_job(&child_key(&sound_id).job_id())
        .await
        .unwrap();
    assert_eq!(sound_child, None, "a result that adds up asks nobody");

    let agreed = job(&jobs, &agreed_id);
    assert_eq!(agreed.state, JobState::Completed, "{agreed:#?}");
    let opinion = agreed.second_opinion.as_ref().expect("an opinion recorded");
    assert_eq!(opinion.outcome, Outcome::Agreed, "{opinion:#?}");
    assert_eq!(opinion.vendor, "azure");
    assert_eq!(opinion.job_id, agreed_child);
    let total = opinion
        .readings
        .iter()
        .find(|r| r.field == "total")
        .expect("the total compared");
    assert!(
        total.same && total.first.as_deref().is_some_and(|t| t.starts_with("9")),
        "{total:?}"
    );
    assert_eq!(
        agreed.reason.as_ref().map(|r| r.code.as_str()),
        Some("second_opinion_agreed")
    );
    let child = job(&jobs, &agreed_child);
    assert_eq!(child.state, JobState::Completed, "{child:#?}");
    assert_eq!(child.second_opinion_of.as_ref(), Some(&agreed_id));
    assert_eq!(child.vendor.as_deref(), Some("azure"));

    // Phase 2: the first vendor's model now reads totals ten times too large.
    set_faults(
        &p.sim,
        json!({"seed": 29, "rates": {}, "model_update": {"field": "total", "share": 1.0}}),
    )
    .await;
    let misread = receipt("HARBOUR CAFE", "8.00", "1.00", "9.00");
    s.put("receipts/misread.pdf", misread.clone(), None).await;
    let disagreed_id = job_id_for(&misread, "receipt");
    let disagreed_child = child_key(&disagreed_id).job_id();
    let jobs = run_until_settled(
        &p,
        &s.ledger,
        &[disagreed_id.clone(), disagreed_child.clone()],
        Duration::from_secs(90),
    )
    .await;
    assert_eq!(jobs.len(), 2, "{jobs:#?}");
    let disagreed = job(&jobs, &disagreed_id);
    assert_eq!(disagreed.state, JobState::NeedsReview, "{disagreed:#?}");
    let opinion = disagreed
        .second_opinion
        .as_ref()
        .expect("an opinion recorded");
    assert_eq!(opinion.outcome, Outcome::Disagreed, "{opinion:#?}");
    let message = &disagreed.reason.as_ref().expect("a reason").message;
    assert!(
        message.contains("total_mismatch: total is 90.00")
            && message.contains("total: 90.00 (sim) / 9.00 (azure) differ"),
        "both values side by side: {message}"
    );

    // Exactly once: the first vendor read each document once, the second each child once.
    assert_eq!(billed(&p.sim).await, 3);
    let second = p.fallback_sim.as_ref().expect("a second vendor");
    assert_eq!(billed(second).await, 2);

    // The children's money is the second pass, never a document's billed average.
    let mut all = Vec::new();
    for id in [
        &agreed_id,
        &sound_id,
        &agreed_child,
        &disagreed_id,
        &disagreed_child,
    ] {
        all.push(s.ledger.get_job(id).await.unwrap().expect("the job"));
    }
    let lines = report(&all);
    let azure_second_pass: usize = lines
        .iter()
        .filter(|((vendor, _, _), _)| vendor == "azure")
        .map(|(_, line)| {
            assert_eq!(
                line.documents, 0,
                "second readings are not documents: {line:?}"
            );
            usize::from(line.spend.contains_key(Spend::SecondPass.as_str()))
        })
        .sum();
    assert_eq!(azure_second_pass, 1, "{lines:?}");
}

/// Every point where asking or settling a second opinion can die or lose an answer — the
/// child's creation, its submit message, the parent's settlement; crashed, or the effect made
/// and its answer lost — on one document each: every parent is decided once, every child is
/// read once at the second vendor, and no document is read twice at the first. A child asked
/// again after a crash is the same child (its id is the parent's), never a second charge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_opinion_interrupted_at_any_point_is_asked_once_and_decided_once() {
    use ocrbridge::failpoints::{self, Action};
    let s = stack().await;
    let p = second_opinion_pipeline(&s, Some(Duration::from_secs(2))).await;
    let salt = ocrbridge_tests::unique_name("so");
    let mut parents = Vec::new();
    let mut armed = Vec::new();
    // Each of the second opinion's points, crashed and with its answer lost; and the parent's
    // parse dying after its child is asked and queued but before it records the ask: the child
    // may then be read before its parent is in review, and the redelivered parse asks again.
    let cases = failpoints::SECOND_OPINION
        .iter()
        .flat_map(|p| [(*p, Action::Crash), (*p, Action::Error)])
        .chain([("parse.before_complete", Action::Crash)]);
    for (n, (point, action)) in cases.enumerate() {
        // Printed sums that do not add up: both vendors read them alike, so each parent
        // completes on the agreement.
        let bytes = receipt(&merchant(&salt, n), "8.00", "0.80", "9.00");
        let parent = job_id_for(&bytes, "receipt");
        // Every point is armed for the parent: the one asking, or the one settled.
        let subject = parent.to_string();
        failpoints::arm_more(point, &[(action, subject.clone())]).unwrap();
        armed.push((point.to_string(), subject));
        s.put(&format!("receipts/so-{n}.pdf"), bytes, None).await;
        parents.push(parent);
    }
    // Until every parent's opinion is decided (a parent is settled, in review, before that).
    let parents_now = run_until(&p, &s.ledger, &parents, Duration::from_secs(240), |j| {
        j.second_opinion
            .as_ref()
            .is_some_and(|o| o.outcome != Outcome::Pending)
    })
    .await;
    let fired = failpoints::fired_subjects();
    failpoints::disarm_all();
    let states: Vec<String> = parents_now
        .iter()
        .map(|j| format!("{} {} {:?}", j.id, j.state, j.reason))
        .collect();
    for (point, subject) in &armed {
        assert!(
            fired.contains(&(point.clone(), subject.clone())),
            "{point} never fired for {subject}: the case tested nothing\n{}",
            states.join("\n")
        );
    }
    assert_eq!(parents_now.len(), parents.len());
    let children: Vec<JobId> = parents_now
        .iter()
        .filter_map(|j| j.second_opinion.as_ref().map(|o| o.job_id.clone()))
        .collect();
    let children_now = run_until_settled(&p, &s.ledger, &children, Duration::from_secs(60)).await;
    // Exactly once: the first vendor read each document once, the second each opinion once.
    assert_eq!(billed(&p.sim).await, parents.len() as u64);
    let second = p.fallback_sim.as_ref().expect("a second vendor");
    assert_eq!(
        billed(second).await,
        parents.len() as u64,
        "each second opinion read once"
    );
    for job in &parents_now {
        assert_eq!(job.state, JobState::Completed, "{job:#?}");
        let opinion = job.second_opinion.as_ref().expect("an opinion");
        assert_eq!(opinion.outcome, Outcome::Agreed, "{job:#?}");
        // The child the parent names is the one its id derives from: asked again, the same.
        assert_eq!(opinion.job_id, child_key(&job.id).job_id(), "{job:#?}");
    }
    for child in &children_now {
        assert_eq!(child.state, JobState::Completed, "{child:#?}");
    }
}
