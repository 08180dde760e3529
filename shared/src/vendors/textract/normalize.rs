//! Textract's payloads as `Document v1`: `Blocks` (text detection and document analysis) into
//! pages, lines, words, tables with their spans and key-value pairs; `ExpenseDocuments` into
//! typed receipt or invoice fields with line items. Validated against Textract's own responses
//! in `../shared/fixtures/textract/` (tests/fixtures_normalize.rs).

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use crate::document::{
    BBox, Block, Cell, Document, Field, Fields, IdFields, InvoiceFields, KeyValue, Line, LineItem,
    Page, PageSource, ReceiptFields, Table, VendorInfo, Word, SCHEMA_VERSION,
};
use crate::job::Profile;
use crate::vendors::identity;
use crate::vendors::normalize::{
    canonical_money, date_field, date_order_from, enclosing, parse_amount, AmbiguousDate, Drift,
    DriftKind, MultipleDocuments, NormalizeError, Normalized,
};

/// Block types this normalizer reads or knowingly skips; anything else is drift.
const KNOWN_BLOCKS: &[&str] = &[
    "PAGE",
    "LINE",
    "WORD",
    "TABLE",
    "CELL",
    "MERGED_CELL",
    "KEY_VALUE_SET",
    "SELECTION_ELEMENT",
    "SIGNATURE",
    "QUERY",
    "QUERY_RESULT",
    "TABLE_TITLE",
    "TABLE_FOOTER",
    "LAYOUT_TEXT",
    "LAYOUT_TITLE",
    "LAYOUT_HEADER",
    "LAYOUT_FOOTER",
    "LAYOUT_SECTION_HEADER",
    "LAYOUT_PAGE_NUMBER",
    "LAYOUT_LIST",
    "LAYOUT_FIGURE",
    "LAYOUT_TABLE",
    "LAYOUT_KEY_VALUE",
];

/// Expense summary types this normalizer maps or knowingly skips.
const KNOWN_EXPENSE_TYPES: &[&str] = &[
    "VENDOR_NAME",
    "NAME",
    "INVOICE_RECEIPT_ID",
    "INVOICE_RECEIPT_DATE",
    "DUE_DATE",
    "SUBTOTAL",
    "TAX",
    "TOTAL",
    "AMOUNT_DUE",
    "AMOUNT_PAID",
    "VENDOR_ADDRESS",
    "VENDOR_PHONE",
    "VENDOR_URL",
    "VENDOR_ABN_NUMBER",
    "VENDOR_GST_NUMBER",
    "VENDOR_PAN_NUMBER",
    "VENDOR_VAT_NUMBER",
    "RECEIVER_NAME",
    "RECEIVER_ADDRESS",
    "RECEIVER_PHONE",
    "ADDRESS",
    "ADDRESS_BLOCK",
    "STREET",
    "CITY",
    "STATE",
    "ZIP_CODE",
    "COUNTRY",
    "CUSTOMER_NUMBER",
    "ACCOUNT_NUMBER",
    "PO_NUMBER",
    "ORDER_DATE",
    "DELIVERY_DATE",
    "PAYMENT_TERMS",
    "PRIOR_BALANCE",
    "SERVICE_CHARGE",
    "GRATUITY",
    "DISCOUNT",
    "SHIPPING_HANDLING_CHARGE",
    "TAX_PAYER_ID",
    "OTHER",
    // Line-item types Textract sometimes also reports as summary fields.
    "DESCRIPTION",
    "ITEM",
    "QUANTITY",
    "UNIT_PRICE",
    "PRICE",
    "PRODUCT_CODE",
    "EXPENSE_ROW",
];

fn bbox(geometry: &Value) -> BBox {
    let b = &geometry["BoundingBox"];
    let clamp = |v: &Value| v.as_f64().unwrap_or(0.0).clamp(0.0, 1.0);
    let (left, top) = (clamp(&b["Left"]), clamp(&b["Top"]));
    BBox {
        left,
        top,
        width: clamp(&b["Width"]).min(1.0 - left),
        height: clamp(&b["Height"]).min(1.0 - top),
    }
}

fn confidence(v: &Value) -> Option<f64> {
    v.as_f64().map(|c| (c / 100.0).clamp(0.0, 1.0))
}

/// `payload`: Textract's merged `Get*` result (`Blocks`, or `ExpenseDocuments`).
pub fn normalize(
    raw: &[u8],
    job_id: &str,
    vendor_job_id: &str,
    profile: &Profile,
) -> Result<Normalized, NormalizeError> {
    let payload: Value =
        serde_json::from_slice(raw).map_err(|e| NormalizeError::NotJson(e.to_string()))?;
    let mut drift = BTreeSet::new();
    let mut ambiguous_dates = Vec::new();
    let mut multiple_documents = None;
    let (mut document, model) = if let Some(expense) = payload["ExpenseDocuments"].as_array() {
        // The expense documents' own blocks, when present, carry the pages' text.
        let blocks: Vec<Value> = expense
            .iter()
            .flat_map(|d| d["Blocks"].as_array().cloned().unwrap_or_default())
            .collect();
        let mut document = blocks_document(&blocks, stated_pages(&payload), &mut drift);
        let (one, others) = one_document(expense);
        multiple_documents = others;
        let (fields, ambiguous) = expense_fields(one, profile, &mut drift);
        document.fields = fields;
        ambiguous_dates = ambiguous;
        (
            document,
            (
                "AnalyzeExpense",
                payload["AnalyzeExpenseModelVersion"].as_str(),
            ),
        )
    } else if let Some(identities) = payload["IdentityDocuments"].as_array() {
        let (document, others) = identity_documents(identities, stated_pages(&payload), &mut drift);
        multiple_documents = others;
        (
            document,
            ("AnalyzeID", payload["AnalyzeIDModelVersion"].as_str()),
        )
    } else if let Some(blocks) = payload["Blocks"].as_array() {
        let model = match (
            payload["AnalyzeDocumentModelVersion"].as_str(),
            payload["DetectDocumentTextModelVersion"].as_str(),
            payload["AnalyzeIDModelVersion"].as_str(),
        ) {
            (Some(v), _, _) => ("AnalyzeDocument", Some(v)),
            (None, Some(v), _) => ("DetectDocumentText", Some(v)),
            (None, None, Some(v)) => ("AnalyzeID", Some(v)),
            (None, None, None) => ("AnalyzeDocument", None),
        };
        let mut document = blocks_document(blocks, stated_pages(&payload), &mut drift);
        if profile.as_str() == "id" {
            // The text path has no typed identity fields: only the MRZ among the lines.
            document.fields = Fields::Id(IdFields {
                mrz: identity::mrz_from_lines(&document),
                ..IdFields::default()
            });
        }
        (document, model)
    } else {
        return Err(NormalizeError::Unusable(
            "neither Blocks, ExpenseDocuments nor IdentityDocuments in the Textract payload".into(),
        ));
    };
    document.job_id = job_id.to_owned();
    document.vendor = VendorInfo {
        name: "textract".into(),
        job_id: vendor_job_id.to_owned(),
        // The API is the model; its `*ModelVersion` is the version.
        model: Some(model.0.to_owned()),
        model_version: model.1.map(str::to_owned),
    };
    canonical_money(&mut document.fields);
    Ok(Normalized {
        document,
        drift: drift.into_iter().collect(),
        ambiguous_dates,
        multiple_documents,
    })
}

/// `AnalyzeID`'s answer: one `IdentityDocument` per page, each with its typed
/// `IdentityDocumentFields` (and, in newer responses, its own `Blocks`). The front and back of
/// one card are two of them: documents that agree on the document number (where both give one)
/// are read as one, each field from the first that has it. Documents that disagree are several:
/// the first is read alone and the rest reported.
fn identity_documents(
    identities: &[Value],
    stated_pages: u32,
    drift: &mut BTreeSet<Drift>,
) -> (Document, Option<MultipleDocuments>) {
    let field_text = |d: &Value, kind: &str| -> Option<(String, Option<f64>, Option<String>)> {
        let f = d["IdentityDocumentFields"]
            .as_array()?
            .iter()
            .find(|f| f["Type"]["Text"] == kind)?;
        let text = f["ValueDetection"]["Text"].as_str()?.trim();
        (!text.is_empty()).then(|| {
            (
                text.to_owned(),
                confidence(&f["ValueDetection"]["Confidence"]),
                f["ValueDetection"]["NormalizedValue"]["Value"]
                    .as_str()
                    .map(str::to_owned),
            )
        })
    };
    let numbers: BTreeSet<String> = identities
        .iter()
        .filter_map(|d| field_text(d, "DOCUMENT_NUMBER").map(|(t, _, _)| t))
        .collect();
    let (read, others) = if numbers.len() > 1 {
        (
            &identities[..1],
            Some(MultipleDocuments {
                found: identities.len(),
                evidence: format!(
                    "IdentityDocuments holds {} whose DOCUMENT_NUMBERs differ; the fields are the first's",
                    identities.len()
                ),
            }),
        )
    } else {
        (identities, None)
    };
    let blocks: Vec<Value> = read
        .iter()
        .flat_map(|d| d["Blocks"].as_array().cloned().unwrap_or_default())
        .collect();
    let mut document = blocks_document(&blocks, stated_pages.max(read.len() as u32), drift);
    let first = |kind: &str| read.iter().find_map(|d| field_text(d, kind));
    let text = |kind: &str, value: fn(&str) -> Option<String>| {
        first(kind).and_then(|(text, confidence, _)| {
            Some(Field {
                value: value(&text)?,
                raw: Some(text),
                confidence,
                page: None,
                bbox: None,
            })
        })
    };
    let date = |kind: &str| {
        first(kind).and_then(|(text, confidence, normalized)| {
            let value = normalized
                .as_deref()
                .and_then(|n| n.get(..10))
                .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())?;
            Some(Field {
                value,
                raw: Some(text),
                confidence,
                page: None,
                bbox: None,
            })
        })
    };
    let given_names = match (first("FIRST_NAME"), first("MIDDLE_NAME")) {
        (Some((given, c1, _)), Some((middle, c2, _))) => Some(Field {
            value: format!("{given} {middle}"),
            raw: Some(format!("{given} {middle}")),
            confidence: c1.zip(c2).map(|(a, b)| a.min(b)).or(c1),
            page: None,
            bbox: None,
        }),
        (Some(_), None) => text("FIRST_NAME", |t| Some(t.to_owned())),
        _ => None,
    };
    document.fields = Fields::Id(IdFields {
        document_type: text("ID_TYPE", |t| Some(identity::document_type(t).to_owned())),
        document_number: text("DOCUMENT_NUMBER", |t| Some(t.to_owned())),
        surname: text("LAST_NAME", |t| Some(t.to_owned())),
        given_names,
        // AnalyzeID reads no nationality or issuing country (its US licences name a state).
        nationality: None,
        issuing_country: None,
        date_of_birth: date("DATE_OF_BIRTH"),
        expiry_date: date("EXPIRATION_DATE"),
        sex: None,
        // `MRZ_CODE` (2023 on): its lines; else the MRZ among the page's own lines.
        mrz: text("MRZ_CODE", |t| {
            Some(t.split_whitespace().collect::<Vec<_>>().join("\n"))
        })
        .or_else(|| identity::mrz_from_lines(&document)),
    });
    (document, others)
}

/// The summary fields that say which document an expense document is: two that disagree on one
/// of them are two documents.
const IDENTITY_FIELDS: [&str; 4] = [
    "INVOICE_RECEIPT_ID",
    "VENDOR_NAME",
    "INVOICE_RECEIPT_DATE",
    "TOTAL",
];

/// The expense documents whose summary fields may be read as one document, and what else the
/// result holds. Textract splits a multi-page invoice into an expense document per page (the
/// recording `analyzeExpenseResponse-multipage.json` is one invoice: its date on page 1, its
/// total on page 2), so documents that agree on every identity field they both carry are one.
/// Where any two disagree, the result holds several: the first is read alone, never paired with
/// another's total or date.
fn one_document(expense: &[Value]) -> (&[Value], Option<MultipleDocuments>) {
    let identity = |d: &Value, kind: &str| -> Option<String> {
        d["SummaryFields"]
            .as_array()?
            .iter()
            .find(|f| f["Type"]["Text"] == kind)?
            .get("ValueDetection")?["Text"]
            .as_str()
            .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|t| !t.is_empty())
    };
    let disagreement = IDENTITY_FIELDS.iter().find_map(|kind| {
        let values: BTreeSet<String> = expense.iter().filter_map(|d| identity(d, kind)).collect();
        (values.len() > 1).then(|| {
            format!(
                "{kind} reads {}",
                values
                    .iter()
                    .map(|v| format!("{v:?}"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            )
        })
    });
    match disagreement {
        Some(evidence) if expense.len() > 1 => (
            &expense[..1],
            Some(MultipleDocuments {
                found: expense.len(),
                evidence: format!(
                    "ExpenseDocuments holds {} that disagree ({evidence}); the fields are the first's",
                    expense.len()
                ),
            }),
        ),
        _ => (expense, None),
    }
}

/// The page count Textract states (`DocumentMetadata.Pages`): an expense result may carry no
/// blocks at all, and its pages (what the vendor bills) must not be counted as none.
fn stated_pages(payload: &Value) -> u32 {
    payload["DocumentMetadata"]["Pages"]
        .as_u64()
        .map_or(0, |n| n.min(u64::from(u32::MAX)) as u32)
}

/// Pages, lines, words, tables and key-value pairs from Textract blocks; at least
/// `stated_pages` pages.
fn blocks_document(blocks: &[Value], stated_pages: u32, drift: &mut BTreeSet<Drift>) -> Document {
    let by_id: HashMap<&str, &Value> = blocks
        .iter()
        .filter_map(|b| Some((b["Id"].as_str()?, b)))
        .collect();
    for b in blocks {
        let kind = b["BlockType"].as_str().unwrap_or("missing");
        if !KNOWN_BLOCKS.contains(&kind) {
            drift.insert(Drift {
                field: format!("Blocks[].BlockType={kind}"),
                kind: DriftKind::NewEnumValue,
            });
        }
    }
    let children = |b: &Value, kind: &str| -> Vec<&Value> {
        b["Relationships"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["Type"] == kind)
            .flat_map(|r| r["Ids"].as_array().into_iter().flatten())
            .filter_map(|id| by_id.get(id.as_str()?).copied())
            .collect()
    };
    // A cell's or a value's text: its words, and a checkbox's state as Textract names it
    // (SELECTED / NOT_SELECTED), which is the whole value of a checkbox field.
    let text_of = |b: &Value| -> String {
        children(b, "CHILD")
            .iter()
            .filter_map(|c| match c["BlockType"].as_str() {
                Some("WORD") => c["Text"].as_str(),
                Some("SELECTION_ELEMENT") => c["SelectionStatus"].as_str(),
                _ => None,
            })
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let page_of = |b: &Value| b["Page"].as_u64().unwrap_or(1).max(1) as u32;
    let page_count = blocks
        .iter()
        .filter(|b| b["BlockType"] == "PAGE")
        .map(page_of)
        .max()
        .unwrap_or(0)
        .max(blocks.iter().map(page_of).max().unwrap_or(0))
        .max(stated_pages);
    let mut pages: Vec<Page> = (1..=page_count)
        .map(|n| Page {
            number: n,
            width: None,
            height: None,
            unit: "normalized".into(),
            rotation: 0,
            source: PageSource::Ocr,
            blocks: vec![],
        })
        .collect();
    let mut reading_order = Vec::new();
    for (i, line) in blocks
        .iter()
        .filter(|b| b["BlockType"] == "LINE")
        .enumerate()
    {
        let id = format!("l{}", i + 1);
        reading_order.push(id.clone());
        let words = children(line, "CHILD")
            .into_iter()
            .filter(|w| w["BlockType"] == "WORD")
            .map(|w| Word {
                text: w["Text"].as_str().unwrap_or_default().into(),
                bbox: bbox(&w["Geometry"]),
                confidence: confidence(&w["Confidence"]),
                handwritten: match w["TextType"].as_str() {
                    Some("HANDWRITING") => Some(true),
                    Some("PRINTED") => Some(false),
                    _ => None,
                },
            })
            .collect();
        let Some(page) = pages.get_mut((page_of(line) - 1) as usize) else {
            continue;
        };
        if page.blocks.is_empty() {
            page.blocks.push(Block {
                id: format!("p{}-b1", page.number),
                bbox: BBox {
                    left: 0.0,
                    top: 0.0,
                    width: 1.0,
                    height: 1.0,
                },
                lines: vec![],
            });
        }
        page.blocks[0].lines.push(Line {
            id,
            text: line["Text"].as_str().unwrap_or_default().into(),
            bbox: bbox(&line["Geometry"]),
            confidence: confidence(&line["Confidence"]),
            words,
        });
    }
    for page in &mut pages {
        if let Some(block) = page.blocks.first_mut() {
            block.bbox = enclosing(block.lines.iter().map(|l| l.bbox));
        }
    }
    let tables = blocks
        .iter()
        .filter(|b| b["BlockType"] == "TABLE")
        .map(|table| {
            // A merged cell spans the cells it lists: it takes their slots once, in their place.
            let merged = children(table, "MERGED_CELL");
            let covered: BTreeSet<&str> = merged
                .iter()
                .flat_map(|m| children(m, "CHILD"))
                .filter_map(|c| c["Id"].as_str())
                .collect();
            let cells: Vec<Cell> = children(table, "CHILD")
                .into_iter()
                .filter(|c| !c["Id"].as_str().is_some_and(|id| covered.contains(id)))
                .chain(merged.iter().copied())
                .map(|c| Cell {
                    row: (c["RowIndex"].as_u64().unwrap_or(1).max(1) - 1) as u32,
                    column: (c["ColumnIndex"].as_u64().unwrap_or(1).max(1) - 1) as u32,
                    row_span: c["RowSpan"].as_u64().unwrap_or(1).max(1) as u32,
                    column_span: c["ColumnSpan"].as_u64().unwrap_or(1).max(1) as u32,
                    text: if c["BlockType"] == "MERGED_CELL" {
                        children(c, "CHILD")
                            .iter()
                            .map(|cell| text_of(cell))
                            .filter(|t| !t.is_empty())
                            .collect::<Vec<_>>()
                            .join(" ")
                    } else {
                        text_of(c)
                    },
                    confidence: confidence(&c["Confidence"]),
                })
                .collect();
            Table {
                page: page_of(table),
                bbox: Some(bbox(&table["Geometry"])),
                rows: cells.iter().map(|c| c.row + c.row_span).max().unwrap_or(0),
                columns: cells
                    .iter()
                    .map(|c| c.column + c.column_span)
                    .max()
                    .unwrap_or(0),
                cells: {
                    let mut cells = cells;
                    cells.sort_by_key(|c| (c.row, c.column));
                    cells
                },
            }
        })
        .collect();
    let key_values = blocks
        .iter()
        .filter(|b| b["BlockType"] == "KEY_VALUE_SET" && b["EntityTypes"][0] == "KEY")
        .map(|key| KeyValue {
            key: text_of(key),
            value: children(key, "VALUE")
                .iter()
                .map(|v| text_of(v))
                .collect::<Vec<_>>()
                .join(" "),
            page: page_of(key),
            confidence: confidence(&key["Confidence"]),
        })
        .collect();
    Document {
        schema_version: SCHEMA_VERSION.into(),
        job_id: String::new(),
        vendor: VendorInfo {
            name: "textract".into(),
            job_id: String::new(),
            model: None,
            model_version: None,
        },
        pages,
        reading_order,
        tables,
        key_values,
        fields: Fields::Generic,
        // Textract reports no language; `language::identify` detects it from the text.
        language: None,
    }
}

/// A `NAME` summary field in the VENDOR group: the vendor's name when `VENDOR_NAME` is absent.
const VENDOR_GROUP_NAME: &str = "NAME (vendor)";

/// One summary field of an expense document: its text, confidence, page and box.
struct Summary {
    text: String,
    confidence: Option<f64>,
    page: Option<u32>,
    bbox: Option<BBox>,
    currency: Option<String>,
}

/// The first expense document that has each summary type wins (Textract returns one document per
/// receipt or invoice it finds, often one per page).
fn expense_fields(
    documents: &[Value],
    profile: &Profile,
    drift: &mut BTreeSet<Drift>,
) -> (Fields, Vec<AmbiguousDate>) {
    let mut summary: HashMap<String, Summary> = HashMap::new();
    for field in documents
        .iter()
        .flat_map(|d| d["SummaryFields"].as_array().into_iter().flatten())
    {
        let kind = field["Type"]["Text"].as_str().unwrap_or("missing");
        if !KNOWN_EXPENSE_TYPES.contains(&kind) {
            drift.insert(Drift {
                field: format!("ExpenseDocuments[].SummaryFields[].Type={kind}"),
                kind: DriftKind::NewEnumValue,
            });
            continue;
        }
        let value = &field["ValueDetection"];
        let Some(text) = value["Text"].as_str().filter(|t| !t.trim().is_empty()) else {
            continue;
        };
        // A `NAME` (an address, a phone…) belongs to the party its group names: VENDOR,
        // RECEIVER_BILL_TO, RECEIVER_SHIP_TO… Only the vendor's may stand for the vendor.
        let key = if kind == "NAME" {
            let vendor = field["GroupProperties"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|g| g["Types"].as_array().into_iter().flatten())
                .any(|t| t == "VENDOR");
            if vendor {
                VENDOR_GROUP_NAME.to_owned()
            } else {
                format!("{kind} (another party)")
            }
        } else {
            kind.to_owned()
        };
        summary.entry(key).or_insert_with(|| Summary {
            text: text.to_owned(),
            confidence: confidence(&value["Confidence"]),
            page: field["PageNumber"].as_u64().map(|p| p as u32),
            bbox: value.get("Geometry").map(bbox),
            currency: field["Currency"]["Code"].as_str().map(str::to_owned),
        });
    }
    let get = |kind: &str| summary.get(kind);
    let text = |kind: &str| {
        get(kind).map(|s| Field {
            value: s.text.clone(),
            raw: Some(s.text.clone()),
            confidence: s.confidence,
            page: s.page,
            bbox: s.bbox,
        })
    };
    let money = |kind: &str| {
        get(kind).and_then(|s| {
            Some(Field {
                value: parse_amount(&s.text)?,
                raw: Some(s.text.clone()),
                confidence: s.confidence,
                page: s.page,
                bbox: s.bbox,
            })
        })
    };
    // The order of a numeric date comes from the document: its country, else its currency.
    let country = get("COUNTRY").map(|s| s.text.as_str());
    let stated_currency = ["TOTAL", "AMOUNT_DUE", "SUBTOTAL"]
        .iter()
        .find_map(|k| get(k)?.currency.as_deref());
    let order = date_order_from(country, stated_currency);
    let mut ambiguous = Vec::new();
    let mut date = |name: &'static str, kind: &str| {
        get(kind).and_then(|s| {
            date_field(
                name,
                &s.text,
                order,
                s.confidence,
                s.page,
                s.bbox,
                &mut ambiguous,
            )
        })
    };
    let currency = ["TOTAL", "AMOUNT_DUE", "SUBTOTAL"]
        .iter()
        .find_map(|k| get(k))
        .and_then(|s| {
            Some(Field {
                value: s.currency.clone()?,
                raw: s.currency.clone(),
                confidence: s.confidence,
                page: s.page,
                bbox: None,
            })
        });
    let total = money("TOTAL").or_else(|| money("AMOUNT_DUE"));
    let fields = match profile.as_str() {
        "receipt" => Fields::Receipt(ReceiptFields {
            merchant: text("VENDOR_NAME").or_else(|| text(VENDOR_GROUP_NAME)),
            date: date("date", "INVOICE_RECEIPT_DATE"),
            subtotal: money("SUBTOTAL"),
            tax: money("TAX"),
            total,
            currency,
        }),
        "invoice" => Fields::Invoice(InvoiceFields {
            vendor_name: text("VENDOR_NAME").or_else(|| text(VENDOR_GROUP_NAME)),
            invoice_number: text("INVOICE_RECEIPT_ID"),
            issue_date: date("issue_date", "INVOICE_RECEIPT_DATE"),
            due_date: date("due_date", "DUE_DATE"),
            subtotal: money("SUBTOTAL"),
            tax: money("TAX"),
            total,
            currency,
            line_items: line_items(documents),
        }),
        _ => Fields::Generic,
    };
    (fields, ambiguous)
}

fn line_items(documents: &[Value]) -> Vec<LineItem> {
    documents
        .iter()
        .flat_map(|d| d["LineItemGroups"].as_array().into_iter().flatten())
        .flat_map(|g| g["LineItems"].as_array().into_iter().flatten())
        .filter_map(|item| {
            let fields = item["LineItemExpenseFields"].as_array()?;
            let get = |kind: &str| {
                fields
                    .iter()
                    .find(|f| f["Type"]["Text"] == kind)
                    .and_then(|f| f["ValueDetection"]["Text"].as_str())
            };
            let confidence = fields
                .iter()
                .find(|f| f["Type"]["Text"] == "PRICE")
                .and_then(|f| confidence(&f["ValueDetection"]["Confidence"]));
            Some(LineItem {
                description: get("ITEM").unwrap_or_default().to_owned(),
                quantity: get("QUANTITY").and_then(parse_amount),
                unit_price: get("UNIT_PRICE").and_then(parse_amount),
                amount: get("PRICE").and_then(parse_amount)?,
                confidence,
            })
        })
        .collect()
}
