//! The quality benchmark through the real pipeline on the local stack: a run pinned as the
//! baseline, a silent model update in the simulator (200s, same shape, one field read worse on a
//! share of documents), and the paired comparison that must flag exactly that field and profile,
//! name exactly the documents that flipped, and raise `QualityRegression` — while five runs of
//! the unchanged vendor raise nothing. The report is opened in a real headless browser.

use ocrbridge::time::UnixMillis;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ocrbridge::job::BenchmarkRun;
use ocrbridge::quality::pack::Pack;
use ocrbridge::quality::report;
use ocrbridge::vendors::select::VendorKind;
use ocrbridge_local::pipeline::{Pipeline, PipelineOptions};
use ocrbridge_local::quality::{run_once, runner, upload_pack};
use ocrbridge_tests::{set_faults, sim_stats, stack};
use serde_json::json;
use vendor_sim::model_update::ModelUpdate;

/// The CI pack: the default pack's twelve invoices (text PDFs: fast, and read right by the
/// simulator, so a flip is visible) and four scanned receipts (OCR, and wrong in places).
fn small_pack() -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/packs/default");
    let to = std::env::temp_dir()
        .join(format!("quality-pack-{}", std::process::id()))
        .join("ci");
    for (dir, keep) in [
        ("invoices", None),
        ("receipts", Some(["000", "004", "008", "030"])),
    ] {
        std::fs::create_dir_all(to.join(dir)).unwrap();
        for entry in std::fs::read_dir(from.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let stem = name.split('.').next().unwrap();
            // invoices/intl/ (German, French, Spanish) is the language test's.
            if path.is_file() && keep.is_none_or(|k| k.contains(&stem)) {
                std::fs::copy(&path, to.join(dir).join(&name)).unwrap();
            }
        }
    }
    to
}

/// The default pack's German, French and Spanish invoices, beside three English ones.
fn language_pack() -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/packs/default/invoices");
    let to = std::env::temp_dir()
        .join(format!("quality-languages-{}", std::process::id()))
        .join("languages");
    std::fs::create_dir_all(to.join("invoices/intl")).unwrap();
    for entry in std::fs::read_dir(from.join("intl")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(
            &path,
            to.join("invoices/intl").join(path.file_name().unwrap()),
        )
        .unwrap();
    }
    for name in ["inv-001", "inv-004", "inv-012"] {
        for ext in ["pdf", "truth.json"] {
            let file = format!("{name}.{ext}");
            std::fs::copy(from.join(&file), to.join("invoices").join(&file)).unwrap();
        }
    }
    to
}

/// The pack at `dir` run once through a fresh stack and pipeline on `vendor`'s twin, scored.
async fn score_once(dir: &Path, vendor: VendorKind, run: &str) -> ocrbridge::quality::RunRecord {
    score_with(dir, vendor, &[], run).await
}

/// [`score_once`] on a stack with these template parameters.
async fn score_with(
    dir: &Path,
    vendor: VendorKind,
    parameters: &[(&str, &str)],
    run: &str,
) -> ocrbridge::quality::RunRecord {
    let (s, p) = ocrbridge_tests::pipeline_with(vendor, parameters).await;
    let pack = Pack::load(dir).unwrap();
    let prefix = upload_pack(&p, &pack, dir).await.unwrap();
    let runner = runner(&p, &s.stack, vendor.as_str()).unwrap();
    let run = BenchmarkRun::parse(run).unwrap();
    run_once(
        &p,
        &runner,
        &pack.name,
        &prefix,
        &run,
        Duration::from_secs(300),
    )
    .await
    .unwrap()
    .0
}

/// The pack's generated passports and identity cards, as the id profile reads them on the
/// simulator (Tesseract), on the Azure twin (prebuilt-idDocument), on the Textract twin
/// (AnalyzeID, answered in the call) and on the Mindee twin (the catalog's International ID
/// model): every expired one is flagged `document_expired`, every
/// one printed with a wrong check digit `mrz_check_digit`, and the two Tesseract reads cleanly
/// complete. What is known by construction is asserted; what depends on OCR's misreadings (a
/// `Q` for a `0`) is only reported by the benchmark. AnalyzeID reads no sex, nationality or
/// issuing country: those are the MRZ's alone there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_documents_are_checked_by_their_mrz_on_each_twin() {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/packs/default/ids");
    let dir = std::env::temp_dir()
        .join(format!("quality-ids-{}", std::process::id()))
        .join("ids-pack");
    std::fs::create_dir_all(dir.join("ids")).unwrap();
    for entry in std::fs::read_dir(&from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join("ids").join(path.file_name().unwrap())).unwrap();
    }
    let twins: [(VendorKind, &[(&str, &str)]); 4] = [
        (VendorKind::Sim, &[]),
        (VendorKind::Azure, &[]),
        (VendorKind::Textract, &[("TextractSynchronous", "on")]),
        (VendorKind::Mindee, &[]),
    ];
    for (vendor, parameters) in twins {
        let record = score_with(&dir, vendor, parameters, &format!("bq-test-ids-{vendor}")).await;
        assert_eq!(record.documents.len(), 8, "{vendor}");
        let rules = |key: &str| -> (String, Vec<String>) {
            let d = record
                .documents
                .iter()
                .find(|d| d.key == key)
                .unwrap_or_else(|| panic!("{key}"));
            (d.state.clone(), d.rules.clone())
        };
        for key in ["ids/passport-004.png", "ids/idcard-004.png"] {
            let (_, fired) = rules(key);
            assert!(
                fired.iter().any(|r| r == "document_expired"),
                "{vendor} {key}: {fired:?}"
            );
        }
        for key in ["ids/passport-003.png", "ids/idcard-003.png"] {
            let (_, fired) = rules(key);
            assert!(
                fired.iter().any(|r| r == "mrz_check_digit"),
                "{vendor} {key}: {fired:?}"
            );
        }
        for key in ["ids/passport-001.png", "ids/idcard-001.png"] {
            assert_eq!(
                rules(key),
                ("Completed".to_owned(), vec![]),
                "{vendor} {key}"
            );
        }
        let id = &record.scores["id"];
        let read = if vendor == VendorKind::Textract {
            &["date_of_birth", "expiry_date", "document_type"][..]
        } else {
            &[
                "date_of_birth",
                "expiry_date",
                "document_type",
                "sex",
                "nationality",
            ][..]
        };
        for field in read {
            assert_eq!(id.fields[*field].accuracy(), 1.0, "{vendor} {field}");
        }
    }
}

/// The benchmark reads quality per language: each of the pack's languages is its own group
/// with its own field accuracy, and the language the pipeline detected on each job is the one
/// the document is written in (English invoices this short are too few words to say: no
/// language is claimed, never a wrong one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pack_is_scored_per_language_and_each_language_is_detected() {
    let record = score_once(&language_pack(), VendorKind::Sim, "bq-test-languages").await;
    assert_eq!(record.documents.len(), 12);
    let groups: Vec<(&str, u64)> = record
        .by_language
        .iter()
        .map(|(language, scores)| (language.as_str(), scores["invoice"].documents))
        .collect();
    assert_eq!(groups, [("de", 3), ("en", 3), ("es", 3), ("fr", 3)]);
    for d in &record.documents {
        match d.language.as_deref() {
            Some("en") => assert_ne!(
                d.detected_language.as_deref().map(|l| l != "en"),
                Some(true),
                "{}: a wrong language is worse than none",
                d.key
            ),
            language => assert_eq!(d.detected_language.as_deref(), language, "{}", d.key),
        }
    }
    // The English ones are read as the CI pack's are; each group has its own accuracy.
    assert_eq!(
        record.by_language["en"]["invoice"].fields["total"].accuracy(),
        1.0
    );
    for language in ["de", "fr", "es"] {
        assert_eq!(
            record.by_language[language]["invoice"].fields["total"].documents,
            3
        );
    }
    let table = report::table(&record);
    assert!(table.contains("per language"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("de ") && l.contains("detected 3/3")),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_model_update_is_flagged_on_its_field_alone_and_an_unchanged_vendor_never_is() {
    let s = stack().await;
    let p = Pipeline::start(s.clients.clone(), &s.stack, PipelineOptions::default())
        .await
        .unwrap();
    let dir = small_pack();
    let pack = Pack::load(&dir).unwrap();
    let prefix = upload_pack(&p, &pack, &dir).await.unwrap();
    let runner = runner(&p, &s.stack, "sim").unwrap();
    let timeout = Duration::from_secs(300);
    let run = |n: &str| BenchmarkRun::parse(&format!("bq-test-{n}")).unwrap();
    // No run scored yet: no age to report, which the benchmark-missing alarm reads as breaching.
    assert_eq!(runner.report_age(UnixMillis::now()).await.unwrap(), None);
    assert_eq!(runner.metrics.recorded().get("BenchmarkAgeHours"), None);

    let (baseline, _) = run_once(&p, &runner, &pack.name, &prefix, &run("base"), timeout)
        .await
        .unwrap();
    assert_eq!(baseline.documents.len(), 16);
    assert!(
        baseline
            .documents
            .iter()
            .all(|d| d.state == "Completed" || d.state == "NeedsReview"),
        "{:?}",
        baseline.documents
    );
    assert!(baseline.comparison.is_none());
    let invoice_total = &baseline.scores["invoice"].fields["total"];
    assert_eq!(
        invoice_total.accuracy(),
        1.0,
        "the simulator reads text invoices right"
    );
    // The invoices' 24 line items (1 to 3 each), paired with what the simulator read.
    let items = baseline.scores["invoice"]
        .items
        .as_ref()
        .expect("the invoices' truth has line items");
    assert_eq!(items.expected, 24, "{items:?}");
    assert_eq!(
        (items.recall(), items.precision()),
        (Some(1.0), Some(1.0)),
        "text invoices' items are all found, and nothing else: {items:?}"
    );
    assert_eq!(items.column_accuracy("amount"), Some(1.0), "{items:?}");
    runner.store.pin_baseline(&baseline.run_id).await.unwrap();
    let a_week_on = UnixMillis(UnixMillis::now().0 + 7 * 24 * 3_600_000);
    let age = runner
        .report_age(a_week_on)
        .await
        .unwrap()
        .expect("a scored run");
    assert!((168.0..169.0).contains(&age), "{age}");

    // Five runs of the unchanged vendor: new jobs and new vendor calls each time, no regression.
    for i in 0..5 {
        let (same, _) = run_once(
            &p,
            &runner,
            &pack.name,
            &prefix,
            &run(&format!("same-{i}")),
            timeout,
        )
        .await
        .unwrap();
        let comparison = same
            .comparison
            .as_ref()
            .expect("compared with the pinned baseline");
        assert_eq!(comparison.baseline_run, baseline.run_id);
        assert_eq!(same.regressions(), Vec::<String>::new(), "run {i}");
    }
    assert_eq!(
        sim_stats(&p.sim).await["accepted_submissions"],
        16 * 6,
        "every run called the vendor for every document"
    );
    let recorded = runner.metrics.recorded();
    assert_eq!(recorded.get("QualityRegression[invoice,total]"), Some(&0.0));
    // Benchmark traffic stays out of the business metrics: it lands in <namespace>/Benchmark.
    for (metrics, name) in [
        (p.intake.metrics.recorded(), "DocumentsAccepted"),
        (p.parse.metrics.recorded(), "JobsCompleted"),
        (p.submit.metrics.recorded(), "Submissions"),
    ] {
        assert!(
            metrics
                .keys()
                .any(|k| k.starts_with(&format!("Benchmark/{name}["))),
            "{metrics:?}"
        );
        assert!(
            !metrics.keys().any(|k| k.starts_with(&format!("{name}["))),
            "{metrics:?}"
        );
    }

    // The vendor silently ships a model that misplaces the decimal of invoice totals.
    let update = ModelUpdate::parse("invoice.total:0.8").unwrap();
    set_faults(&p.sim, json!({ "model_update": update })).await;
    let (after, report_key) = run_once(&p, &runner, &pack.name, &prefix, &run("after"), timeout)
        .await
        .unwrap();
    assert_eq!(
        after.regressions(),
        vec!["invoice.total".to_owned()],
        "{}",
        report::table(&after)
    );
    let flagged = after
        .comparison
        .as_ref()
        .unwrap()
        .regressions()
        .next()
        .unwrap();
    let flipped: BTreeSet<&str> = flagged
        .right_to_wrong
        .iter()
        .map(|f| f.key.as_str())
        .collect();
    let expected: BTreeSet<&str> = pack
        .documents
        .iter()
        .filter(|(d, path)| {
            d.key.starts_with("invoices/")
                && update.affects("invoice", &std::fs::read(path).unwrap(), 0)
        })
        .map(|(d, _)| d.key.as_str())
        .collect();
    assert_eq!(
        flipped, expected,
        "exactly the documents the update touched"
    );
    assert!(
        flipped.len() >= 5,
        "enough flips to be significant: {flipped:?}"
    );
    assert!(flagged
        .right_to_wrong
        .iter()
        .all(|f| f.raw.as_deref().is_some_and(|r| r.contains("/raw/doc-"))));
    assert_eq!(
        sim_stats(&p.sim).await["model_updated"],
        flipped.len() as u64,
        "silently: every one a success"
    );
    let recorded = runner.metrics.recorded();
    assert_eq!(recorded.get("QualityRegression[invoice,total]"), Some(&1.0));
    assert!(recorded
        .get("HighConfidenceWrong[sim,invoice,total]")
        .is_some_and(|n| *n >= 5.0));

    // Stored: the record and the report in the results bucket, the summary row, the baseline.
    let stored = runner.store.get_run(&after.run_id).await.unwrap();
    assert_eq!(stored.regressions(), vec!["invoice.total".to_owned()]);
    assert!(report_key.ends_with("/report.html"));
    assert_eq!(
        runner
            .store
            .baseline(&pack.name, "sim")
            .await
            .unwrap()
            .unwrap()
            .run_id,
        baseline.run_id
    );

    // The report in a real browser: it renders, its sections are there, the flips are listed.
    let html = report::html(&after);
    let out = std::env::temp_dir().join(format!("quality-report-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let page = out.join("report.html");
    std::fs::write(&page, &html).unwrap();
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| {
            std::process::Command::new(c)
                .arg("--version")
                .output()
                .is_ok()
        })
        .expect("chromium is installed by scripts/setup.sh (apt-get install chromium)");
    let browser = |args: &[&str]| {
        let output = std::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--window-size=1200,2400",
            ])
            .args(args)
            .arg(format!("file://{}", page.display()))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    };
    let dom = String::from_utf8(browser(&["--dump-dom"])).unwrap();
    for section in report::SECTIONS {
        assert!(
            dom.contains(&format!("id=\"{section}\"")),
            "section {section} rendered"
        );
    }
    assert!(dom.contains("REGRESSION: invoice.total"));
    for key in &flipped {
        assert!(dom.contains(key), "{key} is listed as flipped");
    }
    let screenshot = out.join("report.png");
    browser(&[&format!("--screenshot={}", screenshot.display())]);
    let png = std::fs::read(&screenshot).expect("chromium wrote the screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        png.len() > 20_000,
        "a page with plots, not a blank one: {} bytes",
        png.len()
    );
    eprintln!("report screenshot: {}", screenshot.display());
}
