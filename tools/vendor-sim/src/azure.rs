//! The Azure AI Document Intelligence twin (REST API 2024-11-30), from Microsoft's REST
//! reference and the recorded exchanges in `../shared/fixtures/azure-di/`:
//!
//! - `POST /documentintelligence/documentModels/{modelId}:analyze?api-version=2024-11-30` with
//!   `{"urlSource"}` or `{"base64Source"}` and `Ocp-Apim-Subscription-Key` → `202` with
//!   `Operation-Location` and `Retry-After`; `401` for a bad key, `404 ModelNotFound`,
//!   `400 InvalidRequest` (bad api-version, body or document URL);
//! - `GET` the operation → `{status: notStarted|running|succeeded|failed, createdDateTime,
//!   lastUpdatedDateTime, analyzeResult | error}` with `Retry-After` while running; a result kept
//!   for `result_ttl` (about a day in Azure), `404` after — an expired result;
//! - `analyzeResult` with `content`, `pages[].words/lines` (pixel polygons, spans into
//!   `content`), `keyValuePairs` and `documents[].fields` typed as the prebuilt models type them
//!   (`valueCurrency`, `valueDate`, `valueString`, `valueArray`…);
//! - **no idempotency**: every analyze is a new, billed operation; **polls count against the
//!   rate limit** like submissions (users see 429s below the documented TPS for that reason);
//!   `429` carries `Retry-After`;
//! - `GET /documentintelligence/info` → the resource's details (`customDocumentModels`): the
//!   cheapest authenticated call, nothing analyzed or billed, how a key is verified. An Azure
//!   resource has two keys (KEY1, KEY2), both valid until the owner regenerates one: the twin
//!   accepts every key registered with it (`/admin/api-keys`), and the owner's regeneration is a
//!   revoke and a register there;
//! - faults: throttling, 5xx, drop and truncate after accept, slow, failed analyses, and drift
//!   (a status value the adapter does not know).
//!
//! Not modelled: Entra ID auth, `pages=` / `locale=` / `features=` query options, custom
//! models, tables (the engine finds none), `base64Source` size limits.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::api::{
    cut_answer, download, request_fault, submission_received, FetchError, Refusal, RequestFault,
};
use crate::state::{Protocol, SimJob, Status};
use crate::{Accept, Accepted, Sim};

pub const API_VERSION: &str = "2024-11-30";
const MODELS: [&str; 5] = [
    "prebuilt-read",
    "prebuilt-layout",
    "prebuilt-receipt",
    "prebuilt-invoice",
    "prebuilt-idDocument",
];

/// An Azure operation's own parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureJob {
    pub model: String,
}

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/documentintelligence/documentModels/{call}", post(analyze))
        .route(
            "/documentintelligence/documentModels/{model}/analyzeResults/{id}",
            get(operation),
        )
        .route("/documentintelligence/info", get(info))
}

/// `GET /documentintelligence/info`: the resource's details, behind the key like every call.
async fn info(
    State(sim): State<Arc<Sim>>,
    Query(query): Query<ApiVersion>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = gate(&sim, &headers) {
        return refused;
    }
    if let Some(wrong) = check_version(&query) {
        return wrong;
    }
    axum::Json(json!({ "customDocumentModels": { "count": 0, "limit": 20000 } })).into_response()
}

/// Azure's error shape: `{"error": {"code", "message"}}`.
fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({ "error": { "code": code, "message": message.into() } })),
    )
        .into_response()
}

#[derive(Deserialize)]
struct ApiVersion {
    #[serde(rename = "api-version")]
    api_version: Option<String>,
}

/// The key, then the rate limit and the request faults: what every call goes through.
fn gate(sim: &Sim, headers: &HeaderMap) -> Option<Response> {
    sim.with_state(|inner| {
        inner.stats.requests += 1;
        let key = headers
            .get("ocp-apim-subscription-key")
            .and_then(|v| v.to_str().ok());
        if !key.is_some_and(|k| inner.api_keys.contains(k)) {
            inner.stats.unauthorized += 1;
            return Some(error(
                StatusCode::UNAUTHORIZED,
                "401",
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
            ));
        }
        match request_fault(inner) {
            Some(RequestFault::Throttled { retry_after_secs }) => {
                let mut r = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "429",
                    "Requests to the analyze Operation under Document Intelligence API have exceeded rate limit of your current tier.",
                );
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    r.headers_mut().insert("retry-after", v);
                }
                Some(r)
            }
            Some(RequestFault::ServerError { status }) => Some(error(
                status,
                "InternalServerError",
                "An unexpected error occurred.",
            )),
            None => None,
        }
    })
}

fn check_version(query: &ApiVersion) -> Option<Response> {
    (query.api_version.as_deref() != Some(API_VERSION)).then(|| {
        error(
            StatusCode::NOT_FOUND,
            "404",
            format!("Resource not found: use api-version={API_VERSION}"),
        )
    })
}

async fn analyze(
    State(sim): State<Arc<Sim>>,
    Path(call): Path<String>,
    Query(query): Query<ApiVersion>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Instant::now();
    let Some(model) = call.strip_suffix(":analyze") else {
        return error(StatusCode::NOT_FOUND, "404", "Resource not found");
    };
    if let Some(r) = gate(&sim, &headers).or_else(|| check_version(&query)) {
        return r;
    }
    if !MODELS.contains(&model) {
        return error(
            StatusCode::NOT_FOUND,
            "ModelNotFound",
            format!("The requested model was not found: {model}"),
        );
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "Invalid request body.",
        );
    };
    let limit = 50 * 1024 * 1024;
    let document = if let Some(url) = request["urlSource"].as_str() {
        match download(&sim, url, limit).await {
            Ok(bytes) => bytes,
            Err(FetchError::TooLarge) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidContentLength",
                    "The input image is too large.",
                )
            }
            Err(FetchError::Unreachable(m)) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequest",
                    format!("Could not download the file from the given URL: {m}"),
                )
            }
        }
    } else if let Some(encoded) = request["base64Source"].as_str() {
        match base64::engine::general_purpose::STANDARD.decode(encoded) {
            Ok(bytes) => Bytes::from(bytes),
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequest",
                    "base64Source is not base64.",
                )
            }
        }
    } else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "Give urlSource or base64Source.",
        );
    };
    // Azure keeps nothing of ours: no reference, no idempotency. The twin's books still need to
    // know which document each operation was for (its duplicate-charge ground truth, never shown
    // to a client): the document's SHA-256.
    let subject = format!("sha256:{}", hex::encode(Sha256::digest(&document)));
    match submission_received(&sim, &subject).proceed().await {
        Ok(()) => {}
        Err(Refusal::Unauthorized) => {
            return error(
                StatusCode::UNAUTHORIZED,
                "401",
                "Access denied due to invalid subscription key or wrong API endpoint.",
            )
        }
        Err(Refusal::Throttled(secs)) => {
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "429",
                "Rate limit is exceeded. Try again later.",
            );
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert("retry-after", v);
            }
            return response;
        }
        Err(Refusal::Rejected) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidContent",
                "The file is corrupted or format is unsupported.",
            )
        }
    }
    let accept = Accept {
        protocol: Protocol::Azure(AzureJob {
            model: model.to_owned(),
        }),
        profile: match model {
            "prebuilt-receipt" => "receipt",
            "prebuilt-invoice" => "invoice",
            "prebuilt-idDocument" => "id",
            _ => "generic",
        }
        .into(),
        external_ref: Some(subject),
        key: None,
        document,
        received,
    };
    let Accepted::New { job, cut } = sim.accept(accept) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "");
    };
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let location = format!(
        "http://{host}/documentintelligence/documentModels/{model}/analyzeResults/{}?api-version={API_VERSION}",
        job.id
    );
    let mut response = (StatusCode::ACCEPTED, "").into_response();
    if let (Ok(loc), Ok(wait)) = (
        HeaderValue::from_str(&location),
        HeaderValue::from_str(&sim.twins.azure_retry_after_secs.to_string()),
    ) {
        response.headers_mut().insert("operation-location", loc);
        response.headers_mut().insert("retry-after", wait);
        response
            .headers_mut()
            .insert("apim-request-id", HeaderValue::from_static("sim"));
    }
    cut_answer(&mut response, cut);
    response
}

async fn operation(
    State(sim): State<Arc<Sim>>,
    Path((model, id)): Path<(String, String)>,
    Query(query): Query<ApiVersion>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = gate(&sim, &headers).or_else(|| check_version(&query)) {
        return r;
    }
    let job = sim.with_state(|inner| {
        inner.stats.status_requests += 1;
        inner.jobs.get(&id).cloned()
    });
    let job = match job {
        Some(job) if matches!(&job.protocol, Protocol::Azure(a) if a.model == model) => job,
        _ => return error(StatusCode::NOT_FOUND, "NotFound", "Resource not found."),
    };
    let created = chrono::DateTime::from_timestamp(job.created_at, 0)
        .unwrap_or_default()
        .to_rfc3339();
    let updated = chrono::DateTime::from_timestamp(job.updated_at, 0)
        .unwrap_or_default()
        .to_rfc3339();
    if job.is_gone(sim.twins.result_ttl) {
        return error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "The analyze result has expired.",
        );
    }
    let drifted = job.output.as_ref().is_some_and(|o| o.drifted);
    let body = match job.status {
        Status::Queued => {
            json!({ "status": "notStarted", "createdDateTime": created, "lastUpdatedDateTime": updated })
        }
        Status::Processing => {
            json!({ "status": "running", "createdDateTime": created, "lastUpdatedDateTime": updated })
        }
        // A status value newer than the adapter: it must never be taken for success.
        Status::Succeeded if drifted => {
            json!({ "status": "succeededWithWarnings", "createdDateTime": created, "lastUpdatedDateTime": updated })
        }
        Status::Succeeded => {
            let mut result = analyze_result(&job, &model);
            if job.oversized {
                crate::pad(&mut result, sim.oversized_result_bytes());
            }
            json!({
                "status": "succeeded", "createdDateTime": created, "lastUpdatedDateTime": updated,
                "analyzeResult": result,
            })
        }
        Status::Failed => json!({
            "status": "failed", "createdDateTime": created, "lastUpdatedDateTime": updated,
            "error": {
                "code": "InvalidRequest", "message": "Invalid request.",
                "innererror": {
                    "code": "InvalidContent",
                    "message": job.error.as_ref().map_or("The file is corrupted or format is unsupported.", |e| e.message.as_str()),
                },
            },
        }),
    };
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    if !job.status.is_final() {
        if let Ok(wait) = HeaderValue::from_str(&sim.twins.azure_retry_after_secs.to_string()) {
            response.headers_mut().insert("retry-after", wait);
        }
    }
    response
}

/// Text with spans into one `content` string, as Azure lays its results out.
struct Content {
    text: String,
}

impl Content {
    fn push(&mut self, piece: &str) -> Value {
        let offset = self.text.chars().count();
        self.text.push_str(piece);
        json!({ "offset": offset, "length": piece.chars().count() })
    }
}

fn polygon(bbox: &crate::engine::BBox) -> Value {
    json!(bbox.polygon())
}

fn analyze_result(job: &SimJob, model: &str) -> Value {
    let Some(output) = &job.output else {
        return json!({});
    };
    let mut content = Content {
        text: String::new(),
    };
    let mut pages = Vec::new();
    let mut key_values = Vec::new();
    for page in &output.pages {
        let page_start = content.text.chars().count();
        let mut words = Vec::new();
        let mut lines = Vec::new();
        for (n, line) in page.lines.iter().enumerate() {
            if n > 0 || !content.text.is_empty() {
                content.text.push('\n');
            }
            let line_span = json!({ "offset": content.text.chars().count(), "length": line.text.chars().count() });
            for (i, word) in line.words.iter().enumerate() {
                if i > 0 {
                    content.text.push(' ');
                }
                let span = content.push(&word.text);
                words.push(json!({
                    "content": word.text, "polygon": polygon(&word.bbox),
                    "confidence": f64::from(word.confidence) / 100.0, "span": span,
                }));
            }
            lines.push(json!({ "content": line.text, "polygon": polygon(&line.bbox), "spans": [line_span] }));
            if model != "prebuilt-read" {
                if let Some((key, value)) = line.text.split_once(':') {
                    key_values.push(json!({
                        "key": { "content": key.trim(), "boundingRegions": [{ "pageNumber": page.number, "polygon": polygon(&line.bbox) }] },
                        "value": { "content": value.trim(), "boundingRegions": [{ "pageNumber": page.number, "polygon": polygon(&line.bbox) }] },
                        "confidence": f64::from(line.confidence) / 100.0,
                    }));
                }
            }
        }
        pages.push(json!({
            // `kind`: Azure's page kind; every page of an image or a PDF is a `document`.
            "pageNumber": page.number, "kind": "document", "angle": 0.0,
            "width": page.width, "height": page.height, "unit": "pixel",
            "words": words, "lines": lines,
            "spans": [{ "offset": page_start, "length": content.text.chars().count() - page_start }],
        }));
    }
    let mut result = json!({
        "apiVersion": API_VERSION,
        "modelId": model,
        "stringIndexType": "textElements",
        "content": content.text,
        "pages": pages,
        "tables": [],
        // Handwriting and fonts: the engine tells none, and Azure sends the list empty then.
        "styles": [],
    });
    if model != "prebuilt-read" {
        result["keyValuePairs"] = Value::Array(key_values);
    }
    if let Some(document) = typed_document(model, output) {
        result["documents"] = json!([document]);
    }
    result
}

/// The prebuilt model's typed fields, from the simulator's extraction.
fn typed_document(model: &str, output: &crate::state::Output) -> Option<Value> {
    let (doc_type, names): (&str, &[(&str, &str, &str)]) = match model {
        "prebuilt-receipt" => (
            "receipt.retailMeal",
            &[
                ("company", "MerchantName", "string"),
                ("address", "MerchantAddress", "string"),
                ("date", "TransactionDate", "date"),
                ("subtotal", "Subtotal", "currency"),
                ("tax", "TotalTax", "currency"),
                ("total", "Total", "currency"),
            ],
        ),
        "prebuilt-invoice" => (
            "invoice",
            &[
                ("vendor_name", "VendorName", "string"),
                ("invoice_id", "InvoiceId", "string"),
                ("invoice_date", "InvoiceDate", "date"),
                ("due_date", "DueDate", "date"),
                ("subtotal", "SubTotal", "currency"),
                ("tax", "TotalTax", "currency"),
                ("total", "InvoiceTotal", "currency"),
            ],
        ),
        "prebuilt-idDocument" => (
            // The document kind Azure reports, from the type the page names.
            match output
                .fields
                .get("document_type")
                .map(|f| f.value.to_ascii_lowercase())
                .as_deref()
            {
                Some(t) if t.contains("identity") => "idDocument.nationalIdentityCard",
                Some(t) if t.contains("residence") => "idDocument.residencePermit",
                Some(t) if t.contains("driving") => "idDocument.driverLicense",
                _ => "idDocument.passport",
            },
            &[
                ("document_number", "DocumentNumber", "string"),
                ("surname", "LastName", "string"),
                ("given_names", "FirstName", "string"),
                ("date_of_birth", "DateOfBirth", "date"),
                ("expiry_date", "DateOfExpiration", "date"),
                ("sex", "Sex", "string"),
                ("nationality", "Nationality", "countryRegion"),
                ("issuing_country", "CountryRegion", "countryRegion"),
                ("mrz", "MachineReadableZone", "string"),
            ],
        ),
        _ => return None,
    };
    let currency = output
        .fields
        .get("currency")
        .map(|f| crate::textract::currency_code(&f.value));
    let mut fields = Map::new();
    for (ours, theirs, kind) in names {
        let Some(f) = output.fields.get(*ours) else {
            continue;
        };
        let mut field = json!({
            "type": kind, "content": f.value, "confidence": f64::from(f.confidence) / 100.0,
            "boundingRegions": [{ "pageNumber": f.page, "polygon": polygon(&f.bbox) }],
        });
        match *kind {
            "currency" => {
                let amount = f.value.replace(',', "").parse::<f64>().ok();
                field["valueCurrency"] = json!({ "amount": amount, "currencyCode": currency });
            }
            "date" => match iso_date(&f.value, currency.as_deref()) {
                Some(d) => field["valueDate"] = json!(d),
                None => field["type"] = json!("string"),
            },
            "countryRegion" => field["valueCountryRegion"] = json!(f.value),
            _ => field["valueString"] = json!(f.value),
        }
        if field["type"] == "string" && field.get("valueString").is_none() {
            field["valueString"] = json!(f.value);
        }
        fields.insert((*theirs).to_owned(), field);
    }
    if !output.line_items.is_empty() {
        fields.insert("Items".into(), items(model, output, currency.as_deref()));
    }
    Some(json!({ "docType": doc_type, "fields": fields, "confidence": 0.9 }))
}

/// The `Items` array of the prebuilt models: the invoice model types prices as currency
/// (`UnitPrice`, `Amount`), the receipt model as numbers (`Price`, `TotalPrice`), as their
/// recordings show.
fn items(model: &str, output: &crate::state::Output, currency: Option<&str>) -> Value {
    let invoice = model == "prebuilt-invoice";
    let regions = |item: &crate::fields::ItemReading| json!([{ "pageNumber": item.page, "polygon": polygon(&item.bbox) }]);
    let money = |text: &str, item: &crate::fields::ItemReading| {
        let amount = crate::fields::plain_amount(text);
        let mut field = json!({
            "content": text, "confidence": f64::from(item.confidence) / 100.0,
            "boundingRegions": regions(item),
        });
        if invoice {
            field["type"] = json!("currency");
            field["valueCurrency"] = json!({ "amount": amount, "currencyCode": currency });
        } else {
            field["type"] = json!("number");
            field["valueNumber"] = json!(amount);
        }
        field
    };
    let (unit_name, amount_name) = if invoice {
        ("UnitPrice", "Amount")
    } else {
        ("Price", "TotalPrice")
    };
    let rows: Vec<Value> = output
        .line_items
        .iter()
        .map(|item| {
            let confidence = f64::from(item.confidence) / 100.0;
            let mut row = Map::new();
            row.insert(
                "Description".into(),
                json!({
                    "type": "string", "valueString": item.description, "content": item.description,
                    "confidence": confidence, "boundingRegions": regions(item),
                }),
            );
            if let Some(quantity) = &item.quantity {
                row.insert(
                    "Quantity".into(),
                    json!({
                        "type": "number", "valueNumber": crate::fields::plain_amount(quantity),
                        "content": quantity, "confidence": confidence,
                        "boundingRegions": regions(item),
                    }),
                );
            }
            if let Some(unit) = &item.unit_price {
                row.insert(unit_name.into(), money(unit, item));
            }
            row.insert(amount_name.into(), money(&item.amount, item));
            json!({
                "type": "object", "valueObject": row, "confidence": confidence,
                "boundingRegions": regions(item),
            })
        })
        .collect();
    json!({ "type": "array", "valueArray": rows })
}

/// A date as `YYYY-MM-DD`, as Azure's `valueDate` gives it, in the document's locale.
fn iso_date(text: &str, currency: Option<&str>) -> Option<String> {
    Some(
        crate::fields::typed_date(text, currency)?
            .format("%Y-%m-%d")
            .to_string(),
    )
}
