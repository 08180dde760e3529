//! Segments through the pipeline: the source channel from the key or the uploader's metadata,
//! bounded by the allowlist; the document kind and workflow path on completion; cost per
//! document by page bucket; field confidence per vendor, profile and field.

use std::time::Duration;

use ocrbridge::segments::Sources;
use ocrbridge_local::pipeline::{Pipeline, PipelineOptions};
use ocrbridge_tests::{job_id_for, run_until_settled, stack, text_pdf};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_document_is_counted_in_its_bounded_segments() {
    let s = stack().await;
    let mut p = Pipeline::start(s.clients.clone(), &s.stack, PipelineOptions::default())
        .await
        .unwrap();
    p.intake.config.sources = Sources::parse("email,scanner").unwrap();
    let receipt = |shop: &str| {
        text_pdf(&[
            shop,
            "Date: 14/11/2026",
            "Subtotal 15.60",
            "Tax 0.94",
            "Total 16.54",
        ])
    };
    let (email, unknown, direct, declared) = (
        receipt("EMAIL SHOP SDN BHD"),
        receipt("FAX SHOP SDN BHD"),
        receipt("DIRECT SHOP SDN BHD"),
        receipt("DECLARED SHOP SDN BHD"),
    );
    s.put("receipts/email/a.pdf", email.clone(), None).await;
    // A channel nobody declared becomes `other`: its name never reaches CloudWatch.
    s.put("receipts/fax-7731/b.pdf", unknown.clone(), None)
        .await;
    s.put("receipts/c.pdf", direct.clone(), None).await;
    s.clients
        .s3
        .put_object()
        .bucket(&s.config.documents_bucket)
        .key("receipts/anything/d.pdf")
        .metadata("ocrbridge-source", "scanner")
        .body(declared.clone().into())
        .send()
        .await
        .unwrap();
    let ids: Vec<_> = [&email, &unknown, &direct, &declared]
        .iter()
        .map(|b| job_id_for(b, "receipt"))
        .collect();
    let jobs = run_until_settled(&p, &s.ledger, &ids, Duration::from_secs(120)).await;
    let channels: Vec<_> = jobs.iter().map(|j| j.channel.clone().unwrap()).collect();
    assert_eq!(channels, ["email", "other", "direct", "scanner"]);

    let intake = p.intake.metrics.recorded();
    for source in ["email", "other", "direct", "scanner"] {
        assert_eq!(
            intake.get(&format!(
                "DocumentsBySource[{source},application/pdf,accepted]"
            )),
            Some(&1.0),
            "{intake:?}"
        );
    }
    assert!(!intake.keys().any(|k| k.contains("fax-7731")), "{intake:?}");
    let parse = p.parse.metrics.recorded();
    for source in ["email", "other", "direct", "scanner"] {
        assert_eq!(
            parse.get(&format!("DocumentsCompleted[{source},pdf_text,direct]")),
            Some(&1.0),
            "{parse:?}"
        );
    }
    assert!(
        parse
            .get("CostPerDocument[sim,receipt,1]")
            .is_some_and(|c| *c > 0.0),
        "{parse:?}"
    );
    assert!(
        parse
            .keys()
            .any(|k| k.starts_with("FieldConfidence[sim,receipt,receipt,total]")),
        "{parse:?}"
    );
}
