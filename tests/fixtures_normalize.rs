//! Real Textract, Azure Document Intelligence and Mindee v2 payloads (other projects' fixtures)
//! fit `Document v1`.
//!
//! Each adapter's own normalizer, on the vendors' real payloads: multi-page text, tables with
//! merged cells, key-value pairs, expense summaries with line items, Azure's typed documents and
//! Mindee's typed fields (with their nulls).

use std::str::FromStr;

use ocrbridge::document::{Fields, ReceiptFields, SCHEMA_VERSION};
use ocrbridge::vendors::normalize::Normalized;
use ocrbridge_tests::vendor_recordings;
use rust_decimal::Decimal;
use serde_json::Value;

fn load(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(vendor_recordings().join(path)).unwrap()).unwrap()
}

fn textract(path: &str, profile: &str) -> Normalized {
    let raw = std::fs::read(vendor_recordings().join(path)).unwrap();
    ocrbridge::vendors::textract::normalize::normalize(
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

fn normalized(
    normalize: fn(
        &[u8],
        &str,
        &str,
        &ocrbridge::job::Profile,
    ) -> Result<Normalized, ocrbridge::vendors::normalize::NormalizeError>,
    path: &str,
    profile: &str,
) -> Normalized {
    let raw = std::fs::read(vendor_recordings().join(path)).unwrap();
    let normalized = normalize(
        &raw,
        "doc-fixture",
        "vendor-job",
        &ocrbridge::job::Profile::new(profile).unwrap(),
    )
    .unwrap_or_else(|e| panic!("{path}: {e}"));
    normalized
        .document
        .to_validated_json()
        .unwrap_or_else(|v| panic!("{path} as {profile}: {v}"));
    normalized
}

/// Mindee v2 financial documents: typed fields with polygons on 0-based pages; nulls are missing
/// fields, not crashes.
#[test]
fn mindee_financial_documents_fit_the_receipt_and_invoice_fields() {
    use ocrbridge::vendors::mindee::normalize::normalize;
    for name in [
        "mindee-v2/financial_document/complete.json",
        "mindee-v2/financial_document/complete_with_coordinates.json",
        "mindee-v2/financial_document/default_sample.json",
        "mindee-v2/financial_document/blank.json",
    ] {
        for profile in ["invoice", "receipt", "generic"] {
            let n = normalized(normalize, name, profile);
            assert!(n.drift.is_empty(), "{name}: {:?}", n.drift);
            assert_eq!(n.document.vendor.name, "mindee");
        }
    }
    let Fields::Invoice(invoice) = normalized(
        normalize,
        "mindee-v2/financial_document/complete_with_coordinates.json",
        "invoice",
    )
    .document
    .fields
    else {
        panic!("an invoice")
    };
    let total = invoice.total.expect("a total");
    assert_eq!(total.value, Decimal::from_str("204.75").unwrap());
    assert_eq!(total.confidence, Some(0.9), "High");
    assert_eq!(total.page, Some(1), "page 0 is our page 1");
    let bbox = total.bbox.expect("a box");
    assert!(bbox.left > 0.8 && bbox.width > 0.0 && bbox.left + bbox.width <= 1.0);
    assert_eq!(invoice.vendor_name.unwrap().value, "John Smith");
    assert_eq!(invoice.invoice_number.unwrap().value, "INT-001");
    assert_eq!(invoice.issue_date.unwrap().value.to_string(), "2019-02-11");
    assert_eq!(invoice.line_items.len(), 3);
    // A blank document: every field null, nothing invented.
    let Fields::Receipt(blank) = normalized(
        normalize,
        "mindee-v2/financial_document/blank.json",
        "receipt",
    )
    .document
    .fields
    else {
        panic!("a receipt")
    };
    assert_eq!(blank, ReceiptFields::default());
}

/// A field Mindee adds, and a value that turns null, are drift and a missing field.
#[test]
fn mindee_drift_and_new_nulls_are_reported_not_fatal() {
    use ocrbridge::vendors::mindee::normalize::normalize;
    let mut payload = load("mindee-v2/financial_document/complete.json");
    let fields = &mut payload["inference"]["result"]["fields"];
    fields["purchase_category_v2"] = serde_json::json!({"value": "food"});
    fields["total_amount"]["value"] = Value::Null;
    let n = normalize(
        &serde_json::to_vec(&payload).unwrap(),
        "doc-x",
        "job",
        &ocrbridge::job::Profile::new("receipt").unwrap(),
    )
    .unwrap();
    assert_eq!(
        n.drift
            .iter()
            .map(|d| (d.field.as_str(), d.kind.as_str()))
            .collect::<Vec<_>>(),
        [(
            "inference.result.fields.purchase_category_v2",
            "unknown_field"
        )]
    );
    let Fields::Receipt(receipt) = n.document.fields else {
        panic!("a receipt")
    };
    assert!(receipt.total.is_none() && receipt.subtotal.is_some());
}

/// Mindee's own job payloads: processing, processed, failed with its validation errors.
#[test]
fn mindee_job_statuses() {
    use ocrbridge::vendors::mindee::job_status;
    use ocrbridge::vendors::VendorStatus;
    let job = |name: &str| load(&format!("mindee-v2/job/{name}"))["job"].clone();
    assert_eq!(
        job_status(&job("ok_processing.json")),
        VendorStatus::Processing
    );
    assert_eq!(
        job_status(&job("ok_processed_webhooks_ok.json")),
        VendorStatus::Succeeded
    );
    match job_status(&job("fail_422.json")) {
        VendorStatus::Failed { code, message } => {
            assert_eq!(code, "422-001");
            assert!(message.contains("#/model_id"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        job_status(&serde_json::json!({"status": "Queued"})),
        VendorStatus::Unknown("Queued".into())
    );
}

/// Azure Document Intelligence's recorded results: receipt, invoice (with a table, key-value
/// pairs and line items) and layout, from the operation object as the adapter archives it.
#[test]
fn azure_results_fit_the_schema() {
    use ocrbridge::vendors::azure::normalize::normalize;
    let receipt = normalized(
        normalize,
        "azure-di/receipt-url-2022-08-31.result.json",
        "receipt",
    );
    assert!(receipt.drift.is_empty(), "{:?}", receipt.drift);
    let doc = &receipt.document;
    assert_eq!(doc.vendor.model.as_deref(), Some("prebuilt-receipt"));
    assert_eq!(doc.pages[0].unit, "pixel");
    assert!(!doc.reading_order.is_empty());
    let first = &doc.pages[0].blocks[0].lines[0];
    assert_eq!(first.text, "Contoso");
    assert_eq!(first.words.len(), 1, "words join their line by span");
    let Fields::Receipt(r) = &doc.fields else {
        panic!("a receipt")
    };
    assert_eq!(r.merchant.as_ref().unwrap().value, "Contoso");
    assert_eq!(
        r.total.as_ref().unwrap().value,
        Decimal::from_str("14.5").unwrap()
    );
    assert_eq!(
        r.tax.as_ref().unwrap().value,
        Decimal::from_str("1.17").unwrap()
    );
    assert_eq!(r.date.as_ref().unwrap().value.to_string(), "2019-06-10");
    let total_box = r.total.as_ref().unwrap().bbox.expect("a box");
    assert!(total_box.left > 0.0 && total_box.left + total_box.width <= 1.0);

    let invoice = normalized(
        normalize,
        "azure-di/invoice-url-2023-02-28-preview.result.json",
        "invoice",
    );
    assert!(invoice.drift.is_empty(), "{:?}", invoice.drift);
    let doc = &invoice.document;
    assert_eq!(doc.pages[0].unit, "inch");
    assert_eq!(doc.tables.len(), 1);
    assert_eq!((doc.tables[0].rows, doc.tables[0].columns), (3, 5));
    assert!(
        doc.tables[0].cells.iter().any(|c| c.row_span > 1),
        "rowSpan kept"
    );
    assert!(!doc.key_values.is_empty());
    let Fields::Invoice(i) = &doc.fields else {
        panic!("an invoice")
    };
    assert_eq!(i.vendor_name.as_ref().unwrap().value, "Contoso");
    assert_eq!(i.invoice_number.as_ref().unwrap().value, "34278587");
    assert_eq!(
        i.total.as_ref().unwrap().value,
        Decimal::from_str("56651.49").unwrap()
    );
    assert_eq!(i.currency.as_ref().unwrap().value, "USD");
    assert_eq!(i.due_date.as_ref().unwrap().value.to_string(), "2017-06-24");
    assert_eq!(i.line_items.len(), 1);

    let layout = normalized(
        normalize,
        "azure-di/layout-url-2023-02-28-preview.result.json",
        "generic",
    );
    assert!(layout.drift.is_empty(), "{:?}", layout.drift);
    assert_eq!(layout.document.tables.len(), 1);
    assert!(layout.document.fields == Fields::Generic);
}

/// A result that holds several documents keeps each one's fields apart: Textract's expense
/// documents that agree on who and what they are (the recording is one invoice split by page:
/// its date on page 1, its total on page 2) are read as one; the same recording with the second
/// page made another invoice (its own number and total) is two documents — the fields are the
/// first's alone, never its number with the other's total, and the job goes to review.
#[test]
fn several_documents_in_one_result_are_never_paired_or_dropped_silently() {
    use ocrbridge::vendors::normalize::MultipleDocuments;
    let invoice_of = |n: &Normalized| match &n.document.fields {
        Fields::Invoice(i) => i.clone(),
        other => panic!("an invoice, not {other:?}"),
    };
    let path = "textract/analyzeExpenseResponse-multipage.json";
    let one = textract(path, "invoice");
    assert_eq!(one.multiple_documents, None, "pages of one invoice");
    let merged = invoice_of(&one);
    assert_eq!(
        merged.invoice_number.map(|f| f.value).as_deref(),
        Some("00000135")
    );
    assert_eq!(
        merged.total.map(|f| f.value.to_string()).as_deref(),
        Some("5715.00")
    );

    // The second expense document becomes another invoice.
    let mut two = load(path);
    for field in two["ExpenseDocuments"][1]["SummaryFields"]
        .as_array_mut()
        .unwrap()
    {
        match field["Type"]["Text"].as_str() {
            Some("INVOICE_RECEIPT_ID") => field["ValueDetection"]["Text"] = "00000136".into(),
            Some("TOTAL") => field["ValueDetection"]["Text"] = "$99.00".into(),
            _ => {}
        }
    }
    let normalized = ocrbridge::vendors::textract::normalize::normalize(
        &serde_json::to_vec(&two).unwrap(),
        "doc-fixture",
        "text:fixture",
        &ocrbridge::job::Profile::new("invoice").unwrap(),
    )
    .unwrap();
    let first = invoice_of(&normalized);
    assert_eq!(
        first.invoice_number.map(|f| f.value).as_deref(),
        Some("00000135")
    );
    assert_eq!(
        first.total, None,
        "the first invoice states no total: none is borrowed"
    );
    assert_eq!(first.due_date, None, "nor the other's due date");
    let found = normalized
        .multiple_documents
        .clone()
        .expect("two documents found");
    assert_eq!(found.found, 2);
    assert!(found.evidence.contains("00000136"), "{}", found.evidence);
    let reason = ocrbridge::rules::multiple_documents(normalized.multiple_documents.as_ref())
        .expect("a review reason");
    assert_eq!(reason.rule, "multiple_documents");
    // The text of every page is kept.
    assert_eq!(normalized.document.pages.len(), 2);

    // Azure: a second receipt in documents[] (another merchant) is found, and not read into the
    // first's fields.
    use ocrbridge::vendors::azure::normalize::normalize as azure;
    let path = "azure-di/receipt-url-2022-08-31.result.json";
    let mut receipts = load(path);
    let mut other = receipts["analyzeResult"]["documents"][0].clone();
    other["fields"]["MerchantName"]["valueString"] = "Fabrikam".into();
    other["fields"]["MerchantName"]["content"] = "Fabrikam".into();
    receipts["analyzeResult"]["documents"]
        .as_array_mut()
        .unwrap()
        .push(other);
    let profile = ocrbridge::job::Profile::new("receipt").unwrap();
    let single = azure(
        &std::fs::read(vendor_recordings().join(path)).unwrap(),
        "d",
        "v",
        &profile,
    )
    .unwrap();
    assert_eq!(single.multiple_documents, None);
    let normalized = azure(&serde_json::to_vec(&receipts).unwrap(), "d", "v", &profile).unwrap();
    let Fields::Receipt(ReceiptFields { merchant, .. }) = &normalized.document.fields else {
        panic!("a receipt")
    };
    assert_eq!(merchant.as_ref().map(|f| f.value.as_str()), Some("Contoso"));
    assert!(matches!(
        normalized.multiple_documents,
        Some(MultipleDocuments { found: 2, .. })
    ));
}

/// The vendors' own handwriting signals, on their real payloads: Textract marks each word
/// `TextType: PRINTED | HANDWRITING`, Azure lists handwritten spans of the content in
/// `styles[]`. Counted per word, a form filled in by hand is `some`, not `none` or `unknown`.
#[test]
fn handwriting_is_read_from_the_vendors_own_marks() {
    use ocrbridge::language::Handwriting;
    let marked = |doc: &ocrbridge::document::Document| {
        let words: Vec<_> = doc
            .pages
            .iter()
            .flat_map(|p| &p.blocks)
            .flat_map(|b| &b.lines)
            .flat_map(|l| &l.words)
            .collect();
        (
            words.iter().filter(|w| w.handwritten == Some(true)).count(),
            words.iter().filter(|w| w.handwritten.is_some()).count(),
        )
    };
    // The recording's README: 21 of its 71 words are handwriting.
    let form = textract(
        "textract/analyze_document_employment_app_js_v3.json",
        "generic",
    )
    .document;
    assert_eq!(marked(&form), (21, 71));
    assert_eq!(Handwriting::of(&form), Handwriting::Some);
    let forms = textract("textract/multi-page-forms-samples-2-page.json", "generic").document;
    assert_eq!(marked(&forms), (41, 195));
    form.to_validated_json().unwrap();

    use ocrbridge::vendors::azure::normalize::normalize;
    // Two amounts written by hand on a printed receipt ("$ 1.63", "$14,50").
    let receipt = normalized(
        normalize,
        "azure-di/receipt-url-2022-08-31.result.json",
        "receipt",
    )
    .document;
    let handwritten: Vec<&str> = receipt
        .pages
        .iter()
        .flat_map(|p| &p.blocks)
        .flat_map(|b| &b.lines)
        .flat_map(|l| &l.words)
        .filter(|w| w.handwritten == Some(true))
        .map(|w| w.text.as_str())
        .collect();
    assert_eq!(handwritten, ["$", "1.63", "$14,50"]);
    assert_eq!(Handwriting::of(&receipt), Handwriting::Some);
    let hr = normalized(
        normalize,
        "azure-di/layout-hr0081-form-keyvalues-2024-11-30.result.json",
        "generic",
    )
    .document;
    assert_eq!(marked(&hr), (106, 499));
    // A result with `styles: []` is all print; Mindee says nothing either way.
    let invoice = normalized(
        normalize,
        "azure-di/invoice-url-2023-02-28-preview.result.json",
        "invoice",
    )
    .document;
    assert_eq!(Handwriting::of(&invoice), Handwriting::None);
}

/// Azure's `languages` add-on (`{locale, spans, confidence}`, locale ISO 639-1 or BCP 47): the
/// locale covering most of the content is the document's, as the vendor's reading.
#[test]
fn azures_language_reading_is_the_documents() {
    use ocrbridge::document::LanguageSource;
    let mut payload = load("azure-di/receipt-url-2022-08-31.result.json");
    let result = payload
        .get_mut("analyzeResult")
        .expect("an operation with its analyzeResult");
    result["languages"] = serde_json::json!([
        {"locale": "fr-FR", "confidence": 0.6, "spans": [{"offset": 0, "length": 12}]},
        {"locale": "de", "confidence": 0.9, "spans": [{"offset": 12, "length": 100}]},
        {"locale": "de", "confidence": 0.7, "spans": [{"offset": 112, "length": 100}]},
    ]);
    let raw = serde_json::to_vec(&payload).unwrap();
    let normalized = ocrbridge::vendors::azure::normalize::normalize(
        &raw,
        "doc-fixture",
        "vendor-job",
        &ocrbridge::job::Profile::new("receipt").unwrap(),
    )
    .unwrap();
    let language = normalized.document.language.clone().expect("the vendor's");
    assert_eq!(language.code, "de");
    assert_eq!(language.source, LanguageSource::Vendor);
    assert!((language.confidence.unwrap() - 0.8).abs() < 1e-9);
    let json = normalized.document.to_validated_json().unwrap();
    assert_eq!(json["language"]["source"], "vendor");
    // Without the add-on, nothing is claimed: parse detects it from the text.
    let plain = normalized_plain_receipt();
    assert_eq!(plain.language, None);
}

fn normalized_plain_receipt() -> ocrbridge::document::Document {
    normalized(
        ocrbridge::vendors::azure::normalize::normalize,
        "azure-di/receipt-url-2022-08-31.result.json",
        "receipt",
    )
    .document
}

/// Identity documents from Textract's `AnalyzeID` and Azure's `prebuilt-idDocument`, as the
/// vendors answered them, fit the `id` fields, and the id rules read them.
#[test]
fn identity_documents_fit_the_id_fields() {
    use chrono::NaiveDate;
    use ocrbridge::document::IdFields;
    use ocrbridge::rules::{check, RuleConfig};
    let today = NaiveDate::from_ymd_opt(2026, 12, 4).unwrap();
    let id = |doc: &ocrbridge::document::Document| -> IdFields {
        match &doc.fields {
            Fields::Id(id) => id.clone(),
            other => panic!("not id fields: {other:?}"),
        }
    };
    let value =
        |f: &Option<ocrbridge::document::Field<String>>| f.as_ref().map(|f| f.value.clone());
    let date =
        |f: &Option<ocrbridge::document::Field<NaiveDate>>| f.as_ref().map(|f| f.value.to_string());
    let rules = |doc: &ocrbridge::document::Document| -> Vec<&'static str> {
        check(&doc.fields, &RuleConfig::default(), today)
            .into_iter()
            .map(|r| r.rule)
            .collect()
    };

    // The console's synthetic passport: day-first month-name dates with NormalizedValue, no Blocks.
    let passport = textract("textract/analyze_id_passport.json", "id").document;
    passport.to_validated_json().unwrap();
    assert_eq!(passport.vendor.model.as_deref(), Some("AnalyzeID"));
    let p = id(&passport);
    assert_eq!(value(&p.document_type).as_deref(), Some("passport"));
    assert_eq!(
        p.document_type.as_ref().unwrap().raw.as_deref(),
        Some("PASSPORT")
    );
    assert_eq!(value(&p.document_number).as_deref(), Some("0002028373"));
    assert_eq!(value(&p.surname).as_deref(), Some("JUAN"));
    assert_eq!(
        value(&p.given_names).as_deref(),
        Some("LI"),
        "an empty MIDDLE_NAME adds nothing"
    );
    assert_eq!(date(&p.date_of_birth).as_deref(), Some("1982-05-01"));
    assert_eq!(date(&p.expiry_date).as_deref(), Some("2029-05-09"));
    assert_eq!(
        p.expiry_date.as_ref().unwrap().raw.as_deref(),
        Some("09 MAY 2029")
    );
    assert!(p.mrz.is_none(), "no MRZ_CODE and no text to find one in");
    assert_eq!(rules(&passport), Vec::<&str>::new());

    // A US licence with its own Blocks: the page's text comes with it; MM/DD/YYYY dates.
    let licence = textract("textract/analyze_id_drivers_license_blocks.json", "id").document;
    licence.to_validated_json().unwrap();
    let l = id(&licence);
    assert_eq!(value(&l.document_type).as_deref(), Some("driver_license"));
    assert_eq!(date(&l.date_of_birth).as_deref(), Some("2001-03-18"));
    assert_eq!(date(&l.expiry_date).as_deref(), Some("2028-01-20"));
    assert!(licence.lines().count() > 10, "the licence's own lines");
    assert!(
        l.mrz.is_none(),
        "MRZ_CODE is empty and a US licence has none"
    );

    // Two pages of the same licence are one document, not two.
    let two = textract("textract/analyze_id_two_documents.json", "id");
    assert_eq!(two.multiple_documents, None);
    assert_eq!(two.document.pages.len(), 2);

    // Azure's licence expired in 2020: the rule says so.
    let azure = normalized(
        ocrbridge::vendors::azure::normalize::normalize,
        "azure-di/iddocument-license-url-2022-08-31.result.json",
        "id",
    )
    .document;
    let a = id(&azure);
    assert_eq!(value(&a.document_type).as_deref(), Some("driver_license"));
    assert_eq!(value(&a.document_number).as_deref(), Some("WDLABCD456DG"));
    assert_eq!(
        a.document_number.as_ref().unwrap().raw.as_deref(),
        Some("LIC#WDLABCD456DG"),
        "the value Azure read beside what it printed"
    );
    assert_eq!(value(&a.surname).as_deref(), Some("TALBOT"));
    assert_eq!(value(&a.given_names).as_deref(), Some("LIAM R."));
    assert_eq!(value(&a.sex).as_deref(), Some("M"));
    assert_eq!(value(&a.issuing_country).as_deref(), Some("USA"));
    assert_eq!(date(&a.date_of_birth).as_deref(), Some("1958-01-06"));
    assert_eq!(date(&a.expiry_date).as_deref(), Some("2020-08-12"));
    assert_eq!(rules(&azure), ["document_expired"]);
}

/// An MRZ the vendor reads (Textract's `MRZ_CODE`, here the ICAO 9303 specimen put into the
/// recorded passport) is compared with the printed fields: this passport's number and dates are
/// not the specimen's, and the rule names each.
#[test]
fn an_mrz_that_disagrees_with_the_page_is_flagged_field_by_field() {
    let mut payload = load("textract/analyze_id_passport.json");
    payload["IdentityDocuments"][0]["IdentityDocumentFields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "Type": {"Text": "MRZ_CODE"},
            "ValueDetection": {
                "Text": "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10",
                "Confidence": 97.0
            }
        }));
    let normalized = ocrbridge::vendors::textract::normalize::normalize(
        &serde_json::to_vec(&payload).unwrap(),
        "doc-fixture",
        "id:fixture",
        &ocrbridge::job::Profile::new("id").unwrap(),
    )
    .unwrap();
    normalized.document.to_validated_json().unwrap();
    let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 4).unwrap();
    let flagged: Vec<(&str, &str)> = ocrbridge::rules::check(
        &normalized.document.fields,
        &ocrbridge::rules::RuleConfig::default(),
        today,
    )
    .into_iter()
    .map(|r| (r.rule, r.field))
    .collect();
    assert_eq!(
        flagged,
        [
            ("mrz_mismatch", "document_number"),
            ("mrz_mismatch", "surname"),
            ("mrz_mismatch", "given_names"),
            ("mrz_mismatch", "date_of_birth"),
            ("mrz_mismatch", "expiry_date"),
        ]
    );
}
