//! Intake on the local stack: S3 put → notification → validated job → submit message.

use std::process::Command;

use intake::event::ObjectCreated;
use intake::{Intake, IntakeConfig, Outcome, TAG_JOB_ID, TAG_REASON, TAG_STATUS};
use ocrbridge::blob::{Blob, ObjectRef};
use ocrbridge::inspect::{FileType, RejectCode};
use ocrbridge::job::{ContentHash, DocumentKey, JobState, Profile};
use ocrbridge::metrics::Metrics;
use ocrbridge::queue::{Queue, REASON_CODE_ATTRIBUTE};
use ocrbridge_tests::{shared_dir, sqs_event, stack, unique_name, TestStack};
use serde_json::Value;

/// Intake with `TAG_SOURCE_OBJECTS=on`, so a test can read what it decided off the upload's tags
/// as well as the ledger (the stack's default is off: `with_tagging_off_…`).
fn intake(s: &TestStack) -> Intake {
    Intake {
        blob: Blob::new(s.clients.s3.clone()),
        queue: Queue::new(s.clients.sqs.clone()),
        ledger: s.ledger.clone(),
        metrics: Metrics::memory("intake"),
        stack: s.config.clone(),
        config: IntakeConfig {
            tag_objects: true,
            ..IntakeConfig::default()
        },
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(shared_dir().join("fixtures/inputs").join(name)).unwrap()
}

fn record(s: &TestStack, key: &str) -> ObjectCreated {
    ObjectCreated {
        event_name: "ObjectCreated:Put".into(),
        bucket: s.config.documents_bucket.clone(),
        key: key.into(),
        size: None,
        version_id: None,
    }
}

async fn tags(s: &TestStack, key: &str) -> Vec<(String, String)> {
    Blob::new(s.clients.s3.clone())
        .tags(&ObjectRef {
            bucket: s.config.documents_bucket.clone(),
            key: key.into(),
            version_id: None,
        })
        .await
        .unwrap()
}

fn tag<'a>(tags: &'a [(String, String)], name: &str) -> Option<&'a str> {
    tags.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Submit-queue messages' job ids.
async fn submitted(s: &TestStack) -> Vec<String> {
    s.drain(&s.config.submit_queue_url)
        .await
        .iter()
        .map(|m| {
            let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            body["job_id"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// S3 notifications currently on the intake queue, minus S3's test event.
async fn notifications(s: &TestStack) -> Vec<aws_sdk_sqs::types::Message> {
    s.drain(&s.config.intake_queue_url)
        .await
        .into_iter()
        .filter(|m| !m.body().unwrap_or_default().contains("s3:TestEvent"))
        .collect()
}

#[tokio::test]
async fn an_upload_becomes_a_queued_job_and_one_submit_message() {
    let s = stack().await;
    let intake = intake(&s);
    let receipt = std::fs::read(shared_dir().join("corpus/sroie-dev/000.jpg")).unwrap();
    let key = "receipts/2026/my receipt (1).jpg";
    s.put(key, receipt.clone(), Some("image/jpeg")).await;

    // Through the real notification, as the event source mapping delivers it.
    let messages = notifications(&s).await;
    assert_eq!(messages.len(), 1);
    let arn = &s.stack.physical("IntakeQueue").unwrap().attributes["Arn"];
    let response = intake.handle_sqs(sqs_event(&messages, arn), None).await;
    assert!(response.batch_item_failures.is_empty());

    let id = DocumentKey::new(
        &ContentHash::of(&receipt),
        &Profile::new("receipt").unwrap(),
    )
    .job_id();
    let job = s
        .ledger
        .get_job(&id)
        .await
        .unwrap()
        .expect("the job exists");
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.source.key, key, "the key was decoded");
    assert_eq!(job.inspection.file_type, Some(FileType::Jpeg));
    assert_eq!(job.inspection.pages, Some(1));
    assert_eq!(job.inspection.size_bytes, receipt.len() as u64);
    assert_eq!(
        job.inspection.dpi,
        Some(150),
        "its JFIF header says 150 dpi"
    );
    assert_eq!(submitted(&s).await, vec![id.to_string()]);
    let t = tags(&s, key).await;
    assert_eq!(tag(&t, TAG_JOB_ID), Some(id.as_str()));
    assert_eq!(tag(&t, TAG_STATUS), Some("accepted"));
    assert_eq!(
        intake.metrics.recorded()["DocumentsAccepted[receipt,image/jpeg]"],
        1.0
    );

    // The same notification again (at-least-once delivery): nothing new.
    let again = intake.process_object(&record(&s, key)).await.unwrap();
    assert_eq!(again, Outcome::Redelivered(id));
    assert!(submitted(&s).await.is_empty());
}

/// `TAG_SOURCE_OBJECTS` off, the default (issue #33): one S3 request fewer per document, and the
/// same job, which the ledger finds by its upload.
#[tokio::test]
async fn with_tagging_off_an_upload_gets_its_job_and_no_tags() {
    let s = stack().await;
    let mut intake = intake(&s);
    intake.config = IntakeConfig::from_lookup(|_| None).unwrap();
    assert!(!intake.config.tag_objects, "off unless asked for");
    let receipt = std::fs::read(shared_dir().join("corpus/sroie-dev/000.jpg")).unwrap();
    let key = "receipts/untagged.jpg";
    s.put(key, receipt.clone(), Some("image/jpeg")).await;
    let outcome = intake.process_object(&record(&s, key)).await.unwrap();
    let id = ocrbridge_tests::job_id_for(&receipt, "receipt");
    assert_eq!(outcome, Outcome::Accepted(id.clone()));
    let state = s.ledger.get_job(&id).await.unwrap().map(|j| j.state);
    assert_eq!(state, Some(JobState::Queued));
    assert_eq!(submitted(&s).await, vec![id.to_string()]);
    assert_eq!(tags(&s, key).await, Vec::new(), "nothing tagged the object");
    let found = s
        .ledger
        .job_for_upload(&s.config.documents_bucket, key)
        .await;
    assert_eq!(found.unwrap(), Some(id.clone()));
    let missing = s
        .ledger
        .job_for_upload(&s.config.documents_bucket, "receipts/never.jpg")
        .await;
    assert_eq!(missing.unwrap(), None);
}

#[tokio::test]
async fn the_same_content_uploaded_twice_makes_one_job() {
    let s = stack().await;
    let intake = intake(&s);
    let bytes = fixture("receipt.png");
    s.put("receipts/a.png", bytes.clone(), None).await;
    s.put("receipts/copy-of-a.png", bytes.clone(), None).await;
    // The same bytes as an invoice are a different document (different vendor request).
    s.put("invoices/a.png", bytes.clone(), None).await;

    let first = intake
        .process_object(&record(&s, "receipts/a.png"))
        .await
        .unwrap();
    let Outcome::Accepted(id) = first else {
        panic!("{first:?}")
    };
    let second = intake
        .process_object(&record(&s, "receipts/copy-of-a.png"))
        .await
        .unwrap();
    assert_eq!(second, Outcome::Duplicate(id.clone()));
    let invoice = intake
        .process_object(&record(&s, "invoices/a.png"))
        .await
        .unwrap();
    assert!(matches!(invoice, Outcome::Accepted(ref other) if *other != id));

    let mut sent = submitted(&s).await;
    sent.sort();
    assert_eq!(sent.len(), 2, "one submit message per job: {sent:?}");
    let t = tags(&s, "receipts/copy-of-a.png").await;
    assert_eq!(tag(&t, TAG_JOB_ID), Some(id.as_str()));
    assert_eq!(tag(&t, TAG_STATUS), Some("duplicate"));
    let copy = s
        .ledger
        .job_for_upload(&s.config.documents_bucket, "receipts/copy-of-a.png")
        .await;
    assert_eq!(
        copy.unwrap(),
        Some(id.clone()),
        "a duplicate upload finds its job"
    );
    assert_eq!(
        intake.metrics.recorded()["DuplicatesSuppressed[receipt]"],
        1.0
    );
}

#[tokio::test]
async fn s3_checksums_and_streamed_hashes_agree() {
    let s = stack().await;
    let intake = intake(&s);
    let bytes = fixture("receipt.webp");
    s.clients
        .s3
        .put_object()
        .bucket(&s.config.documents_bucket)
        .key("receipts/with-checksum.webp")
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
        .body(bytes.clone().into())
        .send()
        .await
        .unwrap();
    // Intake's one GetObject carries S3's checksum, as a HEAD would.
    let opened = Blob::new(s.clients.s3.clone())
        .open(&ObjectRef {
            bucket: s.config.documents_bucket.clone(),
            key: "receipts/with-checksum.webp".into(),
            version_id: None,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        opened.head.sha256,
        Some(ContentHash::of(&bytes)),
        "S3's checksum is used when present"
    );
    s.put("receipts/without.webp", bytes, None).await;
    let Outcome::Accepted(id) = intake
        .process_object(&record(&s, "receipts/with-checksum.webp"))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        intake
            .process_object(&record(&s, "receipts/without.webp"))
            .await
            .unwrap(),
        Outcome::Duplicate(id)
    );
}

/// (file, expected: Ok(pages) or Err(reason code)). `receipt.jpga` holds the same bytes as
/// `receipt.jpg`, so it is the duplicate of that job (`Ok(0)` below). The verdicts, decided and
/// documented:
/// - blank PDFs pass: blankness needs rendering, and the vendor answers "no text" cheaply;
/// - broken_fixable.pdf and valid_exported.pdf (no `%PDF-` header at all) pass: readers repair
///   them, and the vendor simulator's poppler reads both;
/// - XfaForm.pdf is rejected as encrypted: it is RC4-encrypted (owner password), which hides its
///   XFA stream too.
const FIXTURE_VERDICTS: &[(&str, Result<u32, RejectCode>)] = &[
    ("XfaForm.pdf", Err(RejectCode::PdfEncrypted)),
    ("blank.pdf", Ok(10)),
    ("blank_1.pdf", Ok(1)),
    ("broken_fixable.pdf", Ok(1)),
    ("multipage.pdf", Ok(12)),
    ("not_blank_image_only.pdf", Ok(1)),
    ("receipt.jpg", Ok(1)),
    ("receipt.jpga", Ok(0)),
    ("receipt.png", Ok(1)),
    ("receipt.tif", Ok(1)),
    ("receipt.txt", Err(RejectCode::UnsupportedType)),
    ("receipt.webp", Ok(1)),
    ("valid_exported.pdf", Ok(1)),
];

#[tokio::test]
async fn every_fixture_ends_with_its_verdict() {
    let s = stack().await;
    let intake = intake(&s);
    for (name, expected) in FIXTURE_VERDICTS {
        let key = format!("receipts/fixtures/{name}");
        s.put(&key, fixture(name), None).await;
        let outcome = intake.process_object(&record(&s, &key)).await.unwrap();
        let id = match (&outcome, expected) {
            (Outcome::Duplicate(id), Ok(0)) => id.clone(),
            (Outcome::Accepted(id), Ok(_)) => id.clone(),
            (Outcome::Rejected(id, code), Err(want)) if code == want => id.clone(),
            _ => panic!("{name}: expected {expected:?}, got {outcome:?}"),
        };
        let job = s.ledger.get_job(&id).await.unwrap().unwrap();
        let t = tags(&s, &key).await;
        match expected {
            Ok(0) => assert_eq!(tag(&t, TAG_STATUS), Some("duplicate"), "{name}"),
            Ok(pages) => {
                assert_eq!(job.state, JobState::Queued, "{name}");
                assert_eq!(job.inspection.pages, Some(*pages), "{name}");
                assert_eq!(tag(&t, TAG_STATUS), Some("accepted"), "{name}");
            }
            Err(code) => {
                assert_eq!(job.state, JobState::Rejected, "{name}");
                let reason = job.reason.expect("a rejected job has a reason");
                assert_eq!(reason.code, code.as_str());
                assert!(!reason.message.is_empty());
                assert_eq!(tag(&t, TAG_REASON), Some(code.as_str()), "{name}");
            }
        }
    }
    let text_layers: Vec<Option<bool>> = {
        let multipage = DocumentKey::new(
            &ContentHash::of(&fixture("multipage.pdf")),
            &Profile::new("receipt").unwrap(),
        )
        .job_id();
        let image_only = DocumentKey::new(
            &ContentHash::of(&fixture("not_blank_image_only.pdf")),
            &Profile::new("receipt").unwrap(),
        )
        .job_id();
        vec![
            s.ledger
                .get_job(&multipage)
                .await
                .unwrap()
                .unwrap()
                .inspection
                .text_layer,
            s.ledger
                .get_job(&image_only)
                .await
                .unwrap()
                .unwrap()
                .inspection
                .text_layer,
        ]
    };
    assert_eq!(text_layers, vec![Some(true), Some(false)]);
    let recorded = intake.metrics.recorded();
    assert!(recorded["PdfDocuments[text]"] >= 1.0);
    assert!(recorded["PdfDocuments[image_only]"] >= 1.0);
}

#[tokio::test]
async fn a_declared_type_mismatch_is_recorded() {
    let s = stack().await;
    let intake = intake(&s);
    s.put(
        "receipts/receipt.jpga",
        fixture("receipt.jpga"),
        Some("image/jpga"),
    )
    .await;
    let Outcome::Accepted(id) = intake
        .process_object(&record(&s, "receipts/receipt.jpga"))
        .await
        .unwrap()
    else {
        panic!()
    };
    let job = s.ledger.get_job(&id).await.unwrap().unwrap();
    assert_eq!(
        job.inspection.type_mismatch.as_deref(),
        Some("extension .jpga and Content-Type image/jpga but the content is image/jpeg")
    );
}

fn qpdf(args: &[&str]) {
    let status = Command::new("qpdf")
        .args(args)
        .status()
        .expect("qpdf is installed (scripts/setup.sh)");
    // qpdf exits 3 for warnings, which repaired inputs produce.
    assert!(
        matches!(status.code(), Some(0 | 3)),
        "qpdf {args:?}: {status}"
    );
}

fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    b.extend_from_slice(&width.to_be_bytes());
    b.extend_from_slice(&height.to_be_bytes());
    b.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    b
}

/// A PNG header declaring `dpi` in a `pHYs` chunk.
fn png_at_dpi(width: u32, height: u32, dpi: u32) -> Vec<u8> {
    let per_metre = (f64::from(dpi) / 0.0254).round() as u32;
    let mut b = png_header(width, height);
    b.extend_from_slice(&9u32.to_be_bytes());
    b.extend_from_slice(b"pHYs");
    b.extend_from_slice(&per_metre.to_be_bytes());
    b.extend_from_slice(&per_metre.to_be_bytes());
    b.extend_from_slice(&[1, 0, 0, 0, 0]);
    b
}

/// A scan at 72 dpi is taken, and flagged: the job keeps the resolution, and the issue is
/// counted by source and type. At 300 dpi nothing is flagged.
#[tokio::test]
async fn a_low_resolution_scan_is_accepted_and_flagged() {
    let s = stack().await;
    let intake = intake(&s);
    s.put("receipts/scan/fax.png", png_at_dpi(600, 800, 72), None)
        .await;
    s.put("receipts/scan/good.png", png_at_dpi(2400, 3300, 300), None)
        .await;
    for key in ["receipts/scan/fax.png", "receipts/scan/good.png"] {
        let outcome = intake.process_object(&record(&s, key)).await.unwrap();
        let Outcome::Accepted(id) = outcome else {
            panic!("{key}: {outcome:?}");
        };
        let expected = if key.ends_with("fax.png") { 72 } else { 300 };
        let stored = s.ledger.get_job(&id).await.unwrap().unwrap();
        assert_eq!(stored.inspection.dpi, Some(expected), "kept on the job");
    }
    let counted: Vec<(String, f64)> = intake
        .metrics
        .recorded()
        .into_iter()
        .filter(|(k, _)| k.starts_with("InputQuality"))
        .collect();
    assert_eq!(
        counted,
        [(
            "InputQuality[low_resolution,other,image/png]".to_owned(),
            1.0
        )]
    );
}

/// A PDF with neither text nor images is a blank document (issue #30): by default it is
/// accepted and counted; `INPUT_QUALITY_POLICY=*:blank_document=reject` refuses it with that
/// reason — where an image-only scan (no text layer, but a picture of text) and a text PDF go
/// through either way, and a profile with its own `flag` rule keeps accepting it.
#[tokio::test]
async fn a_blank_document_is_flagged_or_refused_by_its_profiles_policy() {
    let s = stack().await;
    let flagging = intake(&s);
    let mut refusing = intake(&s);
    refusing.config = IntakeConfig::from_lookup(|k| {
        (k == "INPUT_QUALITY_POLICY")
            .then(|| "*:blank_document=reject; receipt:blank_document=flag".to_owned())
    })
    .unwrap();
    let prefix = unique_name("blank");
    for (name, profile_prefix, intake, refused) in [
        ("blank.pdf", "invoices", &refusing, true),
        ("blank.pdf", "receipts", &refusing, false),
        ("not_blank_image_only.pdf", "invoices", &refusing, false),
        ("multipage.pdf", "invoices", &refusing, false),
        ("blank_1.pdf", "invoices", &flagging, false),
    ] {
        let key = format!("{profile_prefix}/{prefix}/{name}");
        s.put(&key, fixture(name), None).await;
        let outcome = intake.process_object(&record(&s, &key)).await.unwrap();
        match (&outcome, refused) {
            (Outcome::Rejected(id, code), true) => {
                assert_eq!(code.as_str(), "blank_document", "{key}");
                let job = s.ledger.get_job(id).await.unwrap().unwrap();
                let reason = job.reason.unwrap();
                assert_eq!(reason.code, "blank_document");
                assert!(
                    reason.message.contains("no text and no image"),
                    "{}",
                    reason.message
                );
                assert_eq!(job.inspection.images, Some(false));
            }
            (Outcome::Accepted(_), false) => {}
            _ => panic!("{key}: {outcome:?}"),
        }
    }
    let counted = |intake: &Intake| -> Vec<String> {
        intake
            .metrics
            .recorded()
            .into_keys()
            .filter(|k| k.starts_with("InputQuality"))
            .collect()
    };
    // Accepted blank documents are counted; the image-only scan and the text PDF are not.
    assert_eq!(
        counted(&refusing),
        ["InputQuality[blank_document,other,application/pdf]"]
    );
    assert_eq!(
        counted(&flagging),
        ["InputQuality[blank_document,other,application/pdf]"]
    );
    assert_eq!(
        refusing.metrics.recorded()["InputQuality[blank_document,other,application/pdf]"],
        1.0,
        "the receipt's blank document, accepted under its own rule"
    );
}

/// A scanned PDF's resolution is measured (its image's pixels over its page's inches) and held
/// to the same 150 dpi as an image's: a Letter page scanned 850 pixels wide (100 dpi) is flagged
/// `low_resolution`, the fixture scanned at 300 dpi is not.
#[tokio::test]
async fn a_scanned_pdf_below_150_dpi_is_flagged_low_resolution() {
    let s = stack().await;
    let intake = intake(&s);
    let pixels = "\0".repeat(64);
    let scan = format!(
        "%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /XObject << /Im0 4 0 R >> >> >>\nendobj\n4 0 obj\n<< /Type /XObject /Subtype /Image /Width 850 /Height 1100 /BitsPerComponent 8 /ColorSpace /DeviceGray /Length {} >>\nstream\n{pixels}\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n",
        pixels.len()
    );
    let prefix = unique_name("scan");
    for (name, bytes, dpi) in [
        ("fax.pdf", scan.into_bytes(), 100),
        ("photo.pdf", fixture("not_blank_image_only.pdf"), 300),
    ] {
        let key = format!("invoices/{prefix}/{name}");
        s.put(&key, bytes, None).await;
        let Outcome::Accepted(id) = intake.process_object(&record(&s, &key)).await.unwrap() else {
            panic!("{key}");
        };
        let job = s.ledger.get_job(&id).await.unwrap().unwrap();
        assert_eq!(job.inspection.dpi, Some(dpi), "{name}");
    }
    let counted: Vec<String> = intake
        .metrics
        .recorded()
        .into_keys()
        .filter(|k| k.starts_with("InputQuality"))
        .collect();
    assert_eq!(
        counted,
        ["InputQuality[low_resolution,other,application/pdf]"]
    );
}

#[tokio::test]
async fn generated_awkward_files_are_rejected_with_the_right_reason() {
    let s = stack().await;
    let intake = intake(&s);
    let dir = std::env::temp_dir().join(unique_name("gen"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |n: &str| dir.join(n).to_string_lossy().into_owned();
    let input = shared_dir().join("fixtures/inputs");
    let input = |n: &str| input.join(n).to_string_lossy().into_owned();

    qpdf(&[
        "--encrypt",
        "user-pw",
        "owner-pw",
        "256",
        "--",
        &input("multipage.pdf"),
        &path("encrypted.pdf"),
    ]);
    // The XFA form, decrypted and without object streams, so its /XFA entry is visible.
    qpdf(&[
        "--decrypt",
        "--object-streams=disable",
        &input("XfaForm.pdf"),
        &path("xfa.pdf"),
    ]);
    let multipage = fixture("multipage.pdf");
    let mut huge = png_header(60_000, 60_000);
    huge.extend_from_slice(&[0u8; 64]);

    let cases: Vec<(&str, Vec<u8>, RejectCode)> = vec![
        (
            "encrypted.pdf",
            std::fs::read(path("encrypted.pdf")).unwrap(),
            RejectCode::PdfEncrypted,
        ),
        (
            "xfa.pdf",
            std::fs::read(path("xfa.pdf")).unwrap(),
            RejectCode::PdfXfaForm,
        ),
        ("huge.png", huge, RejectCode::ImageTooManyPixels),
        ("tiny.png", png_header(10, 10), RejectCode::ImageTooSmall),
        (
            "truncated.png",
            png_header(800, 600)[..18].to_vec(),
            RejectCode::ImageUnreadable,
        ),
        (
            "truncated.pdf",
            multipage[..200].to_vec(),
            RejectCode::PdfUnreadable,
        ),
        ("empty.jpg", vec![], RejectCode::EmptyFile),
        (
            "photo.heic",
            b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec(),
            RejectCode::UnsupportedType,
        ),
    ];
    for (name, bytes, code) in cases {
        let key = format!("receipts/generated/{name}");
        s.put(&key, bytes, None).await;
        let outcome = intake.process_object(&record(&s, &key)).await.unwrap();
        assert!(
            matches!(outcome, Outcome::Rejected(_, c) if c == code),
            "{name}: {outcome:?}"
        );
        assert_eq!(
            tag(&tags(&s, &key).await, TAG_REASON),
            Some(code.as_str()),
            "{name}"
        );
    }

    // Limits are configuration: the same PDF passes or fails the page limit.
    let mut strict = intake;
    strict.config.limits.max_pdf_pages = 5;
    s.put("invoices/long.pdf", multipage, None).await;
    let outcome = strict
        .process_object(&record(&s, "invoices/long.pdf"))
        .await
        .unwrap();
    assert!(
        matches!(outcome, Outcome::Rejected(_, RejectCode::PdfTooManyPages)),
        "{outcome:?}"
    );
    assert!(
        submitted(&s).await.is_empty(),
        "nothing rejected is submitted"
    );
}

#[tokio::test]
async fn an_enqueue_failure_after_the_job_is_written_is_repaired_by_the_retry() {
    let s = stack().await;
    let mut broken = intake(&s);
    broken.stack.submit_queue_url = format!("{}/123456789012/no-such-queue", s.endpoint);
    s.put("receipts/r.png", fixture("receipt.png"), None).await;

    let err = broken
        .process_object(&record(&s, "receipts/r.png"))
        .await
        .unwrap_err();
    assert!(matches!(err, intake::IntakeError::Queue(_)), "{err:?}");
    let id = DocumentKey::new(
        &ContentHash::of(&fixture("receipt.png")),
        &Profile::new("receipt").unwrap(),
    )
    .job_id();
    assert_eq!(
        s.ledger.get_job(&id).await.unwrap().unwrap().state,
        JobState::Received
    );

    // The redelivered notification, with SQS working again, finishes the job exactly once.
    let fixed = intake(&s);
    assert_eq!(
        fixed
            .process_object(&record(&s, "receipts/r.png"))
            .await
            .unwrap(),
        Outcome::Accepted(id.clone())
    );
    assert_eq!(
        fixed
            .process_object(&record(&s, "receipts/r.png"))
            .await
            .unwrap(),
        Outcome::Redelivered(id.clone())
    );
    assert_eq!(submitted(&s).await, vec![id.to_string()]);
    assert_eq!(
        s.ledger.get_job(&id).await.unwrap().unwrap().state,
        JobState::Queued
    );
}

#[tokio::test]
async fn poison_messages_go_to_the_dlq_with_their_reason() {
    let s = stack().await;
    let intake = intake(&s);
    for body in ["this is not json", r#"{"job_id": "not an S3 event"}"#] {
        s.clients
            .sqs
            .send_message()
            .queue_url(&s.config.intake_queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let messages = notifications(&s).await;
    assert_eq!(messages.len(), 2);
    let response = intake
        .handle_sqs(
            sqs_event(&messages, "arn:aws:sqs:us-east-1:123456789012:intake"),
            None,
        )
        .await;
    assert!(
        response.batch_item_failures.is_empty(),
        "poison is acknowledged, not retried"
    );
    let dead = s.drain(&s.config.intake_dlq_url).await;
    assert_eq!(dead.len(), 2);
    for m in &dead {
        let code = m.message_attributes().unwrap()[REASON_CODE_ATTRIBUTE]
            .string_value()
            .unwrap();
        assert_eq!(code, "malformed_event");
    }
    assert!(
        dead.iter().any(|m| m.body() == Some("this is not json")),
        "bodies are kept verbatim"
    );
}

#[tokio::test]
async fn a_transient_failure_is_retried_then_dead_lettered_on_the_last_receive() {
    let s = stack().await;
    let mut broken = intake(&s);
    broken.stack.submit_queue_url = format!("{}/123456789012/no-such-queue", s.endpoint);
    s.put("receipts/r.png", fixture("receipt.png"), None).await;
    let mut messages = notifications(&s).await;
    let arn = &ocrbridge_tests::queue_arn(&s.config.intake_queue_url);
    let response = broken.handle_sqs(sqs_event(&messages, arn), None).await;
    assert_eq!(
        response.batch_item_failures.len(),
        1,
        "retried while receives remain"
    );

    // The same message on its last chance (the queue's redrive allows two more deliveries, for
    // functions that die): dead-lettered with the reason.
    let last_chance = s.config.max_receive_count - ocrbridge::batch::CRASH_ALLOWANCE;
    let mut last = sqs_event(&messages, arn);
    last.records[0]
        .attributes
        .insert("ApproximateReceiveCount".into(), last_chance.to_string());
    let response = broken.handle_sqs(last, None).await;
    assert!(response.batch_item_failures.is_empty());
    let dead = s.drain(&s.config.intake_dlq_url).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].message_attributes().unwrap()[REASON_CODE_ATTRIBUTE].string_value(),
        Some("sqs_error")
    );

    // Delivered again after that: the function that had its last chance died without an
    // answer. Parked at once as a crash loop, with that reason, before the handler runs again.
    let mut beyond = sqs_event(&messages, arn);
    beyond.records[0].attributes.insert(
        "ApproximateReceiveCount".into(),
        (last_chance + 1).to_string(),
    );
    let response = broken.handle_sqs(beyond, None).await;
    assert!(response.batch_item_failures.is_empty());
    let dead = s.drain(&s.config.intake_dlq_url).await;
    assert_eq!(dead.len(), 1);
    let attributes = dead[0].message_attributes().unwrap();
    assert_eq!(
        attributes[REASON_CODE_ATTRIBUTE].string_value(),
        Some("crash_loop")
    );
    assert!(attributes[ocrbridge::queue::REASON_ATTRIBUTE]
        .string_value()
        .unwrap()
        .contains("did not finish the last 1"));
    assert_eq!(
        broken.metrics.recorded()["PoisonMessages[intake]"],
        2.0,
        "one for the last chance, one for the crash loop"
    );
    messages.clear();
}

#[tokio::test]
async fn sample_events_are_accepted() {
    let s = stack().await;
    let intake = intake(&s);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let key = "receipts/2026/store receipt #1.jpg";
    s.put(key, fixture("receipt.jpg"), Some("image/jpeg")).await;

    // Point the sample events at this stack's bucket; drop the sample's version id.
    let retarget = |text: String| {
        text.replace(
            "ocrbridge-documents-123456789012-us-east-1",
            &s.config.documents_bucket,
        )
        .replace("096fKKXTRTtl3on89fVO.nfljtsv6qko", "")
    };
    let direct: Value = serde_json::from_str(&retarget(
        std::fs::read_to_string(root.join("s3-put.json")).unwrap(),
    ))
    .unwrap();
    let out = intake.handle(direct, None).await.unwrap();
    assert!(
        out["outcomes"][0].as_str().unwrap().starts_with("Accepted"),
        "{out}"
    );

    let via_sqs: Value = serde_json::from_str(&retarget(
        std::fs::read_to_string(root.join("sqs-s3-put.json")).unwrap(),
    ))
    .unwrap();
    let out = intake.handle(via_sqs, None).await.unwrap();
    assert_eq!(out["batchItemFailures"], serde_json::json!([]), "{out}");
    assert_eq!(
        submitted(&s).await.len(),
        1,
        "the second event was the same object"
    );
}

#[tokio::test]
async fn outputs_under_reserved_prefixes_are_ignored() {
    let s = stack().await;
    let intake = intake(&s);
    s.put(
        "results/doc-1.json",
        b"{}".to_vec(),
        Some("application/json"),
    )
    .await;
    assert_eq!(
        intake
            .process_object(&record(&s, "results/doc-1.json"))
            .await
            .unwrap(),
        Outcome::Ignored("reserved_prefix")
    );
    assert_eq!(
        intake
            .process_object(&record(&s, "receipts/deleted-meanwhile.jpg"))
            .await
            .unwrap(),
        Outcome::Ignored("object_gone")
    );
}

/// The same document uploaded again after its job stopped for a retryable reason is a request
/// to try again; a late notification of the first upload is not, and neither is a re-upload of
/// a document whose failure is final.
#[tokio::test]
async fn a_reupload_after_a_retryable_stop_retries_the_job_and_nothing_else_does() {
    let s = stack().await;
    let intake = intake(&s);
    let png = png_header(640, 480);
    s.put("receipts/a.png", png.clone(), Some("image/png"))
        .await;
    let first = intake
        .process_object(&record(&s, "receipts/a.png"))
        .await
        .unwrap();
    let Outcome::Accepted(id) = first else {
        panic!("{first:?}")
    };
    assert_eq!(submitted(&s).await, vec![id.to_string()]);
    // The vendor was down past the maximum age.
    let queued = s.ledger.get_job(&id).await.unwrap().unwrap();
    let failed = s
        .ledger
        .transition(
            &queued,
            JobState::Failed,
            ocrbridge::ledger::Change::none().with_reason(ocrbridge::job::Reason::new(
                "max_age_exceeded",
                "the vendor was down",
            )),
            ocrbridge::time::UnixMillis::now(),
        )
        .await
        .unwrap();

    // A repeated notification of the first upload (written before the job stopped): nothing.
    let again = intake
        .process_object(&record(&s, "receipts/a.png"))
        .await
        .unwrap();
    assert_eq!(again, Outcome::Redelivered(id.clone()));
    assert!(submitted(&s).await.is_empty());
    assert_eq!(
        s.ledger.get_job(&id).await.unwrap().unwrap().state,
        JobState::Failed
    );

    // The user uploads it again, a second later: the job is retried.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    s.put("receipts/a-again.png", png.clone(), Some("image/png"))
        .await;
    let retried = intake
        .process_object(&record(&s, "receipts/a-again.png"))
        .await
        .unwrap();
    assert_eq!(retried, Outcome::Retried(id.clone()));
    assert_eq!(submitted(&s).await, vec![id.to_string()]);
    let job = s.ledger.get_job(&id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.reason, None);
    assert!(job.queued_at.unwrap() > failed.state_since, "a new window");
    assert_eq!(
        intake.metrics.recorded()["JobsRetried[max_age_exceeded,reupload]"],
        1.0
    );

    // A final failure stays final, however often it is uploaded.
    let rejected = s
        .ledger
        .transition(
            &job,
            JobState::Failed,
            ocrbridge::ledger::Change::none()
                .with_reason(ocrbridge::job::Reason::new("vendor_rejected", "422")),
            ocrbridge::time::UnixMillis::now(),
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    s.put("receipts/a-third.png", png, Some("image/png")).await;
    let third = intake
        .process_object(&record(&s, "receipts/a-third.png"))
        .await
        .unwrap();
    assert_eq!(third, Outcome::Duplicate(id.clone()));
    assert!(submitted(&s).await.is_empty());
    let after = s.ledger.get_job(&id).await.unwrap().unwrap();
    assert_eq!(after.state, JobState::Failed);
    assert_eq!(
        after.version, rejected.version,
        "only the duplicate link was added, which moves nothing"
    );
}

/// A job held because its last submission may have reached the vendor is not retried by the
/// user uploading the document again: resubmitting may be a second charge, which only an
/// operator decides (`ocrbridge jobs retry --accept-duplicate-risk`). Before, the re-upload
/// requeued it with the resubmission approved.
#[tokio::test]
async fn a_reupload_never_approves_a_possible_second_charge() {
    let s = stack().await;
    let intake = intake(&s);
    let png = png_header(640, 481);
    s.put("receipts/h.png", png.clone(), Some("image/png"))
        .await;
    let Outcome::Accepted(id) = intake
        .process_object(&record(&s, "receipts/h.png"))
        .await
        .unwrap()
    else {
        panic!("accepted")
    };
    submitted(&s).await;
    // Submitting, its answer lost, nothing to ask: held for an operator.
    let queued = s.ledger.get_job(&id).await.unwrap().unwrap();
    let now = ocrbridge::time::UnixMillis::now();
    let lease = s
        .ledger
        .acquire_lease_and_record_attempt(
            &queued,
            ocrbridge::ledger::LeaseStep::Submit,
            "w",
            now.plus(std::time::Duration::from_secs(30)),
            "attempt-1",
            now,
        )
        .await
        .unwrap();
    let held = s
        .ledger
        .complete_lease(
            &lease,
            JobState::Held,
            ocrbridge::ledger::Change::none().with_reason(ocrbridge::job::Reason::new(
                "submission_outcome_unknown",
                "the answer was lost",
            )),
            ocrbridge::time::UnixMillis::now(),
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    s.put("receipts/h-again.png", png, Some("image/png")).await;
    let again = intake
        .process_object(&record(&s, "receipts/h-again.png"))
        .await
        .unwrap();
    assert_eq!(again, Outcome::Duplicate(id.clone()));
    assert!(submitted(&s).await.is_empty(), "nothing sent to submit");
    let after = s.ledger.get_job(&id).await.unwrap().unwrap();
    assert_eq!(after.state, JobState::Held);
    assert!(!after.resubmit_approved);
    assert_eq!(
        after.attempt, held.attempt,
        "the unresolved attempt is kept"
    );
    assert!(!intake
        .metrics
        .recorded()
        .contains_key("JobsRetried[submission_outcome_unknown,reupload]"));
}

/// A burst of uploads beyond what intake may run at once: with the event source capped at the
/// function's reserved concurrency (`ScalingConfig.MaximumConcurrency`), the pollers wait and
/// every upload becomes its job. Without the cap — the template before it — Lambda throttles the
/// batches it has no slot for back onto the queue, their receive counts rise with no handler
/// having run, and the crash-loop guard parks real uploads in the DLQ. (`MaxReceiveCount=3`, the
/// template's minimum, makes one throttle enough to show it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_functions_concurrency_is_never_parked() {
    use ocrbridge_local::pipeline::{EventSource, Pipeline, PipelineOptions};
    use ocrbridge_local::template::Template;
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    const UPLOADS: usize = 120;
    // Boxed: the whole pipeline's future is too deep for the test thread's stack in a debug build.
    let burst = |template: Template| {
        Box::pin(async move {
            let s = ocrbridge_tests::stack_from(template, &[("MaxReceiveCount", "3")]).await;
            let p = Pipeline::start(
                s.clients.clone(),
                &s.stack,
                PipelineOptions {
                    engine: vendor_sim::engine::EngineKind::Fast,
                    // More pollers than intake's ten reserved slots, each taking a batch of ten.
                    concurrency: 12,
                    crash_redelivery: Duration::from_secs(1),
                    ..PipelineOptions::default()
                },
            )
            .await
            .unwrap();
            let salt = unique_name("burst");
            for i in 0..UPLOADS {
                let mut png = png_header(640, 480);
                png.extend_from_slice(format!("{salt}-{i}").as_bytes());
                s.put(
                    &format!("receipts/burst/{i:03}.png"),
                    png,
                    Some("image/png"),
                )
                .await;
            }
            let stop = AtomicBool::new(false);
            let started = Instant::now();
            // Intake alone: the burst is its, and the other stages would only slow the machine.
            let ((), ()) =
                tokio::join!(p.run_sources_until(&[EventSource::Intake], &stop), async {
                    let queue = Queue::new(s.clients.sqs.clone());
                    while started.elapsed() < Duration::from_secs(60) {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        // Done when every upload is a job, or the queue holds nothing more (visible,
                        // in flight or delayed): what is not a job by then was parked. (The queue
                        // first: a job counted after it is empty is counted for good.)
                        let waiting = queue.depth(&s.config.intake_queue_url).await.unwrap_or(1);
                        let jobs = ocrbridge_tests::all_jobs(&s.ledger, 100).await.len();
                        if jobs == UPLOADS || waiting == 0 {
                            break;
                        }
                    }
                    stop.store(true, Ordering::Relaxed);
                });
            let throttled = ocrbridge_local::pipeline::EventSourceCounters::get(
                &p.event_sources.throttled_batches,
            );
            let jobs: BTreeSet<String> = ocrbridge_tests::all_jobs(&s.ledger, 100)
                .await
                .into_iter()
                .map(|job| job.source.key)
                .collect();
            // Each parked upload: its key, and its reason (SQS's own redrive gives none).
            let parked: Vec<(String, String)> = s
                .drain(&s.config.intake_dlq_url)
                .await
                .iter()
                .map(|m| {
                    let reason = m
                        .message_attributes()
                        .and_then(|a| a.get(REASON_CODE_ATTRIBUTE))
                        .and_then(|a| a.string_value())
                        .unwrap_or("(moved by SQS, no reason)")
                        .to_owned();
                    // The key as intake reads it (S3 URL-encodes it in the notification).
                    let body: Value =
                        serde_json::from_str(m.body().unwrap_or_default()).unwrap_or_default();
                    let key = match intake::event::parse(&body) {
                        Ok(intake::event::Notification::Records(records)) if records.len() == 1 => {
                            records[0].key.clone()
                        }
                        other => format!("(not one upload: {other:?})"),
                    };
                    (key, reason)
                })
                .collect();
            eprintln!(
                "burst: {} jobs, {throttled} batches throttled, {} invocations timed out, parked {parked:?}",
                jobs.len(),
                ocrbridge_local::pipeline::ChaosCounters::get(&p.chaos.timeouts)
            );
            (throttled, parked, jobs)
        })
    };
    // Uploads that are neither a job nor a parked message: lost.
    let lost = |jobs: &BTreeSet<String>, parked: &[(String, String)]| -> Vec<String> {
        (0..UPLOADS)
            .map(|i| format!("receipts/burst/{i:03}.png"))
            .filter(|key| !jobs.contains(key) && !parked.iter().any(|(k, _)| k == key))
            .collect()
    };

    let deployed = std::fs::read_to_string(ocrbridge_local::template_path()).unwrap();
    let (throttled, parked, jobs) = burst(Template::parse(&deployed).unwrap()).await;
    assert_eq!(throttled, 0, "the pollers never outran the function");
    // Every upload is a job. (The local pollers receive one at a time per queue: moto's receive
    // could otherwise hand one message to two of them, each seeing it received twice, and the
    // crash-loop guard would park it — both copies, no job made.)
    assert_eq!(
        jobs.len(),
        UPLOADS,
        "every upload is a job; parked: {parked:?}"
    );

    let cap = "            ScalingConfig:\n              MaximumConcurrency: 10\n";
    assert_eq!(deployed.matches(cap).count(), 1, "intake's cap, once");
    let uncapped = deployed.replace(cap, "");
    let (throttled, parked, jobs) = burst(Template::parse(&uncapped).unwrap()).await;
    assert!(throttled > 0, "a burst past ten slots is throttled");
    // Throttled uploads are parked, no job made. An upload can be both a job and parked (handled,
    // then delivered again past its last chance, as in the capped run), so the check is that
    // none is neither — and that the throttling did cost uploads their jobs.
    assert!(
        jobs.len() < UPLOADS && !parked.is_empty(),
        "the throttled uploads are parked in the DLQ: {} jobs, parked {parked:?}",
        jobs.len()
    );
    assert_eq!(
        lost(&jobs, &parked),
        Vec::<String>::new(),
        "no upload is lost: each is a job or parked"
    );
}

/// A message beyond its last chance is parked before any handler runs. In its turn it would wait
/// behind a neighbour that takes the whole invocation — a slow vendor, a stall — and a timeout
/// every time would carry it past the redrive's `maxReceiveCount`, where SQS moves it without a
/// reason. Here the neighbour never finishes: the invocation is stopped, as Lambda stops one at
/// its timeout, and the crash loop is in the DLQ with its reason all the same.
#[tokio::test]
async fn a_crash_loop_is_parked_before_a_neighbour_can_take_the_invocation() {
    let s = stack().await;
    let intake = intake(&s);
    s.put("receipts/a.png", fixture("receipt.png"), None).await;
    s.put("receipts/b.png", fixture("receipt.png"), None).await;
    let messages = notifications(&s).await;
    assert_eq!(messages.len(), 2);
    let arn = ocrbridge_tests::queue_arn(&s.config.intake_queue_url);
    let mut event = sqs_event(&messages, &arn);
    // The first is on its first delivery (so it goes first); the second is a crash loop.
    let source = ocrbridge::batch::Source {
        name: "intake",
        queue_url: s.config.intake_queue_url.clone(),
        dlq_url: s.config.intake_dlq_url.clone(),
        max_receive_count: s.config.max_receive_count,
        concurrency: 1,
        time_needed: ocrbridge::batch::min_time_per_message,
    };
    event.records[0]
        .attributes
        .insert("ApproximateReceiveCount".into(), "1".into());
    event.records[1].attributes.insert(
        "ApproximateReceiveCount".into(),
        (source.last_chance() + 1).to_string(),
    );
    let looping = event.records[1].message_id.clone().unwrap();
    let stopped = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        ocrbridge::batch::process(
            event,
            &source,
            None,
            &intake.queue,
            &intake.metrics,
            |_, _| std::future::pending::<Result<(), ocrbridge::batch::Failure>>(),
        ),
    )
    .await;
    assert!(stopped.is_err(), "the neighbour never finishes");
    let dead = s.drain(&s.config.intake_dlq_url).await;
    assert_eq!(dead.len(), 1, "only the crash loop is parked");
    let attributes = dead[0].message_attributes().unwrap();
    assert_eq!(
        attributes[REASON_CODE_ATTRIBUTE].string_value(),
        Some("crash_loop")
    );
    assert_eq!(
        attributes[ocrbridge::queue::SOURCE_MESSAGE_ATTRIBUTE].string_value(),
        Some(looping.as_str())
    );
}

/// One trace per document: intake starts it (S3's notification carries none), the job keeps
/// it, and it rides every queue after (SQS's `AWSTraceHeader`) as far as the vendor call
/// (`X-Amzn-Trace-Id`, which the simulator records per submission).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_documents_trace_starts_at_intake_and_reaches_the_vendor_call() {
    trace_reaches_the_vendor(ocrbridge::vendors::select::VendorKind::Sim).await;
}

/// … and through the AWS SDK too: Textract's `Start*` call carries the document's trace, not
/// the batch invocation's (the SDK's own header), so the Textract segment joins it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_documents_trace_reaches_textract_through_the_sdk() {
    trace_reaches_the_vendor(ocrbridge::vendors::select::VendorKind::Textract).await;
}

async fn trace_reaches_the_vendor(vendor: ocrbridge::vendors::select::VendorKind) {
    let (s, p) = ocrbridge_tests::pipeline_on(vendor).await;
    let documents: Vec<Vec<u8>> = ["CORNER CAFE", "HARBOR DINER"]
        .iter()
        .map(|shop| ocrbridge_tests::text_pdf(&[shop, "Total: 4.50"]))
        .collect();
    let mut ids = Vec::new();
    for (i, bytes) in documents.iter().enumerate() {
        s.put(&format!("receipts/trace-{i}.pdf"), bytes.clone(), None)
            .await;
        ids.push(ocrbridge_tests::job_id_for(bytes, "receipt"));
    }
    let jobs =
        ocrbridge_tests::run_until_settled(&p, &s.ledger, &ids, std::time::Duration::from_secs(60))
            .await;
    let traces: Value = reqwest::get(format!("{}/admin/traces", p.sim.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut roots = std::collections::BTreeSet::new();
    for job in &jobs {
        let header = job
            .trace_header
            .as_deref()
            .expect("the job keeps its trace");
        let root = ocrbridge::trace_context::root(header).expect("an X-Ray trace id");
        roots.insert(root.to_owned());
        let vendor_job = job.vendor_job_id.as_deref().expect("submitted");
        // Textract's job ids are kept with their API (`expense:<JobId>`).
        let vendor_job = vendor_job.rsplit(':').next().unwrap_or(vendor_job);
        let sent = traces[vendor_job].as_str().unwrap_or_default();
        assert_eq!(
            ocrbridge::trace_context::root(sent),
            Some(root),
            "the {vendor} call of {} carries the document's trace: {traces}",
            job.id
        );
    }
    assert_eq!(roots.len(), jobs.len(), "one trace per document");
}

/// A document asked for by URL (#30): fetched from a document server into the bucket under its
/// profile's prefix, and taken from there by the normal pipeline to a result. The same bytes by
/// another URL make no second job. A URL that leads inside is refused, counted and recorded,
/// and its query (a presigned URL's signature is a secret) is in no answer or record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_by_url_is_taken_once_and_a_url_leading_inside_is_refused_on_record() {
    use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
    use fetch::{Answer, Fetch, FetchConfig, FetchRequest, REFUSALS_PREFIX};
    use ocrbridge::url_fetch::{FetchPolicy, Fetcher, SystemResolver};
    use ocrbridge_local::pipeline::{Pipeline, PipelineOptions};

    let s = stack().await;
    let p = Pipeline::start(s.clients.clone(), &s.stack, PipelineOptions::default())
        .await
        .unwrap();
    let receipt = ocrbridge_tests::text_pdf(&["CORNER CAFE", "Total: 4.50"]);
    // A document server with the same bytes at two paths.
    let served = receipt.clone();
    let app = axum::Router::new().route(
        "/{name}",
        axum::routing::get(move || {
            let body = served.clone();
            async move { ([("content-type", "application/pdf")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let fetch = Fetch {
        // As an operator allows a document server inside the VPC.
        fetcher: Fetcher::new(
            FetchPolicy {
                allow_http: true,
                allowed_networks: vec!["127.0.0.1/32".parse().unwrap()],
                ..FetchPolicy::default()
            },
            SystemResolver,
        ),
        blob: Blob::new(s.clients.s3.clone()),
        stack: s.config.clone(),
        config: FetchConfig::from_lookup(|_| None).unwrap(),
        metrics: Metrics::memory("fetch"),
    };
    let request = |url: String| FetchRequest {
        url,
        profile: "receipt".into(),
        source: Some("api".into()),
    };
    let mut keys = Vec::new();
    for path in ["a.pdf", "b.pdf?X-Amz-Signature=s3cr3t"] {
        match fetch
            .handle(&request(format!("http://127.0.0.1:{port}/{path}")))
            .await
        {
            Answer::Accepted { key, bytes, .. } => {
                assert_eq!(bytes, receipt.len());
                keys.push(key);
            }
            other => panic!("{path}: {other:?}"),
        }
    }
    assert!(keys[0].starts_with("receipts/api/url-"), "{keys:?}");
    assert_eq!(keys[0], keys[1], "named by content");
    let id = ocrbridge_tests::job_id_for(&receipt, "receipt");
    let jobs = ocrbridge_tests::run_until_settled(
        &p,
        &s.ledger,
        std::slice::from_ref(&id),
        std::time::Duration::from_secs(60),
    )
    .await;
    assert!(
        matches!(jobs[0].state, JobState::Completed | JobState::NeedsReview),
        "{:?}",
        jobs[0]
    );
    assert_eq!(jobs[0].source.key, keys[0]);
    assert!(jobs[0].result_key.is_some());
    let every = ocrbridge_tests::all_jobs(&s.ledger, 100).await;
    let same: Vec<_> = every
        .iter()
        .filter(|j| j.content_sha256 == jobs[0].content_sha256)
        .collect();
    assert_eq!(same.len(), 1, "one job for the content: {same:?}");

    // The refusals recorded in the results bucket.
    let refusal_records = || s.result_keys(REFUSALS_PREFIX);
    // The instance metadata service, with a secret in the query.
    let metadata = "http://169.254.169.254/latest/meta-data/?X-Amz-Signature=s3cr3t";
    let refused = fetch.handle(&request(metadata.into())).await;
    assert_eq!(refused.status(), 422, "{refused:?}");
    assert_eq!(refused.body()["error"], "address_not_public");
    assert!(!refused.body().to_string().contains("s3cr3t"));
    let records = refusal_records().await;
    assert_eq!(records.len(), 1, "{records:?}");
    let record = ocrbridge_tests::results_object(&s, &records[0]).await;
    let record: Value = serde_json::from_slice(&record).unwrap();
    assert_eq!(record["code"], "address_not_public", "{record}");
    assert_eq!(record["url"], "http://169.254.169.254/latest/meta-data/");
    assert!(!record.to_string().contains("s3cr3t"), "{record}");
    let counted = fetch.metrics.recorded();
    assert_eq!(
        counted.get("UrlFetches[fetched,other]"),
        Some(&2.0),
        "{counted:?}"
    );
    assert_eq!(
        counted.get("UrlFetches[address_not_public,other]"),
        Some(&1.0),
        "{counted:?}"
    );

    // What is not a request: another method, a body that is not one, an unknown profile.
    let event = |method: &str, body: &str| {
        let mut e = LambdaFunctionUrlRequest::default();
        e.request_context.http.method = Some(method.into());
        e.body = Some(body.into());
        e
    };
    let get = fetch.handle_event(&event("GET", "")).await;
    assert_eq!(get.status_code, 405);
    let junk = fetch.handle_event(&event("POST", "{\"uri\": 1}")).await;
    assert_eq!(junk.status_code, 400, "{:?}", junk.body);
    let unknown = fetch
        .handle_event(&event(
            "POST",
            &format!(r#"{{"url":"http://127.0.0.1:{port}/a.pdf","profile":"passport"}}"#),
        ))
        .await;
    assert_eq!(unknown.status_code, 400);
    assert!(
        unknown
            .body
            .as_deref()
            .unwrap_or_default()
            .contains("passport"),
        "{:?}",
        unknown.body
    );

    // Our own storage failing is no refusal of the URL: 503 to try again, nothing recorded
    // against the URL. A request naming no source is `direct`, as an upload to a prefix is.
    let broken = Fetch {
        stack: ocrbridge::config::StackConfig {
            documents_bucket: format!("{}-gone", s.config.documents_bucket),
            ..s.config.clone()
        },
        ..fetch
    };
    let unsourced = FetchRequest {
        url: format!("http://127.0.0.1:{port}/a.pdf"),
        profile: "receipt".into(),
        source: None,
    };
    let failed = broken.handle(&unsourced).await;
    assert_eq!(failed.status(), 503, "{failed:?}");
    assert_eq!(failed.body()["error"], "store_failed");
    assert_eq!(failed.body()["retryable"], true);
    let counted = broken.metrics.recorded();
    assert_eq!(
        counted.get("UrlFetches[store_failed,direct]"),
        Some(&1.0),
        "{counted:?}"
    );
    assert_eq!(
        refusal_records().await,
        records,
        "still only the metadata refusal"
    );
}

/// Issue #30's deadline guard: a notification whose upload could not be read in what is left of
/// the invocation (`intake::time_needed`: two reads at S3's stream rate) is handed back untouched
/// instead of started and cut off, which would send the whole batch back and spend a receive of
/// every message in it. Its neighbour, small enough, is handled in the same invocation.
#[tokio::test]
async fn a_notification_that_cannot_finish_in_time_is_handed_back_untouched() {
    let s = stack().await;
    let intake = intake(&s);
    let big = text_pdf_bytes("declared 500 MB by its notification");
    let small = text_pdf_bytes("small enough");
    s.put("receipts/big.pdf", big.clone(), Some("application/pdf"))
        .await;
    s.put("receipts/small.pdf", small.clone(), Some("application/pdf"))
        .await;
    let messages = notifications(&s).await;
    assert_eq!(messages.len(), 2);
    let arn = &s.stack.physical("IntakeQueue").unwrap().attributes["Arn"];
    let mut event = sqs_event(&messages, arn);
    // The big one first: the notification says how large the upload is.
    event
        .records
        .sort_by_key(|r| !r.body.as_deref().unwrap_or_default().contains("big.pdf"));
    let mut body: Value = serde_json::from_str(event.records[0].body.as_deref().unwrap()).unwrap();
    body["Records"][0]["s3"]["object"]["size"] = 500_000_000u64.into();
    event.records[0].body = Some(body.to_string());
    assert!(
        intake::time_needed(&event.records[0]) > std::time::Duration::from_secs(12),
        "two reads of 500 MB"
    );
    assert!(intake::time_needed(&event.records[1]) < std::time::Duration::from_secs(4));

    let deadline = ocrbridge::time::UnixMillis::now().plus(std::time::Duration::from_secs(10));
    let response = intake.handle_sqs(event.clone(), Some(deadline)).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "acknowledged, not retried: {:?}",
        response.batch_item_failures
    );
    let job_of = |bytes: &[u8]| {
        DocumentKey::new(&ContentHash::of(bytes), &Profile::new("receipt").unwrap()).job_id()
    };
    assert_eq!(
        s.ledger.get_job(&job_of(&big)).await.unwrap(),
        None,
        "the big one was started"
    );
    let handled = s.ledger.get_job(&job_of(&small)).await.unwrap();
    assert_eq!(handled.map(|j| j.state), Some(JobState::Queued));
    assert_eq!(intake.metrics.recorded()["OutOfTimeRequeues[intake]"], 1.0);
    let copies = notifications(&s).await;
    assert_eq!(copies.len(), 1, "handed back once");
    assert_eq!(copies[0].body(), event.records[0].body.as_deref());
    assert_eq!(
        copies[0].attributes().unwrap()
            [&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount],
        "1",
        "the copy starts with no receive spent"
    );
}

fn text_pdf_bytes(line: &str) -> Vec<u8> {
    ocrbridge_tests::text_pdf(&[line])
}
