use super::*;
use ocrbridge::cost::{JobCost, Prices};
use ocrbridge::inspect::FileType;
use ocrbridge::job::{Inspection, JobId, Profile, Reason, SourceObject, StateChange};

const DAY: u64 = 86_400_000;
const NOW: UnixMillis = UnixMillis(1_800_000_000_000);

/// A job that arrived `days_ago` and went through `path` (state, ms after arrival).
fn job(n: u32, days_ago: u64, pages: u32, path: &[(JobState, u64)]) -> Job {
    let profile = Profile::new("receipt").unwrap();
    // An hour before the day's mark, so that `0` days ago is still inside the week.
    let created_at = UnixMillis(NOW.0 - days_ago * DAY - 3_600_000);
    let mut history = vec![StateChange {
        state: JobState::Received,
        at: created_at,
        reason: None,
    }];
    history.extend(path.iter().map(|(state, after)| StateChange {
        state: *state,
        at: UnixMillis(created_at.0 + after),
        reason: None,
    }));
    let state = history.last().map_or(JobState::Received, |c| c.state);
    let prices = Prices::from_lookup(&|_| None).unwrap();
    let billed = matches!(state, JobState::Completed | JobState::NeedsReview);
    let cost = path
        .iter()
        .any(|(s, _)| *s == JobState::Submitted)
        .then(|| {
            let estimate = JobCost::estimate(&prices, "simulator", "ocr", pages);
            if billed {
                estimate.with_billed_pages(pages)
            } else {
                estimate
            }
        });
    Job {
        id: JobId::parse(&format!("doc-{n:040x}")).unwrap(),
        state,
        version: 1,
        profile,
        content_sha256: String::new(),
        source: SourceObject {
            bucket: "b".into(),
            key: format!("receipts/{n}.pdf"),
            version_id: None,
        },
        created_at,
        state_since: history.last().map_or(created_at, |c| c.at),
        lease: None,
        attempt: None,
        vendor: None,
        vendor_job_id: None,
        reason: matches!(state, JobState::Failed | JobState::Rejected)
            .then(|| Reason::new("pdf_encrypted", "encrypted")),
        inspection: Inspection {
            file_type: Some(FileType::Pdf),
            pages: Some(pages),
            text_layer: Some(true),
            ..Inspection::default()
        },
        result_key: None,
        result_summary: None,
        queued_at: None,
        vendor_failures: 0,
        retry_owed: 0,
        risky_resubmits: u32::from(n == 3),
        resubmit_approved: false,
        orphan_vendor_jobs: Vec::new(),
        history,
        review: None,
        cost,
        benchmark_run: None,
        channel: Some(if n % 2 == 0 { "email" } else { "scanner" }.into()),
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

fn done(ms: u64) -> Vec<(JobState, u64)> {
    vec![
        (JobState::Queued, 10),
        (JobState::Submitted, 20),
        (JobState::Completed, ms),
    ]
}

fn jobs() -> Vec<Job> {
    vec![
        // Last week: two completed, one rejected.
        job(1, 9, 1, &done(4_000)),
        job(2, 10, 1, &done(6_000)),
        job(5, 8, 1, &[(JobState::Rejected, 5)]),
        // This week: three completed (one of 3 pages), one failed after submission.
        job(3, 1, 1, &done(1_000)),
        job(4, 2, 1, &done(2_000)),
        job(6, 3, 3, &done(9_000)),
        job(
            7,
            0,
            2,
            &[
                (JobState::Queued, 10),
                (JobState::Submitted, 20),
                (JobState::Failed, 500),
            ],
        ),
        // Too old for either week.
        job(8, 20, 1, &done(1_000)),
    ]
}

#[test]
fn weeks_are_the_seven_days_before_the_end_and_the_seven_before_those() {
    let (this, last) = Week::ending(NOW);
    assert_eq!(this.until, NOW);
    assert_eq!(this.since.0, NOW.0 - 7 * DAY);
    assert_eq!(last.until, this.since);
    assert_eq!(last.since.0, NOW.0 - 14 * DAY);
    assert!(this.contains(this.since) && !this.contains(this.until));
}

#[test]
fn volume_counts_documents_and_pages_by_outcome_per_week() {
    let (this, last) = Week::ending(NOW);
    let all = jobs();
    let t = week_figures(&all, this, &Counted::default(), &[], None);
    let l = week_figures(&all, last, &Counted::default(), &[], None);
    assert_eq!(
        (
            t.volume.arrived,
            t.volume.submitted,
            t.volume.completed,
            t.volume.failed
        ),
        (4, 4, 3, 1)
    );
    assert_eq!(
        (
            t.volume.pages_arrived,
            t.volume.pages_completed,
            t.volume.pages_failed
        ),
        (7, 5, 2)
    );
    assert_eq!(
        (
            l.volume.arrived,
            l.volume.submitted,
            l.volume.completed,
            l.volume.rejected
        ),
        (3, 2, 2, 1)
    );
}

#[test]
fn latency_percentiles_are_by_profile_and_page_bucket() {
    let (this, last) = Week::ending(NOW);
    let all = jobs();
    let t = week_figures(&all, this, &Counted::default(), &[], None);
    let one_page = t.latency.iter().find(|r| r.pages == "1").unwrap();
    assert_eq!(one_page.documents, 2);
    assert_eq!(
        (one_page.p50_ms, one_page.p95_ms, one_page.p99_ms),
        (1_000, 2_000, 2_000)
    );
    let three = t.latency.iter().find(|r| r.pages == "2-5").unwrap();
    assert_eq!((three.documents, three.p50_ms), (1, 9_000));
    let l = week_figures(&all, last, &Counted::default(), &[], None);
    assert_eq!(l.latency.len(), 1);
    assert_eq!(l.latency[0].p50_ms, 4_000);
}

#[test]
fn failures_name_reason_document_type_and_source() {
    let (this, last) = Week::ending(NOW);
    let all = jobs();
    let t = week_figures(&all, this, &Counted::default(), &[], None);
    assert_eq!(
        t.failures,
        [FailureRow {
            reason: "pdf_encrypted".into(),
            document_type: "pdf_text".into(),
            source: "scanner".into(),
            count: 1
        }]
    );
    let l = week_figures(&all, last, &Counted::default(), &[], None);
    assert_eq!(l.failures.len(), 1);
}

#[test]
fn cost_lines_and_duplicates_are_the_weeks_own() {
    let (this, _) = Week::ending(NOW);
    let all = jobs();
    let counted = Counted {
        reuploads_deduplicated: 2.0,
        ..Counted::default()
    };
    let t = week_figures(&all, this, &counted, &[], None);
    let line = &t.cost_by_line[0];
    assert_eq!(line.key, ["simulator", "ocr", "receipt"]);
    assert_eq!((line.documents, line.pages), (3, 5));
    let sources: Vec<&str> = t.cost_by_source.iter().map(|r| r.key[0].as_str()).collect();
    assert_eq!(sources, ["email", "scanner"]);
    assert_eq!(t.duplicates.risky_resubmits, 1);
    assert_eq!(t.duplicates.reuploads_deduplicated, 2.0);
}

#[test]
fn quality_is_the_weeks_last_scored_run() {
    let (this, last) = Week::ending(NOW);
    let row = |id: &str, days_ago: u64, regressions: Option<&str>| RunRow {
        run_id: id.into(),
        state: "scored".into(),
        pack: Some("receipts".into()),
        vendor: Some("simulator".into()),
        documents: Some(10),
        scored_at_ms: Some(NOW.0 - days_ago * DAY),
        regressions: regressions.map(str::to_owned),
        baseline_run: Some("base".into()),
        report: None,
    };
    let runs = [
        row("r1", 9, None),
        row("r2", 3, Some("receipt.total, receipt.date")),
        row("r3", 5, None),
    ];
    let t = week_figures(&[], this, &Counted::default(), &runs, None)
        .quality
        .unwrap();
    assert_eq!(t.run, "r2");
    assert_eq!(t.regressions, ["receipt.total", "receipt.date"]);
    let l = week_figures(&[], last, &Counted::default(), &runs, None)
        .quality
        .unwrap();
    assert_eq!(l.run, "r1");
}

/// The week by language and handwriting: rows from the segments parse recorded, with the share
/// sent to review; the Review section prices the console's time. Both rendered.
#[test]
fn the_report_reads_review_by_language_and_prices_the_reviewers_time() {
    use ocrbridge::language::{Handwriting, TextSegments};
    let (this, last) = Week::ending(NOW);
    let mut all = jobs();
    let text = |language: Option<&str>, handwriting| {
        Some(TextSegments {
            language: language.map(str::to_owned),
            script: None,
            handwriting,
        })
    };
    // This week: two German (one to review, reviewed for 30 minutes), one unknown, one Tagalog.
    all[3].text = text(Some("de"), Handwriting::None);
    all[4].text = text(Some("de"), Handwriting::None);
    let at = UnixMillis(all[4].created_at.0 + 1_500);
    all[4].history.insert(
        3,
        StateChange {
            state: JobState::NeedsReview,
            at,
            reason: Some("needs_review".into()),
        },
    );
    all[4].review = Some(r#"{"decision":"approve","by":"ana","at_ms":0,"seconds":1800}"#.into());
    all[5].text = text(None, Handwriting::Unknown);
    all[6].text = text(Some("tl"), Handwriting::Some);
    // Last week: one German, settled directly.
    all[0].text = text(Some("de"), Handwriting::None);
    let this_week = week_figures(&all, this, &Counted::default(), &[], Some(60.into()));
    let last_week = week_figures(&all, last, &Counted::default(), &[], Some(60.into()));
    let row = |l: &str, h: &str, settled, needs_review| SegmentRow {
        language: l.into(),
        handwriting: h.into(),
        settled,
        needs_review,
    };
    assert_eq!(
        this_week.segments,
        [row("de", "none", 2, 1), row("unknown", "unknown", 1, 0)],
        "the failed Tagalog document never settled"
    );
    let report = Report {
        stack: "dev".into(),
        list_prices_as_of: "2026-01-01",
        this_week,
        last_week,
    };
    let text = markdown::render(&report);
    assert!(text.contains("## Language and handwriting"), "{text}");
    assert!(text.contains("| de | none | 1 → 2 | 0% → 50% |"), "{text}");
    assert!(
        text.contains("| unknown | unknown | 0 → 1 | - → 0% |"),
        "{text}"
    );
    assert!(
        text.contains("| review hours (console) | 0.00 | 0.50 |"),
        "{text}"
    );
    assert!(text.contains("| review (USD) | 0.00 | 30.00 |"), "{text}");
}

#[test]
fn the_page_draws_a_bar_per_week_and_row_and_escapes_labels() {
    let (this, last) = Week::ending(NOW);
    let all = jobs();
    let report = Report {
        stack: "<dev>".into(),
        list_prices_as_of: "2026-01-01",
        this_week: week_figures(&all, this, &Counted::default(), &[], None),
        last_week: week_figures(&all, last, &Counted::default(), &[], None),
    };
    let page = html::render(&report);
    assert!(page.contains("&lt;dev&gt;") && !page.contains("<dev>"));
    // Seven document lines (arrived, submitted, five outcomes), two bars each.
    let documents = page
        .split(r#"<figure id="chart-documents">"#)
        .nth(1)
        .unwrap()
        .split("</figure>")
        .next()
        .unwrap();
    assert_eq!(documents.matches("<rect class=\"bar").count(), 14);
    assert!(page.contains("<table>"));
    let text = markdown::render(&report);
    assert!(
        text.contains("| documents arrived | 3 | 4 | +1 (+33%) |"),
        "{text}"
    );
}

#[test]
fn benchmark_documents_are_not_the_weeks_traffic() {
    let (this, _) = Week::ending(NOW);
    let mut all = jobs();
    let before = week_figures(&all, this, &Counted::default(), &[], None);
    let mut scored = job(9, 1, 1, &done(50));
    scored.benchmark_run = Some(ocrbridge::job::BenchmarkRun::parse("run-1").unwrap());
    all.push(scored);
    let after = week_figures(&all, this, &Counted::default(), &[], None);
    assert_eq!(after.volume, before.volume);
    assert_eq!(after.latency, before.latency);
}

#[test]
fn a_reviewed_jobs_latency_ends_at_its_result_not_at_the_approval() {
    let (this, _) = Week::ending(NOW);
    let reviewed = job(
        10,
        1,
        1,
        &[
            (JobState::Queued, 10),
            (JobState::Submitted, 20),
            (JobState::NeedsReview, 3_000),
            (JobState::Completed, 7_200_000),
        ],
    );
    let t = week_figures(&[reviewed], this, &Counted::default(), &[], None);
    assert_eq!(
        t.latency[0].p99_ms, 3_000,
        "a person's review is not the pipeline's latency"
    );
}
