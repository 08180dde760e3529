//! Issue #30: a PDF past the vendor's page limit goes through as one job, in parts. A 400-page
//! invoice is uploaded to a stack whose vendor reads at most 100 pages a request
//! (`PDF_PART_PAGES=100`; the simulator refuses more, as vendors do): intake cuts it into four
//! parts, each part is a job the vendor reads and bills exactly once, and the last part parsed
//! merges the four results into the document's one result, page numbers in the whole.
//!
//! The run crashes at the writes each guarantee rests on, once each: intake after writing the
//! first part's PDF and after creating the first part's job, parse after recording a part's
//! result and after settling the document. None of them may buy a part twice, lose one, or
//! leave the document unmerged. A second document, of 150 pages, has its second part failed
//! by the vendor: the document cannot be merged whole, and fails saying which part and why. A
//! third, of 120 pages, has its intake fail after queueing its parts and before recording that
//! it waits for them: its parts may be parsed first, and it is merged all the same.

use std::time::Duration;

use ocrbridge::document::{Document, Fields};
use ocrbridge::failpoints::{self, Action};
use ocrbridge::job::{JobId, JobState};
use ocrbridge::parts::{self, Plan};
use ocrbridge_local::pipeline::{Pipeline, PipelineOptions};
use ocrbridge_tests::{job_id_for, results_object, run_until_settled, sim_stats, stack};
use sha2::Digest;
use vendor_sim::faults::{Fault, FaultConfig, Forced};
use vendor_sim::TwinSettings;

const PAGES: u32 = 400;
const LIMIT: u32 = 100;

/// An invoice of `pages` pages: its number and date on the first, its totals on the last
/// (`total`: 400.00 agrees with its subtotal and tax), and every page saying which it is.
fn invoice_of(pages: u32, total: &str) -> Vec<u8> {
    let content: Vec<Vec<String>> = (1..=pages)
        .map(|n| {
            let mut lines = Vec::new();
            if n == 1 {
                lines.extend([
                    "ACME Industrial Supply".to_owned(),
                    "INVOICE".to_owned(),
                    format!("Invoice No: INV-2026-{pages:04}"),
                    "Invoice Date: 2026-11-02".to_owned(),
                ]);
            }
            lines.push(format!("Page {n} of {pages}"));
            lines.push(format!("Item {n} widget assembly"));
            if n == pages {
                lines.extend([
                    "Subtotal: 380.00".to_owned(),
                    "Tax: 20.00".to_owned(),
                    format!("Total: {total}"),
                ]);
            }
            lines
        })
        .collect();
    ocrbridge::pdf_write::text_pdf(&content)
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_page_pdf_goes_through_a_100_page_vendor_as_one_job_billed_once_per_part() {
    let s = stack().await;
    let pdf = invoice_of(PAGES, "400.00");
    let id = job_id_for(&pdf, "invoice");
    let broken = invoice_of(150, "400.00");
    let broken_id = job_id_for(&broken, "invoice");
    let broken_parts: Vec<JobId> = (0..2)
        .map(|i| parts::part_key(&broken_id, i).job_id())
        .collect();
    // Its total disagrees with its subtotal and tax: its merged result goes to review.
    let late = invoice_of(120, "999.00");
    let late_id = job_id_for(&late, "invoice");
    let p = Pipeline::start(
        s.clients.clone(),
        &s.stack,
        PipelineOptions {
            environment: vec![("PDF_PART_PAGES".into(), LIMIT.to_string())],
            twins: TwinSettings {
                max_pages: Some(LIMIT),
                ..TwinSettings::default()
            },
            faults: FaultConfig {
                force: [(
                    Fault::FailedJob,
                    [Forced::Subject(broken_parts[1].to_string())].into(),
                )]
                .into(),
                ..FaultConfig::default()
            },
            crash_redelivery: Duration::from_secs(2),
            // Reconcile looks at a document waiting for its parts this often.
            stuck: Duration::from_secs(5),
            ..PipelineOptions::default()
        },
    )
    .await
    .expect("the pipeline starts");

    let plan = Plan {
        pages: PAGES,
        per_part: LIMIT,
    };
    let part_ids: Vec<JobId> = (0..plan.count())
        .map(|i| parts::part_key(&id, i).job_id())
        .collect();
    let armed = [
        ("intake.after_put_part", &id),
        ("intake.after_create_part", &id),
        ("parse.after_record_part", &part_ids[1]),
        ("parse.after_settle_parts", &id),
    ];
    for (point, subject) in &armed {
        failpoints::arm_more(point, &[(Action::Crash, subject.to_string())]).unwrap();
    }
    failpoints::arm_more(
        "intake.before_mark_in_parts",
        &[(Action::Error, late_id.to_string())],
    )
    .unwrap();
    s.put("invoices/long.pdf", pdf.clone(), Some("application/pdf"))
        .await;
    s.put(
        "invoices/broken.pdf",
        broken.clone(),
        Some("application/pdf"),
    )
    .await;
    s.put("invoices/late.pdf", late.clone(), Some("application/pdf"))
        .await;
    let mut all = vec![id.clone()];
    all.extend(part_ids.iter().cloned());
    all.push(broken_id.clone());
    all.extend(broken_parts.iter().cloned());
    all.push(late_id.clone());
    let jobs = run_until_settled(&p, &s.ledger, &all, Duration::from_secs(240)).await;
    let jobs: Vec<_> = all
        .iter()
        .filter_map(|id| jobs.iter().find(|j| &j.id == id).cloned())
        .collect();
    let fired = failpoints::fired_subjects();
    failpoints::disarm_all();
    for (point, subject) in &armed {
        assert!(
            fired.contains(&(point.to_string(), subject.to_string())),
            "{point} never fired for {subject}: the case tested nothing"
        );
    }
    assert!(
        fired.contains(&(
            "intake.before_mark_in_parts".to_owned(),
            late_id.to_string()
        )),
        "the late document's intake never failed"
    );
    assert_eq!(jobs.len(), all.len(), "some job is missing: {jobs:#?}");

    // The document whose intake failed before it recorded waiting for its parts: merged.
    let late_job = &jobs[8];
    assert_eq!(late_job.state, JobState::NeedsReview, "{late_job:#?}");
    // Counted like a whole document's review: once, by its rule (each part skips the rules).
    let parse_metrics = p.parse.metrics.recorded();
    assert_eq!(
        parse_metrics.get("NeedsReview[total_mismatch]"),
        Some(&1.0),
        "{parse_metrics:?}"
    );
    let late_merged: Document =
        serde_json::from_slice(&results_object(&s, &parts::merged_result_key(&late_id)).await)
            .expect("the late document's merged result");
    assert_eq!(late_merged.pages.len(), 120);
    // And its parts were parsed before it recorded waiting for them (its intake came back
    // through reconcile's resend, after the parts were done): the case this document is for.
    let waiting_since = late_job
        .history
        .iter()
        .find(|c| c.state == JobState::InParts)
        .map(|c| c.at)
        .expect("it entered InParts");
    for index in 0..2 {
        let part = s
            .ledger
            .get_job(&parts::part_key(&late_id, index).job_id())
            .await
            .unwrap()
            .expect("the late document's part");
        assert_eq!(part.state, JobState::Completed, "{part:#?}");
        assert!(
            part.state_since < waiting_since,
            "part {index} was parsed after its document waited: the case tested nothing"
        );
    }

    // The document whose second part the vendor failed: failed, saying which part and why.
    let failed = &jobs[5];
    assert_eq!(failed.state, JobState::Failed, "{failed:#?}");
    let reason = failed.reason.as_ref().expect("a reason");
    assert_eq!(reason.code, "part_failed", "{reason:?}");
    assert!(
        reason.message.contains("part 2 of 2 (pages 101-150)")
            && reason.message.contains("vendor_failed"),
        "{reason:?}"
    );
    assert_eq!(jobs[6].state, JobState::Completed, "{:#?}", jobs[6]);
    assert_eq!(jobs[7].state, JobState::Failed, "{:#?}", jobs[7]);
    assert_eq!(
        failed.result_key, None,
        "a failed document has no merged result"
    );

    // One job for the document, settled with the merged result.
    let document = &jobs[0];
    assert!(
        matches!(document.state, JobState::Completed | JobState::NeedsReview),
        "{document:#?}"
    );
    let recorded = document
        .parts
        .as_ref()
        .expect("the document records its parts");
    assert_eq!((recorded.count, recorded.pages_per_part), (4, LIMIT));
    assert_eq!(recorded.results.len(), 4, "{recorded:?}");
    assert_eq!(
        document.result_key.as_deref(),
        Some(parts::merged_result_key(&id).as_str())
    );

    // Each part: its own job, completed, billed for its own hundred pages.
    for (index, part) in jobs[1..5].iter().enumerate() {
        assert_eq!(part.state, JobState::Completed, "{part:#?}");
        let of = part.part_of.as_ref().expect("a part knows its document");
        assert_eq!((&of.parent, of.index), (&id, index as u32));
        assert_eq!(of.first_page, index as u32 * LIMIT + 1);
        let cost = part.cost.as_ref().expect("a part's cost");
        assert_eq!(cost.pages_billed, Some(LIMIT), "{cost:?}");
    }

    // The vendor: four requests, one per part, each read once; the document itself never
    // sent whole (it would have been refused), nothing refused, nothing bought twice.
    let stored: Vec<String> = s.result_keys(&format!("prepared/{id}/")).await;
    let expected_keys: Vec<String> = (0..4).map(|i| parts::object_key(&id, i, 4)).collect();
    assert_eq!(
        stored, expected_keys,
        "one PDF per part, however often intake ran"
    );
    let again = parts::split(&pdf, &plan).expect("splits");
    for (index, part_id) in part_ids.iter().enumerate() {
        let books = p.sim.sim.books(part_id.as_str());
        assert_eq!(books.len(), 1, "part {index}: {books:#?}");
        assert_eq!(books[0].pages, LIMIT, "part {index}");
        let written = results_object(&s, &expected_keys[index]).await;
        assert_eq!(
            books[0].document_sha256.as_deref(),
            Some(sha(&written).as_str()),
            "part {index}: the vendor read something else"
        );
        assert_eq!(
            sha(&again[index]),
            sha(&written),
            "part {index}: not deterministic"
        );
    }
    assert!(
        p.sim.sim.books(id.as_str()).is_empty(),
        "the whole document was sent"
    );
    let stats = sim_stats(&p.sim).await;
    // The four parts, the failed document's two (its first part read and billed), and the
    // late document's two.
    assert_eq!(stats["billed_documents"].as_u64(), Some(8), "{stats}");
    assert_eq!(
        stats["billed_pages"].as_u64(),
        Some(u64::from(PAGES + 100 + 120)),
        "{stats}"
    );
    assert_eq!(stats["too_many_pages"].as_u64(), Some(0), "{stats}");
    assert_eq!(stats["duplicate_jobs"].as_u64(), Some(0), "{stats}");

    // The merged result: every page once, in order, numbered in the whole document, with the
    // number from the first part and the total from the last, each on its page.
    let merged: Document =
        serde_json::from_slice(&results_object(&s, &parts::merged_result_key(&id)).await)
            .expect("the merged result is a document");
    let numbers: Vec<u32> = merged.pages.iter().map(|p| p.number).collect();
    assert_eq!(numbers, (1..=PAGES).collect::<Vec<_>>());
    for page in &merged.pages {
        let text: Vec<&str> = page
            .blocks
            .iter()
            .flat_map(|b| b.lines.iter().map(|l| l.text.as_str()))
            .collect();
        let marker = format!("Page {} of {PAGES}", page.number);
        assert!(
            text.iter().any(|t| t.contains(&marker)),
            "page {} does not read {marker:?}: {text:?}",
            page.number
        );
    }
    let Fields::Invoice(fields) = &merged.fields else {
        panic!("not an invoice: {:?}", merged.fields)
    };
    let number = fields.invoice_number.as_ref().expect("the invoice number");
    assert_eq!(
        (number.value.as_str(), number.page),
        ("INV-2026-0400", Some(1))
    );
    let total = fields.total.as_ref().expect("the total");
    assert_eq!(total.value.to_string(), "400.00");
    assert_eq!(total.page, Some(PAGES), "{total:?}");
    assert_eq!(
        merged.vendor.job_id.split(',').count(),
        4,
        "{:?}",
        merged.vendor
    );
}
