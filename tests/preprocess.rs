//! Issue #30, item 3: preprocessing on the local stack. A phone photo of a receipt (the pack's
//! own, turned and laid on a dark table) is prepared at intake: the copy is written beside the
//! results, the upload is kept as it came, the actions are recorded on the job, and the vendor
//! reads the copy — exactly once, whichever of the copy's write and its answer is lost.

use std::time::Duration;

use image::DynamicImage;
use ocrbridge::inspect::FileType;
use ocrbridge::job::{Job, JobId, JobState};
use ocrbridge::preprocess::{self, degrade};
use ocrbridge_local::pipeline::{Pipeline, PipelineOptions};
use ocrbridge_tests::{job_id_for, results_object, run_until_settled, sim_stats, stack};
use sha2::Digest;

/// Failpoints are the process's: the tests of this file arm and disarm them, so they run one
/// at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A receipt of the benchmark pack, as its file holds it.
fn pack_receipt_bytes(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../bench/packs/default/receipts")
        .join(name);
    std::fs::read(&path).expect("a pack receipt")
}

fn pack_receipt(name: &str) -> DynamicImage {
    image::load_from_memory(&pack_receipt_bytes(name)).expect("a JPEG")
}

fn jpeg(image: &DynamicImage) -> Vec<u8> {
    preprocess::encode(image, FileType::Jpeg).expect("encodes")
}

/// A receipt turned by `degrees` and photographed on a dark table.
fn photo(name: &str, degrees: f64) -> Vec<u8> {
    jpeg(&degrade::border(&degrade::rotated(
        &pack_receipt(name),
        degrees,
    )))
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The SHA-256 of every document the vendor read for `job`.
fn vendor_read(p: &Pipeline, job: &JobId) -> Vec<String> {
    p.sim
        .sim
        .books(job.as_str())
        .into_iter()
        .filter_map(|j| j.document_sha256)
        .collect()
}

/// The local pipeline on `s` with intake's `environment`; an intake killed by a failpoint is
/// redelivered after 2 s.
async fn pipeline(s: &ocrbridge_tests::TestStack, environment: &[(&str, &str)]) -> Pipeline {
    // Boxed: the start's future is large, and nested in the test's it overflows a debug stack.
    Box::pin(Pipeline::start(
        s.clients.clone(),
        &s.stack,
        PipelineOptions {
            environment: environment
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            crash_redelivery: Duration::from_secs(2),
            ..PipelineOptions::default()
        },
    ))
    .await
    .expect("the pipeline starts")
}

/// A settled job: the vendor's reading is stored, whatever the rules made of it.
fn assert_settled(job: &Job) {
    assert!(
        matches!(job.state, JobState::Completed | JobState::NeedsReview),
        "{job:#?}"
    );
}

/// The page numbers of `job`'s stored result, in order.
async fn result_pages(s: &ocrbridge_tests::TestStack, job: &Job) -> Vec<u64> {
    let result: serde_json::Value = serde_json::from_slice(
        &results_object(s, job.result_key.as_deref().expect("a result")).await,
    )
    .expect("a result document");
    result["pages"]
        .as_array()
        .expect("pages")
        .iter()
        .map(|p| p["number"].as_u64().expect("a number"))
        .collect()
}

fn find<'a>(jobs: &'a [Job], id: &JobId) -> &'a Job {
    jobs.iter()
        .find(|j| &j.id == id)
        .unwrap_or_else(|| panic!("job {id} exists"))
}

/// Receipts cropped and deskewed (`PREPROCESS=receipt=crop,deskew`), IDs with it off:
/// - a turned photo on a table: cropped and turned back; the vendor reads the copy;
/// - two more, one whose intake dies before the copy is written and one whose intake dies
///   after writing it: each is prepared again on redelivery, the same bytes, read once;
/// - a clean scan: nothing to do, no copy, the vendor reads the upload;
/// - the first photo uploaded as an ID: not its profile's setting, no copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_is_prepared_once_and_the_vendor_reads_the_copy_while_the_upload_is_kept() {
    use ocrbridge::failpoints::{self, Action};
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let s = stack().await;
    let p = pipeline(&s, &[("PREPROCESS", "receipt=crop,deskew;id=off")]).await;

    let turned = photo("000.jpg", 7.0);
    let crashed = photo("004.jpg", -6.0);
    let lost = photo("008.jpg", 5.0);
    let clean = pack_receipt_bytes("030.jpg");
    let ids = [
        job_id_for(&turned, "receipt"),
        job_id_for(&crashed, "receipt"),
        job_id_for(&lost, "receipt"),
        job_id_for(&clean, "receipt"),
        job_id_for(&turned, "id"),
    ];
    let armed = [
        ("intake.before_put_prepared", Action::Crash, &ids[1]),
        ("intake.after_put_prepared", Action::Crash, &ids[2]),
    ];
    for (point, action, id) in &armed {
        failpoints::arm_more(point, &[(*action, id.to_string())]).unwrap();
    }
    let uploads = [
        ("receipts/turned.jpg", &turned),
        ("receipts/crashed.jpg", &crashed),
        ("receipts/lost.jpg", &lost),
        ("receipts/clean.jpg", &clean),
        ("ids/turned.jpg", &turned),
    ];
    for (key, bytes) in &uploads {
        s.put(key, (*bytes).clone(), Some("image/jpeg")).await;
    }
    let jobs = run_until_settled(&p, &s.ledger, &ids, Duration::from_secs(180)).await;
    let fired = failpoints::fired_subjects();
    failpoints::disarm_all();
    for (point, _, id) in &armed {
        assert!(
            fired.contains(&(point.to_string(), id.to_string())),
            "{point} never fired for {id}: the case tested nothing"
        );
    }
    let missing: Vec<&JobId> = ids
        .iter()
        .filter(|id| !jobs.iter().any(|j| &j.id == *id))
        .collect();
    assert!(missing.is_empty(), "no job for {missing:?} of {ids:?}");

    for (n, (key, bytes)) in uploads.iter().enumerate() {
        let job = find(&jobs, &ids[n]);
        assert!(
            matches!(job.state, JobState::Completed | JobState::NeedsReview),
            "{key}: {job:#?}"
        );
        // The upload is kept as it came.
        let kept = ocrbridge::blob::Blob::new(s.clients.s3.clone())
            .get(&(&job.source).into())
            .await
            .unwrap()
            .expect("the upload");
        assert_eq!(sha(&kept), sha(bytes), "{key}: the upload changed");
        let read = vendor_read(&p, &job.id);
        match &job.prepared {
            Some(copy) => {
                assert!(n < 3, "{key}: prepared, but nothing needed doing: {copy:?}");
                let names = copy.action_names();
                assert!(
                    names.contains(&"crop") && names.contains(&"deskew"),
                    "{key}: {copy:?}"
                );
                assert_eq!(copy.bucket, s.config.results_bucket);
                assert_eq!(
                    copy.key,
                    format!("prepared/{}/{}", job.id, key.rsplit('/').next().unwrap())
                );
                // One copy, however many times the job's intake ran.
                let copies = s.result_keys(&format!("prepared/{}/", job.id)).await;
                assert_eq!(copies, std::slice::from_ref(&copy.key), "{key}");
                let prepared = results_object(&s, &copy.key).await;
                // The vendor read the copy, once.
                assert_eq!(
                    read,
                    [sha(&prepared)],
                    "{key}: the vendor read something else"
                );
                // And the copy is the one preparing the upload gives, whatever crashed.
                let again = preprocess::prepare(
                    bytes,
                    FileType::Jpeg,
                    &[preprocess::Action::Crop, preprocess::Action::Deskew],
                    &preprocess::Limits::default(),
                )
                .unwrap()
                .expect("a copy");
                assert_eq!(
                    sha(&again.bytes),
                    sha(&prepared),
                    "{key}: not deterministic"
                );
                // What the pixels showed is kept on the job: a lean of 5–7°.
                let lean = job.inspection.skew_tenths.expect("the lean was measured");
                assert!((45..=75).contains(&lean.abs()), "{key}: {lean}");
            }
            None => {
                assert!(n >= 3, "{key}: no copy made: {job:#?}");
                assert_eq!(read, [sha(bytes)], "{key}: the vendor read something else");
            }
        }
    }
    let stats = sim_stats(&p.sim).await;
    assert_eq!(
        stats["billed_documents"].as_u64(),
        Some(ids.len() as u64),
        "{stats}"
    );
    // Three turned photos leaned past 3°: counted as input quality, by source and type. The
    // clean scan did not; the ID profile decodes nothing, so measures nothing.
    let intake = p.intake.metrics.recorded();
    assert_eq!(
        intake.get("InputQuality[skewed,direct,image/jpeg]"),
        Some(&3.0),
        "{intake:?}"
    );
    let clean = find(&jobs, &ids[3]);
    assert!(
        clean.inspection.skew_tenths.is_some_and(|t| t.abs() < 30),
        "{:?}",
        clean.inspection
    );
    assert_eq!(find(&jobs, &ids[4]).inspection.skew_tenths, None);
}

/// A scanner's blank back, as a JPEG.
fn blank_back() -> Vec<u8> {
    jpeg(&DynamicImage::ImageLuma8(degrade::blank_back(600, 800, 11)))
}

/// Issue #30: blank pages are not sent (`PREPROCESS=receipt=blank_pages`). A duplex scan of
/// two receipts with their blank backs (4 pages) is sent as a 2-page copy, whose intake dies
/// once after writing it: the vendor reads the copy once and bills 2 pages, the result's pages
/// keep the upload's numbers (1 and 3), the cost is estimated and billed for 2 and the report
/// shows 2 pages saved and the step's compute. A scan with no blank page goes as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scans_blank_pages_are_not_sent_and_its_result_keeps_the_uploads_page_numbers() {
    use ocrbridge::cost::{self, Spend};
    use ocrbridge::failpoints::{self, Action};
    use ocrbridge::job::PageMap;
    use ocrbridge::pdf_write::scanned_pdf;
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let s = stack().await;
    let p = pipeline(&s, &[("PREPROCESS", "receipt=blank_pages")]).await;

    let (first, second) = (pack_receipt_bytes("000.jpg"), pack_receipt_bytes("004.jpg"));
    let duplex = scanned_pdf(
        &[first.clone(), blank_back(), second.clone(), blank_back()],
        200,
    );
    let simplex = scanned_pdf(&[first, second], 200);
    let ids = [
        job_id_for(&duplex, "receipt"),
        job_id_for(&simplex, "receipt"),
    ];
    failpoints::arm_more(
        "intake.after_put_prepared",
        &[(Action::Crash, ids[0].to_string())],
    )
    .unwrap();
    s.put(
        "receipts/duplex.pdf",
        duplex.clone(),
        Some("application/pdf"),
    )
    .await;
    s.put(
        "receipts/simplex.pdf",
        simplex.clone(),
        Some("application/pdf"),
    )
    .await;
    let jobs = run_until_settled(&p, &s.ledger, &ids, Duration::from_secs(240)).await;
    let fired = failpoints::fired_subjects();
    failpoints::disarm_all();
    assert!(
        fired.contains(&("intake.after_put_prepared".into(), ids[0].to_string())),
        "the crash never fired: the case tested nothing"
    );

    let scanned = find(&jobs, &ids[0]);
    assert_settled(scanned);
    let copy = scanned
        .prepared
        .as_ref()
        .expect("a copy without the blank pages");
    assert_eq!(copy.action_names(), ["blank_pages"], "{copy:?}");
    assert_eq!(
        copy.pages,
        Some(PageMap {
            kept: vec![1, 3],
            of: 4
        })
    );
    let prepared = results_object(&s, &copy.key).await;
    assert_eq!(vendor_read(&p, &scanned.id), [sha(&prepared)]);
    let books = p.sim.sim.books(scanned.id.as_str());
    assert_eq!(
        books.iter().map(|b| b.pages).collect::<Vec<_>>(),
        [2],
        "the vendor was sent the blank pages"
    );
    let numbers = result_pages(&s, scanned).await;
    assert_eq!(numbers, [1, 3], "the result's pages are not the upload's");
    let cost = scanned.cost.as_ref().expect("a cost");
    assert_eq!((cost.pages_estimated, cost.pages_billed), (2, Some(2)));
    assert_eq!(scanned.inspection.blank_pages, Some(2));
    assert_eq!(
        p.intake
            .metrics
            .recorded()
            .get("InputQuality[blank_pages,direct,application/pdf]"),
        Some(&1.0)
    );
    assert!(scanned.prep_compute.is_some(), "{scanned:#?}");

    let plain = find(&jobs, &ids[1]);
    assert_eq!(plain.prepared, None, "nothing was blank: {plain:#?}");
    assert_eq!(vendor_read(&p, &plain.id), [sha(&simplex)]);
    // Looking for blank pages was compute spent all the same.
    assert!(plain.prep_compute.is_some(), "{plain:#?}");

    let report = cost::report(&jobs);
    let line = report.values().next().expect("a line");
    assert_eq!(report.len(), 1, "{report:?}");
    assert_eq!(line.pages, 4, "2 pages billed for each scan");
    assert_eq!(line.pages_saved, 2);
    let per_page = cost.price.expect("priced").per_page;
    assert_eq!(line.saved, per_page * cost::Decimal::from(2));
    let compute: cost::Decimal = jobs
        .iter()
        .filter_map(|j| j.prep_compute.as_ref())
        .map(|c| c.usd)
        .sum();
    assert_eq!(
        line.spend
            .get(Spend::Preparation.as_str())
            .copied()
            .unwrap_or_default(),
        compute
    );
}

/// Issue #30: formats converted for the vendor (`PREPROCESS=receipt=convert,blank_pages`).
/// - An iPhone's HEIC photo of a receipt (Textract reads no HEIC) is sent as a JPEG, named so.
/// - A three-page TIFF scan of two receipts with a blank back between them is sent as a PDF of
///   its two written pages, whose result keeps the TIFF's page numbers (1 and 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heic_photo_and_a_multi_page_tiff_are_converted_for_the_vendor() {
    use ocrbridge::job::PageMap;
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let s = stack().await;
    let p = pipeline(&s, &[("PREPROCESS", "receipt=convert,blank_pages")]).await;

    let heic = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/inputs/receipt-000.heic"),
    )
    .expect("the HEIC fixture");
    let tiff = {
        use tiff::encoder::{colortype::Gray8, Rational, TiffEncoder};
        use tiff::tags::ResolutionUnit;
        let back = degrade::blank_back(600, 900, 5);
        let pages = [
            pack_receipt("000.jpg").into_luma8(),
            back,
            pack_receipt("004.jpg").into_luma8(),
        ];
        let mut out = std::io::Cursor::new(Vec::new());
        let mut encoder = TiffEncoder::new(&mut out).unwrap();
        for page in &pages {
            let mut image = encoder
                .new_image::<Gray8>(page.width(), page.height())
                .unwrap();
            image.resolution(ResolutionUnit::Inch, Rational { n: 150, d: 1 });
            image.write_data(page.as_raw()).unwrap();
        }
        out.into_inner()
    };
    let ids = [job_id_for(&heic, "receipt"), job_id_for(&tiff, "receipt")];
    s.put("receipts/photo.heic", heic.clone(), Some("image/heic"))
        .await;
    s.put("receipts/scan.tif", tiff.clone(), Some("image/tiff"))
        .await;
    let jobs = run_until_settled(&p, &s.ledger, &ids, Duration::from_secs(240)).await;

    let photo = find(&jobs, &ids[0]);
    assert_settled(photo);
    let copy = photo.prepared.as_ref().expect("a JPEG copy");
    assert_eq!(copy.key, format!("prepared/{}/photo.jpg", photo.id));
    assert_eq!(copy.action_names(), ["convert"], "{copy:?}");
    let jpeg = results_object(&s, &copy.key).await;
    assert_eq!(
        ocrbridge::inspect::detect(&jpeg),
        Some(FileType::Jpeg),
        "the copy is a JPEG"
    );
    assert_eq!(vendor_read(&p, &photo.id), [sha(&jpeg)]);
    let read: serde_json::Value = serde_json::from_slice(
        &results_object(&s, photo.result_key.as_deref().expect("a result")).await,
    )
    .unwrap();
    let text = read.to_string();
    assert!(
        text.contains("TOTAL") || text.contains("Total"),
        "the vendor read the receipt: {text:.600}"
    );

    let scan = find(&jobs, &ids[1]);
    assert_settled(scan);
    let copy = scan.prepared.as_ref().expect("a PDF copy");
    assert_eq!(copy.key, format!("prepared/{}/scan.pdf", scan.id));
    assert_eq!(copy.action_names(), ["convert", "blank_pages"], "{copy:?}");
    assert_eq!(
        copy.pages,
        Some(PageMap {
            kept: vec![1, 3],
            of: 3
        })
    );
    let pdf = results_object(&s, &copy.key).await;
    assert_eq!(vendor_read(&p, &scan.id), [sha(&pdf)]);
    assert_eq!(
        p.sim
            .sim
            .books(scan.id.as_str())
            .iter()
            .map(|b| b.pages)
            .collect::<Vec<_>>(),
        [2]
    );
    let numbers = result_pages(&s, scan).await;
    assert_eq!(numbers, [1, 3]);
}

/// Issue #30: an input-quality policy can have the step that remedies an issue applied
/// (`receipt:skewed=preprocess` with `PREPROCESS=off`): a turned photo is deskewed, a straight
/// scan gets no copy, and both are measured. A policy that only flags an issue measured while
/// preparing (`invoice:blank_pages=flag`) has it measured and counted, and nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_preprocesses_skew_and_flags_blank_pages_it_has_measured() {
    use ocrbridge::pdf_write::scanned_pdf;
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let s = stack().await;
    let p = pipeline(
        &s,
        &[
            ("PREPROCESS", "off"),
            (
                "INPUT_QUALITY_POLICY",
                "receipt:skewed=preprocess; invoice:blank_pages=flag",
            ),
        ],
    )
    .await;
    let turned = photo("000.jpg", -8.0);
    let straight = pack_receipt_bytes("039.jpg");
    let duplex = scanned_pdf(&[pack_receipt_bytes("043.jpg"), blank_back()], 200);
    let ids = [
        job_id_for(&turned, "receipt"),
        job_id_for(&straight, "receipt"),
        job_id_for(&duplex, "invoice"),
    ];
    s.put("receipts/turned.jpg", turned, Some("image/jpeg"))
        .await;
    s.put("receipts/straight.jpg", straight, Some("image/jpeg"))
        .await;
    s.put(
        "invoices/duplex.pdf",
        duplex.clone(),
        Some("application/pdf"),
    )
    .await;
    let jobs = run_until_settled(&p, &s.ledger, &ids, Duration::from_secs(180)).await;
    let turned = find(&jobs, &ids[0]);
    let copy = turned
        .prepared
        .as_ref()
        .unwrap_or_else(|| panic!("deskewed: {:?}", turned.inspection));
    assert_eq!(copy.action_names(), ["deskew"], "{copy:?}");
    assert!(turned.inspection.skew_tenths.is_some_and(|t| t.abs() >= 70));
    let straight = find(&jobs, &ids[1]);
    assert_eq!(straight.prepared, None, "{straight:#?}");
    assert!(straight.inspection.skew_tenths.is_some());
    // Flagged, not remedied: the blank back is counted, and the vendor reads the upload.
    let flagged = find(&jobs, &ids[2]);
    assert_eq!(flagged.inspection.blank_pages, Some(1), "{flagged:#?}");
    assert_eq!(flagged.prepared, None);
    assert_eq!(vendor_read(&p, &flagged.id), [sha(&duplex)]);
    assert_eq!(
        p.intake
            .metrics
            .recorded()
            .get("InputQuality[blank_pages,direct,application/pdf]"),
        Some(&1.0)
    );
}
