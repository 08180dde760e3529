//! One engine, four protocols: the same documents read by the same engine must leave ocrbridge
//! with the same normalized fields, whichever vendor path they took — the simulator's own API,
//! or the Textract, Azure and Mindee twins and their adapters.
//!
//! Each path re-expresses the engine's reading in its vendor's shape (typed dates and amounts,
//! currency codes, expense groups), and the adapter reads it back. A field that one path keeps
//! and another loses, or a date typed one way by a twin and another by an adapter, is a fault
//! in that twin or adapter: no real document is needed to find it, and none can hide it.

use std::collections::BTreeMap;
use std::time::Duration;

use ocrbridge::job::JobState;
use ocrbridge::vendors::select::VendorKind;
use ocrbridge_local::pipeline::{Pipeline, PipelineOptions};
use ocrbridge_tests::{job_id_for, results_object, run_until_settled, stack_with, text_pdf};
use serde_json::Value;
use vendor_sim::engine::EngineKind;

/// Documents whose readings have tripped a path before: a two-digit year with dashes, a date
/// only the currency orders, a currency written as a code, due and issue dates.
fn documents() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    vec![
        (
            "receipts/cafe.pdf",
            text_pdf(&[
                "CORNER CAFE",
                "Date: 12-01-19",
                "Subtotal: 15.60",
                "Tax: 0.94",
                "Total: 16.54",
            ]),
            "receipt",
        ),
        (
            "receipts/diner.pdf",
            text_pdf(&[
                "HARBOR DINER",
                "Date: 03/04/2026",
                "Subtotal: $21.00",
                "Tax: $2.10",
                "Total: $23.10",
            ]),
            "receipt",
        ),
        (
            "invoices/acme.pdf",
            text_pdf(&[
                "ACME Supplies Ltd",
                "Invoice No: INV-2041",
                "Invoice Date: 12/03/2026",
                "Due Date: 11/04/2026",
                "Paper A4 2 x 25.00 50.00",
                "Toner cartridge                 50.00",
                "Subtotal: EUR 100.00",
                "Tax: EUR 8.00",
                "Total: EUR 108.00",
            ]),
            "invoice",
        ),
    ]
}

/// The typed fields of a stored result, values only (confidence, place and the vendor's own
/// writing differ by protocol, as they should); line items without their confidence.
fn values(result: &Value) -> BTreeMap<String, Value> {
    result["fields"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, field)| {
            let value = match field.as_array() {
                Some(items) => Value::Array(
                    items
                        .iter()
                        .map(|item| {
                            let mut item = item.clone();
                            if let Some(item) = item.as_object_mut() {
                                item.remove("confidence");
                            }
                            item
                        })
                        .collect(),
                ),
                None => field["value"].clone(),
            };
            (name.clone(), value)
        })
        .collect()
}

/// Each document's fields through `vendor`, by upload key.
async fn through(vendor: VendorKind) -> BTreeMap<&'static str, BTreeMap<String, Value>> {
    let s = stack_with(&[("VendorName", vendor.as_str())]).await;
    let p = Pipeline::start(
        s.clients.clone(),
        &s.stack,
        PipelineOptions {
            vendor,
            // Text PDFs: poppler reads their text layer, the same reading on every path.
            engine: EngineKind::Tesseract,
            reconcile_every: Duration::from_secs(3),
            submitted_stale: Duration::from_secs(60),
            ..PipelineOptions::default()
        },
    )
    .await
    .unwrap();
    let documents = documents();
    let mut ids = Vec::new();
    for (key, bytes, profile) in &documents {
        s.put(key, bytes.clone(), None).await;
        ids.push(job_id_for(bytes, profile));
    }
    let jobs = run_until_settled(&p, &s.ledger, &ids, Duration::from_secs(90)).await;
    let mut out = BTreeMap::new();
    for (job, (key, _, _)) in jobs.iter().zip(&documents) {
        assert!(
            matches!(job.state, JobState::Completed | JobState::NeedsReview),
            "{vendor} {key}: {job:?}"
        );
        let result: Value = serde_json::from_slice(
            &results_object(&s, job.result_key.as_deref().expect("a stored result")).await,
        )
        .unwrap();
        out.insert(*key, values(&result));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_readings_give_the_same_fields_through_every_vendor_path() {
    let reference = through(VendorKind::Sim).await;
    // The reference must itself have read what the documents say, or agreeing with it proves
    // nothing.
    let cafe = &reference["receipts/cafe.pdf"];
    assert_eq!(cafe["merchant"], "CORNER CAFE");
    assert_eq!(
        cafe["date"], "2019-01-12",
        "no evidence: day-first, for review"
    );
    assert_eq!(cafe["total"], "16.54");
    let diner = &reference["receipts/diner.pdf"];
    assert_eq!(diner["date"], "2026-03-04", "dollars: month-first");
    assert_eq!(diner["currency"], "USD");
    let acme = &reference["invoices/acme.pdf"];
    assert_eq!(acme["invoice_number"], "INV-2041");
    assert_eq!(acme["issue_date"], "2026-03-12");
    assert_eq!(acme["due_date"], "2026-04-11");
    assert_eq!(acme["currency"], "EUR");
    assert_eq!(acme["total"], "108.00");
    assert_eq!(
        acme["line_items"],
        serde_json::json!([
            { "description": "Paper A4", "quantity": "2", "unit_price": "25.00", "amount": "50.00" },
            { "description": "Toner cartridge", "amount": "50.00" },
        ]),
        "the item rows, each through every path below"
    );

    let mut differences = Vec::new();
    for vendor in [VendorKind::Textract, VendorKind::Azure, VendorKind::Mindee] {
        let fields = through(vendor).await;
        for (key, want) in &reference {
            let got = &fields[key];
            for (name, value) in want {
                let theirs = got.get(name).unwrap_or(&Value::Null);
                if theirs != value {
                    differences.push(format!(
                        "{vendor} {key} {name}: {theirs}, where the simulator's path gives {value}"
                    ));
                }
            }
        }
    }
    assert!(
        differences.is_empty(),
        "the same readings, different fields:\n{}",
        differences.join("\n")
    );
}
