//! The adapters held to what vendors really send.
//!
//! `tests/fixtures/vendors/<vendor>/` holds responses recorded from the real services by others
//! (each folder's README gives every file's source, commit and licence). Beside a recording,
//! `<name>.expected.json` says what it holds — written by reading the payload, not by running
//! our code (its `read_from` says where each figure is in the payload): the vendor or merchant,
//! dates, totals, currency, number, page count, line and word counts, table shapes, checkbox
//! states, key-value pairs, line items.
//!
//! One test normalizes every recording that has an expected file and checks all of it; that
//! standard fields raise no drift; and that the result fits the schema under every profile.

use std::path::{Path, PathBuf};

use ocrbridge::document::Document;
use ocrbridge::job::Profile;
use ocrbridge::vendors::normalize::{NormalizeError, Normalized};
use serde_json::Value;

const PROFILES: [&str; 3] = ["receipt", "invoice", "generic"];

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vendors")
}

/// Every `*.expected.json` under `dir`, recursively.
fn expected_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(expected_files(&path));
        } else if path.to_string_lossy().ends_with(".expected.json") {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn normalize(vendor: &str, raw: &[u8], profile: &str) -> Result<Normalized, NormalizeError> {
    let profile = Profile::new(profile).unwrap();
    let normalize = match vendor {
        "textract" => ocrbridge::vendors::textract::normalize::normalize,
        "azure-di" => ocrbridge::vendors::azure::normalize::normalize,
        "mindee-v2" => ocrbridge::vendors::mindee::normalize::normalize,
        other => panic!("no normalizer for {other}"),
    };
    normalize(raw, "doc-contract", "vendor-job-contract", &profile)
}

/// Two values the same: a count against its number; the rest — amounts too, which have one
/// canonical form (`"14.50"` in USD, `"1320"` in JPY) — exactly.
fn same(got: &Value, want: &Value) -> bool {
    got == want
}

fn check(out: &mut Vec<String>, what: &str, got: Value, want: &Value) {
    if !same(&got, want) {
        out.push(format!("{what}: got {got}, the payload says {want}"));
    }
}

/// What is wrong with `document` against `expected`, one line each.
fn differences(document: &Document, expected: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let lines: Vec<_> = document
        .pages
        .iter()
        .flat_map(|p| &p.blocks)
        .flat_map(|b| &b.lines)
        .collect();
    if let Some(want) = expected.get("pages") {
        check(&mut out, "pages", document.pages.len().into(), want);
    }
    if let Some(want) = expected.get("lines") {
        check(&mut out, "lines", lines.len().into(), want);
    }
    if let Some(want) = expected.get("words") {
        let words: usize = lines.iter().map(|l| l.words.len()).sum();
        check(&mut out, "words", words.into(), want);
    }
    if let Some(want) = expected.get("key_values") {
        check(
            &mut out,
            "key-value pairs",
            document.key_values.len().into(),
            want,
        );
    }
    if let Some(want) = expected["tables"].as_array() {
        check(
            &mut out,
            "tables",
            document.tables.len().into(),
            &want.len().into(),
        );
        for (i, (table, want)) in document.tables.iter().zip(want).enumerate() {
            check(
                &mut out,
                &format!("table {i} rows"),
                table.rows.into(),
                &want["rows"],
            );
            check(
                &mut out,
                &format!("table {i} columns"),
                table.columns.into(),
                &want["columns"],
            );
            if let Some(cells) = want.get("cells") {
                check(
                    &mut out,
                    &format!("table {i} cells"),
                    table.cells.len().into(),
                    cells,
                );
                // Every grid slot is claimed by one cell, once.
                let mut slots = std::collections::BTreeSet::new();
                for c in &table.cells {
                    for r in c.row..c.row + c.row_span {
                        for k in c.column..c.column + c.column_span {
                            if !slots.insert((r, k)) {
                                out.push(format!("table {i}: slot ({r}, {k}) claimed twice"));
                            }
                        }
                    }
                    if c.text != c.text.trim() {
                        out.push(format!("table {i}: cell text {:?} is not trimmed", c.text));
                    }
                }
            }
            if let Some(merged) = want.get("merged") {
                let spanning = table
                    .cells
                    .iter()
                    .filter(|c| c.row_span > 1 || c.column_span > 1)
                    .count();
                check(
                    &mut out,
                    &format!("table {i} merged cells"),
                    spanning.into(),
                    merged,
                );
            }
        }
    }
    if let Some(want) = expected["checkboxes"].as_object() {
        for (state, count) in want {
            let got = document
                .key_values
                .iter()
                .filter(|kv| kv.value == *state)
                .count();
            check(&mut out, &format!("checkboxes {state}"), got.into(), count);
        }
    }
    let json = serde_json::to_value(&document.fields).unwrap();
    if let Some(want) = expected["fields"].as_object() {
        for (name, value) in want {
            check(
                &mut out,
                &format!("field {name}"),
                json[name]["value"].clone(),
                value,
            );
        }
    }
    for name in expected["absent"].as_array().into_iter().flatten() {
        let name = name.as_str().unwrap();
        if !json[name].is_null() {
            out.push(format!(
                "field {name}: got {}, the payload has none",
                json[name]
            ));
        }
    }
    if let Some(want) = expected.get("line_items") {
        check(
            &mut out,
            "line items",
            json["line_items"]
                .as_array()
                .map_or(0, |items| items.len())
                .into(),
            want,
        );
    }
    out
}

#[test]
fn every_recording_normalizes_to_what_its_payload_says() {
    let mut failures = Vec::new();
    let mut counted = std::collections::BTreeMap::<String, usize>::new();
    for expected_path in expected_files(&corpus()) {
        let relative = expected_path.strip_prefix(corpus()).unwrap().to_owned();
        let vendor = relative
            .iter()
            .next()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let expected: Value =
            serde_json::from_slice(&std::fs::read(&expected_path).unwrap()).unwrap();
        let recording = expected_path
            .parent()
            .unwrap()
            .join(expected["recording"].as_str().unwrap());
        let raw = std::fs::read(&recording).unwrap();
        *counted.entry(vendor.clone()).or_default() += 1;
        let name = relative.display().to_string();
        // Its own profile: every figure the payload gives.
        let profile = expected["profile"].as_str().unwrap();
        match normalize(&vendor, &raw, profile) {
            Ok(normalized) => {
                for d in differences(&normalized.document, &expected) {
                    failures.push(format!("{name}: {d}"));
                }
                if !normalized.drift.is_empty() {
                    failures.push(format!(
                        "{name}: standard fields reported as drift: {:?}",
                        normalized.drift
                    ));
                }
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
        // Every profile: the schema holds whatever the profile asks of the payload.
        for other in PROFILES {
            match normalize(&vendor, &raw, other) {
                Ok(n) => {
                    if let Err(v) = n.document.to_validated_json() {
                        failures.push(format!("{name} as {other}: breaks the schema: {v}"));
                    }
                }
                Err(e) => failures.push(format!("{name} as {other}: {e}")),
            }
        }
    }
    eprintln!("contract corpus: {counted:?}");
    for vendor in ["textract", "azure-di", "mindee-v2"] {
        assert!(
            counted.get(vendor).is_some_and(|n| *n >= 3),
            "{vendor}: fewer than 3 recordings with expected fields ({counted:?})"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn recording(path: &str) -> Value {
    serde_json::from_slice(&std::fs::read(corpus().join(path)).unwrap()).unwrap()
}

fn field(normalized: &Normalized, name: &str) -> Value {
    serde_json::to_value(&normalized.document.fields).unwrap()[name]["value"].clone()
}

/// A field as the vendor wrote it, kept beside its canonical value.
fn raw(normalized: &Normalized, name: &str) -> Value {
    serde_json::to_value(&normalized.document.fields).unwrap()[name]["raw"].clone()
}

/// Textract's expense `NAME` belongs to the party its group names. From the real multipage
/// invoice, whose RECEIVER group holds two names: without `VENDOR_NAME`, the vendor is the
/// VENDOR group's name; without that too, no vendor — never the customer's name.
#[test]
fn the_vendor_is_never_filled_with_another_partys_name() {
    let mut payload = recording("textract/analyzeExpenseResponse-multipage.json");
    let drop = |payload: &mut Value, keep: &dyn Fn(&Value) -> bool| {
        for document in payload["ExpenseDocuments"].as_array_mut().unwrap() {
            document["SummaryFields"]
                .as_array_mut()
                .unwrap()
                .retain(|f| keep(f));
        }
    };
    drop(&mut payload, &|f| f["Type"]["Text"] != "VENDOR_NAME");
    let raw = serde_json::to_vec(&payload).unwrap();
    let normalized = normalize("textract", &raw, "invoice").unwrap();
    assert_eq!(field(&normalized, "vendor_name"), "META\n-");

    let in_vendor_group = |f: &Value| {
        f["GroupProperties"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|g| g["Types"].as_array().unwrap().iter().any(|t| t == "VENDOR"))
    };
    drop(&mut payload, &|f| {
        !(f["Type"]["Text"] == "NAME" && in_vendor_group(f))
    });
    let raw = serde_json::to_vec(&payload).unwrap();
    for profile in ["invoice", "receipt"] {
        let normalized = normalize("textract", &raw, profile).unwrap();
        let name = if profile == "invoice" {
            "vendor_name"
        } else {
            "merchant"
        };
        assert!(
            field(&normalized, name).is_null(),
            "{profile}: {}",
            field(&normalized, name)
        );
    }
}

/// Mindee v2's `raw_text` (`pages[].content`, sent when the job asks for it) is the pages' text:
/// it becomes lines and words, and its pages count even where `file.page_count` says fewer.
/// (The recordings were made without the option, so it is added to a real one.)
#[test]
fn mindee_raw_text_gives_lines_and_pages() {
    let mut payload = recording("mindee-v2/financial_document/complete.json");
    payload["inference"]["result"]["raw_text"] = serde_json::json!({
        "pages": [
            {"content": "John Smith\nINVOICE INT-001\n\nTotal 204.75"},
            {"content": "Page two"}
        ]
    });
    let raw = serde_json::to_vec(&payload).unwrap();
    let document = normalize("mindee-v2", &raw, "invoice").unwrap().document;
    assert_eq!(
        document.pages.len(),
        2,
        "file.page_count says 1, raw_text 2"
    );
    let lines: Vec<&str> = document
        .pages
        .iter()
        .flat_map(|p| &p.blocks)
        .flat_map(|b| &b.lines)
        .map(|l| l.text.as_str())
        .collect();
    assert_eq!(
        lines,
        ["John Smith", "INVOICE INT-001", "Total 204.75", "Page two"]
    );
    assert_eq!(document.reading_order.len(), 4);
    assert_eq!(document.pages[1].blocks[0].lines[0].words.len(), 2);
    document.to_validated_json().unwrap();
}

/// Standard fields of Mindee's invoice model are not drift (they used to raise the alarm on
/// every invoice): the real recording, with the invoice model's fields it did not happen to
/// carry.
#[test]
fn standard_mindee_invoice_fields_raise_no_drift() {
    let mut payload = recording("mindee-v2/financial_document/complete.json");
    let fields = payload["inference"]["result"]["fields"]
        .as_object_mut()
        .unwrap();
    for name in [
        "customer_id",
        "payment_date",
        "po_number",
        "customer_company_registration",
        "supplier_company_registrations",
    ] {
        fields.insert(name.into(), serde_json::json!({"value": null}));
    }
    let raw = serde_json::to_vec(&payload).unwrap();
    let normalized = normalize("mindee-v2", &raw, "invoice").unwrap();
    assert!(normalized.drift.is_empty(), "{:?}", normalized.drift);
    // A field no model has is still drift.
    let fields = payload["inference"]["result"]["fields"]
        .as_object_mut()
        .unwrap();
    fields.insert("not_a_mindee_field".into(), serde_json::json!({"value": 1}));
    let raw = serde_json::to_vec(&payload).unwrap();
    let normalized = normalize("mindee-v2", &raw, "invoice").unwrap();
    assert_eq!(normalized.drift.len(), 1, "{:?}", normalized.drift);
}

/// A numeric date's order comes from evidence: an impossible reading, then the document's
/// country or currency; with none, it stays ambiguous — the day-first reading at a lowered
/// confidence, and a reason for review with the vendor's text — instead of a silent guess.
/// (The real Costco receipt, given the dates the issue saw: Textract's `12/07/2019` on a USD
/// document was read as 12 July, and `01/13/17` gave no date.)
#[test]
fn dates_are_read_in_the_order_the_document_gives() {
    let with = |date: &str, currency: Option<&str>| {
        let mut payload = recording("textract/test_trp2_expense_sample2.json");
        let fields = payload["ExpenseDocuments"][0]["SummaryFields"]
            .as_array_mut()
            .unwrap();
        fields.push(serde_json::json!({
            "Type": {"Text": "INVOICE_RECEIPT_DATE", "Confidence": 99.0},
            "ValueDetection": {"Text": date, "Confidence": 98.0},
            "PageNumber": 1
        }));
        if let Some(code) = currency {
            for f in fields.iter_mut().filter(|f| f["Type"]["Text"] == "TOTAL") {
                f["Currency"] = serde_json::json!({"Code": code});
            }
        }
        normalize(
            "textract",
            &serde_json::to_vec(&payload).unwrap(),
            "receipt",
        )
        .unwrap()
    };
    // A USD total: the United States' order.
    let us = with("12/07/2019", Some("USD"));
    assert_eq!(field(&us, "date"), "2019-12-07");
    assert!(us.ambiguous_dates.is_empty());
    // A euro total: day first.
    assert_eq!(
        field(&with("12/07/2019", Some("EUR")), "date"),
        "2019-07-12"
    );
    // Only one reading is possible, whatever the evidence: month 13 does not exist.
    let only = with("01/13/17", None);
    assert_eq!(field(&only, "date"), "2017-01-13");
    assert!(only.ambiguous_dates.is_empty());
    // Nothing to go on: kept, flagged, and its confidence lowered below the review threshold.
    let unsure = with("12/07/2019", None);
    assert_eq!(field(&unsure, "date"), "2019-07-12");
    let json = serde_json::to_value(&unsure.document.fields).unwrap();
    assert!(
        json["date"]["confidence"].as_f64().unwrap() <= 0.5,
        "{json}"
    );
    assert_eq!(unsure.ambiguous_dates.len(), 1);
    assert_eq!(unsure.ambiguous_dates[0].raw, "12/07/2019");
    let reasons = ocrbridge::rules::ambiguous_dates(&unsure.ambiguous_dates);
    assert_eq!(reasons[0].rule, "ambiguous_date");
    assert!(
        reasons[0].detail.contains("\"12/07/2019\""),
        "{}",
        reasons[0].detail
    );
    // The same day either way is no ambiguity.
    assert!(with("07/07/2019", None).ambiguous_dates.is_empty());
}

/// Money is one canonical decimal string in its currency's minor units (ISO 4217), whatever
/// the vendor wrote: Azure's `valueNumber` 14.5 is "14.50", Mindee's 195.0 in EUR "195.00",
/// and the same total in yen "1320", in dinars "12.500". What the vendor wrote is kept beside
/// it, as `raw`, whatever the vendor.
#[test]
fn money_is_one_canonical_string_whatever_the_vendor() {
    let azure = normalize(
        "azure-di",
        &std::fs::read(corpus().join("azure-di/receipt-url-2022-08-31.result.json")).unwrap(),
        "receipt",
    )
    .unwrap();
    assert_eq!(field(&azure, "total"), "14.50");
    assert_eq!(field(&azure, "subtotal"), "11.70");
    // Beside each, what the receipt printed: a decimal comma, a space after the sign.
    assert_eq!(raw(&azure, "total"), "$14,50");
    assert_eq!(raw(&azure, "subtotal"), "$ 11.70");
    assert_eq!(field(&azure, "date"), "2019-06-10");
    assert_eq!(raw(&azure, "date"), "6/10/2019");
    let textract = normalize(
        "textract",
        &std::fs::read(corpus().join("textract/analyzeExpenseResponse-multipage.json")).unwrap(),
        "invoice",
    )
    .unwrap();
    assert_eq!(field(&textract, "total"), "5715.00");
    assert_eq!(raw(&textract, "total"), "$5,715.00");
    assert_eq!(field(&textract, "issue_date"), "2020-03-12");
    assert_eq!(raw(&textract, "issue_date"), "12 March 2020");
    let mindee = |currency: &str, total: f64| {
        let mut payload = recording("mindee-v2/financial_document/complete.json");
        payload["inference"]["result"]["fields"]["locale"]["fields"]["currency"]["value"] =
            currency.into();
        payload["inference"]["result"]["fields"]["total_amount"]["value"] = total.into();
        normalize(
            "mindee-v2",
            &serde_json::to_vec(&payload).unwrap(),
            "invoice",
        )
        .unwrap()
    };
    let eur = mindee("EUR", 204.75);
    assert_eq!(field(&eur, "subtotal"), "195.00");
    assert_eq!(field(&mindee("JPY", 1320.0), "total"), "1320");
    // Mindee types its values and prints none: its JSON number is what it wrote.
    assert_eq!(raw(&mindee("JPY", 1320.0), "total"), "1320.0");
    assert_eq!(field(&mindee("KWD", 12.5), "total"), "12.500");
    assert_eq!(field(&mindee("USD", 1320.0), "total"), "1320.00");
    // Digits past the minor units are the vendor's, not rounded away.
    assert_eq!(field(&mindee("USD", 14.505), "total"), "14.505");
    let json = serde_json::to_value(&eur.document.fields).unwrap();
    assert!(json["line_items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["amount"]
            .as_str()
            .unwrap()
            .split_once('.')
            .unwrap()
            .1
            .len()
            == 2));
}
