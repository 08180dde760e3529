//! Real Textract and Mindee v2 payloads (other projects' fixtures) fit `Document v1`.
//!
//! The full Textract and Mindee adapters come later; these converters are just enough to prove
//! the schema can hold what those vendors return: multi-page text, tables with merged cells,
//! key-value pairs, expense summaries with line items, and Mindee's typed fields.

use std::str::FromStr;

use ocrbridge::document::{
    validate_json, BBox, Document, Field, Fields, InvoiceFields, LineItem, VendorInfo,
    SCHEMA_VERSION,
};
use ocrbridge::vendor::normalize::parse_date;
use ocrbridge_tests::shared_dir;
use rust_decimal::Decimal;
use serde_json::Value;

fn load(path: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(shared_dir().join("fixtures").join(path)).unwrap(),
    )
    .unwrap()
}

fn textract(path: &str, profile: &str) -> ocrbridge::vendor::normalize::Normalized {
    let raw = std::fs::read(shared_dir().join("fixtures").join(path)).unwrap();
    ocrbridge::vendor::textract::normalize::normalize(
        &raw,
        "doc-fixture",
        "text:fixture",
        &ocrbridge::job::Profile::new(profile).unwrap(),
    )
    .unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn textract_text_tables_and_forms_fit_the_schema() {
    for name in [
        "textract/tables_with_merged_cells_sample1.json",
        "textract/multi-page-forms-samples-2-page.json",
        "textract/gib__180_degrees.json",
        "textract/little_women_page_1.json",
        "textract/queries_sample.json",
    ] {
        let normalized = textract(name, "generic");
        let json = normalized
            .document
            .to_validated_json()
            .unwrap_or_else(|v| panic!("{name}: {v}"));
        assert!(!normalized.document.reading_order.is_empty(), "{name}");
        assert_eq!(json["schema_version"], SCHEMA_VERSION);
        assert!(
            normalized.drift.is_empty(),
            "{name}: {:?}",
            normalized.drift
        );
    }
    let merged = textract("textract/tables_with_merged_cells_sample1.json", "generic").document;
    assert_eq!(merged.tables.len(), 3);
    assert!(
        merged
            .tables
            .iter()
            .flat_map(|t| &t.cells)
            .any(|c| c.row_span > 1 || c.column_span > 1),
        "merged cells keep their spans"
    );
    let forms = textract("textract/multi-page-forms-samples-2-page.json", "generic").document;
    assert_eq!(forms.pages.len(), 2);
    assert!(forms.key_values.len() >= 30, "{}", forms.key_values.len());
}

/// Textract AnalyzeExpense: summary fields and line items as typed receipt and invoice fields.
#[test]
fn textract_expense_documents_fit_the_invoice_and_receipt_fields() {
    for name in [
        "textract/analyzeExpenseResponse-multipage.json",
        "textract/test_trp2_expense_sample1.json",
        "textract/test_trp2_expense_sample2.json",
        "textract/test_trp2_expense_sample3.json",
    ] {
        let invoice = textract(name, "invoice");
        let json = invoice
            .document
            .to_validated_json()
            .unwrap_or_else(|v| panic!("{name}: {v}"));
        assert!(
            json["fields"]["total"]["value"].is_string() || json["fields"]["total"].is_null(),
            "{name}"
        );
        assert!(invoice.drift.is_empty(), "{name}: {:?}", invoice.drift);
        let receipt = textract(name, "receipt");
        receipt
            .document
            .to_validated_json()
            .unwrap_or_else(|v| panic!("{name}: {v}"));
    }
    // What each fixture holds, carried over: a hospital bill (total and line items)…
    let Fields::Invoice(bill) = textract("textract/test_trp2_expense_sample1.json", "invoice")
        .document
        .fields
    else {
        panic!("an invoice")
    };
    assert!(
        bill.total.is_some() && bill.line_items.len() >= 10,
        "{bill:?}"
    );
    // …a receipt with its subtotal and tax…
    let Fields::Receipt(receipt) = textract("textract/test_trp2_expense_sample2.json", "receipt")
        .document
        .fields
    else {
        panic!("a receipt")
    };
    assert!(
        receipt.merchant.is_some()
            && receipt.subtotal.is_some()
            && receipt.tax.is_some()
            && receipt.total.is_some(),
        "{receipt:?}"
    );
    // …and a two-document invoice whose own blocks carry its pages.
    let multipage = textract("textract/analyzeExpenseResponse-multipage.json", "invoice").document;
    let Fields::Invoice(invoice) = &multipage.fields else {
        panic!("an invoice")
    };
    assert!(
        invoice.vendor_name.is_some()
            && invoice.invoice_number.is_some()
            && invoice.issue_date.is_some()
            && invoice.due_date.is_some()
            && invoice.total.is_some(),
        "{invoice:?}"
    );
    assert!(!multipage.pages.is_empty() && !multipage.reading_order.is_empty());
}

/// A Mindee field value with its confidence, page and box.
type Located<'a> = (&'a Value, Option<f64>, Option<u32>, Option<BBox>);

fn mindee_confidence(v: &Value) -> Option<f64> {
    match v.as_str() {
        Some("Certain") => Some(1.0),
        Some("High") => Some(0.9),
        Some("Medium") => Some(0.6),
        Some("Low") => Some(0.3),
        _ => None,
    }
}

/// Mindee v2 financial documents: typed fields with polygons on 0-based pages.
#[test]
fn mindee_financial_documents_fit_the_invoice_fields() {
    for name in [
        "mindee-v2/financial_document/complete.json",
        "mindee-v2/financial_document/complete_with_coordinates.json",
        "mindee-v2/financial_document/blank.json",
    ] {
        let payload = load(name);
        let fields = &payload["inference"]["result"]["fields"];
        let located = |f: &Value| {
            let location = f["locations"].as_array().and_then(|l| l.first());
            let page = location
                .and_then(|l| l["page"].as_u64())
                .map(|p| p as u32 + 1);
            let bbox = location
                .and_then(|l| l["polygon"].as_array())
                .map(|points| {
                    let xs: Vec<f64> = points.iter().filter_map(|p| p[0].as_f64()).collect();
                    let ys: Vec<f64> = points.iter().filter_map(|p| p[1].as_f64()).collect();
                    let (l, t) = (
                        xs.iter().cloned().fold(1.0, f64::min).clamp(0.0, 1.0),
                        ys.iter().cloned().fold(1.0, f64::min).clamp(0.0, 1.0),
                    );
                    let (r, b) = (
                        xs.iter().cloned().fold(0.0, f64::max).clamp(0.0, 1.0),
                        ys.iter().cloned().fold(0.0, f64::max).clamp(0.0, 1.0),
                    );
                    BBox {
                        left: l,
                        top: t,
                        width: (r - l).max(0.0),
                        height: (b - t).max(0.0),
                    }
                });
            (page, bbox)
        };
        let field = |name: &str| -> Option<Located<'_>> {
            let f = fields.get(name)?;
            let value = f.get("value").filter(|v| !v.is_null())?;
            let (page, bbox) = located(f);
            Some((value, mindee_confidence(&f["confidence"]), page, bbox))
        };
        let money = |name: &str| {
            field(name).and_then(|(v, c, page, bbox)| {
                let value = Decimal::from_str(&v.to_string()).ok()?;
                Some(Field {
                    value,
                    confidence: c,
                    page,
                    bbox,
                })
            })
        };
        let text = |name: &str| {
            field(name).and_then(|(v, c, page, bbox)| {
                Some(Field {
                    value: v.as_str()?.to_owned(),
                    confidence: c,
                    page,
                    bbox,
                })
            })
        };
        let date = |name: &str| {
            field(name).and_then(|(v, c, page, bbox)| {
                Some(Field {
                    value: parse_date(v.as_str()?)?,
                    confidence: c,
                    page,
                    bbox,
                })
            })
        };
        let line_items = fields["line_items"]["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| {
                let f = &item["fields"];
                let dec = |k: &str| {
                    f[k]["value"]
                        .as_f64()
                        .and_then(|v| Decimal::from_str(&v.to_string()).ok())
                };
                Some(LineItem {
                    description: f["description"]["value"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    quantity: dec("quantity"),
                    unit_price: dec("unit_price"),
                    amount: dec("total_price")?,
                    confidence: mindee_confidence(&item["confidence"]),
                })
            })
            .collect();
        let currency = fields["locale"]["fields"]["currency"]["value"]
            .as_str()
            .map(|c| Field {
                value: c.to_owned(),
                confidence: mindee_confidence(
                    &fields["locale"]["fields"]["currency"]["confidence"],
                ),
                page: None,
                bbox: None,
            });
        let document = Document {
            schema_version: SCHEMA_VERSION.into(),
            job_id: "doc-mindee".into(),
            vendor: VendorInfo {
                name: "mindee".into(),
                job_id: payload["inference"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
                model: None,
            },
            pages: vec![],
            reading_order: vec![],
            tables: vec![],
            key_values: vec![],
            fields: Fields::Invoice(InvoiceFields {
                vendor_name: text("supplier_name"),
                invoice_number: text("invoice_number"),
                issue_date: date("date"),
                due_date: date("due_date"),
                subtotal: money("total_net"),
                tax: money("total_tax"),
                total: money("total_amount"),
                currency,
                line_items,
            }),
        };
        validate_json(&serde_json::to_value(&document).unwrap())
            .unwrap_or_else(|v| panic!("{name}: {v}"));
    }
    // The sample has enough in it to be worth checking, not only validating.
    let complete = load("mindee-v2/financial_document/complete.json");
    assert!(complete["inference"]["result"]["fields"]["total_amount"]["value"].is_number());
}
