//! Real Textract and Mindee v2 payloads (other projects' fixtures) fit `Document v1`.
//!
//! The full Textract and Mindee adapters come later; these converters are just enough to prove
//! the schema can hold what those vendors return: multi-page text, tables with merged cells,
//! key-value pairs, expense summaries with line items, and Mindee's typed fields.

use std::collections::HashMap;
use std::str::FromStr;

use ocrbridge::document::{
    validate_json, BBox, Block, Cell, Document, Field, Fields, InvoiceFields, KeyValue, Line,
    LineItem, Page, PageSource, Table, VendorInfo, Word, SCHEMA_VERSION,
};
use ocrbridge::vendor::normalize::{enclosing, parse_amount, parse_date};
use ocrbridge_tests::shared_dir;
use rust_decimal::Decimal;
use serde_json::Value;

fn load(path: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(shared_dir().join("fixtures").join(path)).unwrap(),
    )
    .unwrap()
}

fn textract_box(geometry: &Value) -> BBox {
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

/// Textract `Blocks` → pages, lines, words, tables (with spans) and key-value pairs.
fn textract_document(payload: &Value) -> Document {
    let blocks = payload["Blocks"].as_array().unwrap();
    let by_id: HashMap<&str, &Value> = blocks
        .iter()
        .map(|b| (b["Id"].as_str().unwrap(), b))
        .collect();
    let children = |b: &Value, kind: &str| -> Vec<&Value> {
        b["Relationships"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["Type"] == kind)
            .flat_map(|r| r["Ids"].as_array().unwrap().iter())
            .filter_map(|id| by_id.get(id.as_str().unwrap()).copied())
            .collect()
    };
    let text_of = |b: &Value| -> String {
        children(b, "CHILD")
            .iter()
            .filter(|c| c["BlockType"] == "WORD")
            .map(|c| c["Text"].as_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let page_of = |b: &Value| b["Page"].as_u64().unwrap_or(1) as u32;
    let page_count = blocks
        .iter()
        .filter(|b| b["BlockType"] == "PAGE")
        .count()
        .max(1) as u32;
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
            .map(|w| Word {
                text: w["Text"].as_str().unwrap_or_default().into(),
                bbox: textract_box(&w["Geometry"]),
                confidence: confidence(&w["Confidence"]),
            })
            .collect();
        let page = &mut pages[(page_of(line) - 1) as usize];
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
            bbox: textract_box(&line["Geometry"]),
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
            let cells: Vec<Cell> = children(table, "CHILD")
                .into_iter()
                .chain(children(table, "MERGED_CELL"))
                .map(|c| Cell {
                    row: c["RowIndex"].as_u64().unwrap_or(1) as u32 - 1,
                    column: c["ColumnIndex"].as_u64().unwrap_or(1) as u32 - 1,
                    row_span: c["RowSpan"].as_u64().unwrap_or(1) as u32,
                    column_span: c["ColumnSpan"].as_u64().unwrap_or(1) as u32,
                    text: if c["BlockType"] == "MERGED_CELL" {
                        children(c, "CHILD")
                            .iter()
                            .map(|cell| text_of(cell))
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
                bbox: Some(textract_box(&table["Geometry"])),
                rows: cells.iter().map(|c| c.row + c.row_span).max().unwrap_or(0),
                columns: cells
                    .iter()
                    .map(|c| c.column + c.column_span)
                    .max()
                    .unwrap_or(0),
                cells,
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
        job_id: "doc-fixture".into(),
        vendor: VendorInfo {
            name: "textract".into(),
            job_id: "fixture".into(),
            model: None,
        },
        pages,
        reading_order,
        tables,
        key_values,
        fields: Fields::Generic,
    }
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
        let doc = textract_document(&load(name));
        let json = doc
            .to_validated_json()
            .unwrap_or_else(|v| panic!("{name}: {v}"));
        assert!(!doc.reading_order.is_empty(), "{name}");
        assert_eq!(json["schema_version"], SCHEMA_VERSION);
    }
    let merged = textract_document(&load("textract/tables_with_merged_cells_sample1.json"));
    assert_eq!(merged.tables.len(), 3);
    assert!(
        merged
            .tables
            .iter()
            .flat_map(|t| &t.cells)
            .any(|c| c.row_span > 1 || c.column_span > 1),
        "merged cells keep their spans"
    );
    let forms = textract_document(&load("textract/multi-page-forms-samples-2-page.json"));
    assert_eq!(forms.pages.len(), 2);
    assert!(forms.key_values.len() >= 30, "{}", forms.key_values.len());
}

/// Textract AnalyzeExpense: summary fields and line items as typed invoice fields.
#[test]
fn textract_expense_documents_fit_the_invoice_fields() {
    for name in [
        "textract/analyzeExpenseResponse-multipage.json",
        "textract/test_trp2_expense_sample1.json",
    ] {
        let payload = load(name);
        let doc = &payload["ExpenseDocuments"][0];
        let summary = |kind: &str| {
            doc["SummaryFields"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["Type"]["Text"] == kind)
                .map(|f| {
                    (
                        f["ValueDetection"]["Text"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        confidence(&f["ValueDetection"]["Confidence"]),
                        f["PageNumber"].as_u64().map(|p| p as u32),
                    )
                })
        };
        let money = |kind: &str| {
            summary(kind).and_then(|(t, c, p)| {
                Some(Field {
                    value: parse_amount(&t)?,
                    confidence: c,
                    page: p,
                    bbox: None,
                })
            })
        };
        let text = |kind: &str| {
            summary(kind).map(|(t, c, p)| Field {
                value: t,
                confidence: c,
                page: p,
                bbox: None,
            })
        };
        let line_items: Vec<LineItem> = doc["LineItemGroups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["LineItems"].as_array().unwrap().iter())
            .filter_map(|item| {
                let get = |kind: &str| {
                    item["LineItemExpenseFields"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|f| f["Type"]["Text"] == kind)
                        .and_then(|f| f["ValueDetection"]["Text"].as_str())
                };
                Some(LineItem {
                    description: get("ITEM").unwrap_or_default().to_owned(),
                    quantity: get("QUANTITY").and_then(parse_amount),
                    unit_price: get("UNIT_PRICE").and_then(parse_amount),
                    amount: get("PRICE").and_then(parse_amount)?,
                    confidence: None,
                })
            })
            .collect();
        let fields = Fields::Invoice(InvoiceFields {
            vendor_name: text("VENDOR_NAME"),
            invoice_number: text("INVOICE_RECEIPT_ID"),
            issue_date: summary("INVOICE_RECEIPT_DATE").and_then(|(t, c, p)| {
                Some(Field {
                    value: parse_date(&t)?,
                    confidence: c,
                    page: p,
                    bbox: None,
                })
            }),
            due_date: None,
            subtotal: money("SUBTOTAL"),
            tax: money("TAX"),
            total: money("TOTAL"),
            currency: None,
            line_items,
        });
        let document = Document {
            schema_version: SCHEMA_VERSION.into(),
            job_id: "doc-expense".into(),
            vendor: VendorInfo {
                name: "textract".into(),
                job_id: name.into(),
                model: None,
            },
            pages: vec![],
            reading_order: vec![],
            tables: vec![],
            key_values: vec![],
            fields,
        };
        let json = document
            .to_validated_json()
            .unwrap_or_else(|v| panic!("{name}: {v}"));
        assert!(
            json["fields"]["total"]["value"].is_string() || json["fields"]["total"].is_null(),
            "{name}"
        );
        let Fields::Invoice(i) = &document.fields else {
            unreachable!()
        };
        assert!(!i.line_items.is_empty(), "{name}: line items carried over");
    }
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
