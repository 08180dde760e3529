//! The Mindee v2 twin, from Mindee's API reference, its official SDKs and the real payloads in
//! `../shared/fixtures/mindee-v2/`:
//!
//! - `POST /v2/inferences/enqueue` (multipart: `model_id`, `file` or `url`, `alias`,
//!   `webhook_ids` one field per id) with `Authorization: <key>` (no "Bearer") → `202 {job}`;
//!   errors are RFC 9457 (`{status, detail, title, code, errors}`): `401` bad or missing key,
//!   `422` an invalid form (no `model_id`, no document);
//! - `GET /v2/jobs/{id}` → the job while `Processing` or `Failed` (with its `error`); once
//!   `Processed`, a **302** to its `result_url`. The result URL is the job's own, opaque
//!   (`/v2/results/<token>`), so a client that builds it instead of following it fails — Mindee
//!   moved that route in 2026;
//! - the result (`{inference: {id, job, model, file, result: {fields, raw_text}}}`), fields
//!   typed as the financial-document model types them, `null` where nothing was found (a null is
//!   a missing field, not a crash); fetchable for `result_ttl` after the job ends;
//! - a webhook to each of the job's `webhook_ids` (registered with `PUT /admin/mindee-webhooks`)
//!   when it ends: the result as the body, `X-Signature` = hex HMAC-SHA256 of the body (with CR
//!   and LF removed: the compact JSON as sent) keyed with the endpoint's secret. **No timestamp**;
//! - **no idempotency** and no search: `alias` is not unique; every enqueue is a new job and a
//!   new charge;
//! - `GET /v2/search/models` → the organization's models, paged: the cheapest authenticated
//!   call, how a key is verified (`401` for a bad one, as every call);
//! - 200 `POST`s and 1,200 `GET`s per minute (`mindee_*_per_minute`): `429`;
//! - faults: throttling, 5xx, drop and truncate after accept, slow, failed jobs, drift (a new
//!   field and nulls), and on webhooks lost, duplicated, delayed, forged (a wrong signature) and
//!   replayed (the same body and signature again, later — only deduplication by inference id can
//!   catch it).
//!
//! Not modelled: RAG, `raw_text`/`polygon`/`confidence` options (polygons and confidences are
//! always sent), models other than a financial document, the webhook retry policy beyond the
//! simulator's schedule.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::Sha256;

use crate::api::{
    cut_answer, download, request_fault, submission_received, FetchError, Refusal, RequestFault,
};
use crate::faults::Fault;
use crate::state::{Protocol, SimJob, Status};
use crate::{Accept, Accepted, Sim};

/// A Mindee job's own parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MindeeJob {
    pub model_id: String,
    pub alias: Option<String>,
    pub filename: String,
    pub webhook_ids: Vec<String>,
    /// The opaque part of the job's result URL.
    pub result_token: String,
}

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/v2/inferences/enqueue", post(enqueue))
        .route("/v2/jobs/{id}", get(job))
        .route("/v2/results/{token}", get(result))
        .route("/v2/search/models", get(search_models))
        .route("/admin/mindee-webhooks", put(put_webhooks))
}

/// `GET /v2/search/models`: the models the key's organization can use (here, every model a
/// document was sent to), paged as Mindee pages them. The cheapest authenticated call: how a
/// key is verified.
async fn search_models(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Response {
    if let Some(refused) = gate(&sim, &headers, false) {
        return refused;
    }
    let models: std::collections::BTreeSet<String> = sim.with_state(|inner| {
        inner
            .jobs
            .values()
            .filter_map(|j| match &j.protocol {
                Protocol::Mindee(m) => Some(m.model_id.clone()),
                _ => None,
            })
            .collect()
    });
    let total = models.len();
    let models: Vec<Value> = models
        .into_iter()
        .map(|id| json!({ "id": id, "name": "financial_document", "model_type": "extraction" }))
        .collect();
    Json(json!({
        "models": models,
        "pagination": { "per_page": 50, "page": 1, "total_items": total, "total_pages": usize::from(total > 0) },
    }))
    .into_response()
}

/// RFC 9457 problem details, Mindee's error shape.
fn problem(status: StatusCode, code: &str, title: &str, detail: impl Into<String>) -> Response {
    (
        status,
        Json(json!({
            "status": status.as_u16(), "detail": detail.into(), "title": title,
            "code": code, "errors": [],
        })),
    )
        .into_response()
}

/// Per-minute limits and the request faults, after the key.
fn gate(sim: &Sim, headers: &HeaderMap, post: bool) -> Option<Response> {
    sim.with_state(|inner| {
        inner.stats.requests += 1;
        match headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            None => {
                inner.stats.unauthorized += 1;
                return Some(problem(
                    StatusCode::UNAUTHORIZED,
                    "401-008",
                    "Missing credentials",
                    "Credentials are required.",
                ));
            }
            Some(key) if !inner.api_keys.contains(key) => {
                inner.stats.unauthorized += 1;
                return Some(problem(
                    StatusCode::UNAUTHORIZED,
                    "401-001",
                    "Invalid API key",
                    "The provided API key is invalid.",
                ));
            }
            Some(_) => {}
        }
        let per_minute = if post {
            sim.twins.mindee_posts_per_minute
        } else {
            sim.twins.mindee_gets_per_minute
        };
        if !inner.mindee_minute.take(post, per_minute, Instant::now()) {
            inner.count_fault(Fault::RateLimited);
            return Some(throttled(60));
        }
        match request_fault(inner) {
            Some(RequestFault::Throttled { retry_after_secs }) => Some(throttled(retry_after_secs)),
            Some(RequestFault::ServerError { status }) => Some(problem(
                status,
                "500-001",
                "Internal server error",
                "An unexpected error occurred.",
            )),
            None => None,
        }
    })
}

fn throttled(retry_after_secs: u64) -> Response {
    let mut r = problem(
        StatusCode::TOO_MANY_REQUESTS,
        "429-001",
        "Too many requests",
        "The rate limit of your organization was reached.",
    );
    if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Requests counted per minute, separately for `POST` and `GET`.
#[derive(Debug, Default)]
pub struct MinuteWindow {
    started: Option<Instant>,
    posts: f64,
    gets: f64,
}

impl MinuteWindow {
    fn take(&mut self, post: bool, limit: f64, now: Instant) -> bool {
        if self
            .started
            .is_none_or(|s| now.duration_since(s) >= Duration::from_secs(60))
        {
            *self = MinuteWindow {
                started: Some(now),
                ..Default::default()
            };
        }
        let used = if post {
            &mut self.posts
        } else {
            &mut self.gets
        };
        if *used + 1.0 > limit {
            return false;
        }
        *used += 1.0;
        true
    }
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

async fn enqueue(State(sim): State<Arc<Sim>>, request: Request) -> Response {
    let received = Instant::now();
    let headers = request.headers().clone();
    if let Some(r) = gate(&sim, &headers, true) {
        return r;
    }
    let invalid = |pointer: &str, detail: String| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "status": 422, "detail": "One or more fields failed validation.",
                "title": "Invalid fields in form", "code": "422-001",
                "errors": [{ "pointer": pointer, "detail": detail }],
            })),
        )
            .into_response()
    };
    let mut multipart = match Multipart::from_request(request, &()).await {
        Ok(m) => m,
        Err(e) => return invalid("#/", e.to_string()),
    };
    let (mut model_id, mut url, mut file, mut alias, mut webhook_ids) =
        (None, None, None, None, Vec::new());
    let mut filename = "document".to_owned();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return invalid("#/", e.to_string()),
        };
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            filename = field.file_name().unwrap_or("document").to_owned();
            match field.bytes().await {
                Ok(b) => file = Some(b),
                Err(e) => return invalid("#/file", e.to_string()),
            }
            continue;
        }
        let Ok(text) = field.text().await else {
            return invalid(&format!("#/{name}"), "not text".into());
        };
        match name.as_str() {
            "model_id" => model_id = Some(text),
            "url" => url = Some(text),
            "alias" => alias = Some(text),
            "webhook_ids" => webhook_ids.push(text),
            _ => {}
        }
    }
    let Some(model_id) = model_id.filter(|m| !m.is_empty()) else {
        return invalid("#/model_id", "model_id is required".into());
    };
    match submission_received(&sim, alias.as_deref().unwrap_or_default())
        .proceed()
        .await
    {
        Ok(()) => {}
        Err(Refusal::Unauthorized) => {
            return problem(
                StatusCode::UNAUTHORIZED,
                "401-001",
                "Unauthorized",
                "Invalid API key.",
            )
        }
        Err(Refusal::Throttled(secs)) => return throttled(secs),
        Err(Refusal::Rejected) => return invalid("#/file", "The file could not be read.".into()),
    }
    let document = match (file, url) {
        (Some(bytes), _) => bytes,
        (None, Some(url)) => match download(&sim, &url, 100 * 1024 * 1024).await {
            Ok(bytes) => {
                filename = url
                    .split('?')
                    .next()
                    .and_then(|u| u.rsplit('/').next())
                    .unwrap_or("document")
                    .to_owned();
                bytes
            }
            Err(FetchError::TooLarge) => return invalid("#/url", "the file is over 100 MB".into()),
            Err(FetchError::Unreachable(m)) => return invalid("#/url", m),
        },
        (None, None) => return invalid("#/file", "give a file or a url".into()),
    };
    let model_id_is_id = model_id == CATALOG_ID_MODEL;
    let accept = Accept {
        protocol: Protocol::Mindee(MindeeJob {
            model_id,
            alias: alias.clone(),
            filename,
            webhook_ids,
            result_token: uuid::Uuid::new_v4().simple().to_string(),
        }),
        profile: if model_id_is_id {
            "id".into()
        } else {
            "financial".into()
        },
        // The alias is the only reference Mindee keeps of ours (not unique, not searchable).
        external_ref: alias,
        key: None,
        document,
        received,
    };
    let Accepted::New { job, cut } = sim.accept(accept) else {
        return problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "500-001",
            "Internal server error",
            "",
        );
    };
    let mut response = (
        StatusCode::ACCEPTED,
        Json(json!({ "job": job_view(&job, &base_url(&headers)) })),
    )
        .into_response();
    cut_answer(&mut response, cut);
    response
}

fn timestamp(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string()
}

fn job_view(job: &SimJob, base: &str) -> Value {
    let Protocol::Mindee(m) = &job.protocol else {
        return Value::Null;
    };
    let status = match job.status {
        Status::Queued | Status::Processing => "Processing",
        Status::Succeeded => "Processed",
        Status::Failed => "Failed",
    };
    json!({
        "id": job.id,
        "model_id": m.model_id,
        "filename": m.filename,
        "alias": m.alias,
        "created_at": timestamp(job.created_at),
        "completed_at": job.status.is_final().then(|| timestamp(job.updated_at)),
        "status": status,
        "polling_url": format!("{base}/v2/jobs/{}", job.id),
        "result_url": (job.status == Status::Succeeded).then(|| format!("{base}/v2/results/{}", m.result_token)),
        "webhooks": m.webhook_ids.iter().map(|id| json!({ "id": id, "status": status })).collect::<Vec<_>>(),
        "error": (job.status == Status::Failed).then(|| json!({
            "status": 422, "detail": job.error.as_ref().map_or("The document could not be processed.", |e| e.message.as_str()),
            "title": "Processing failed", "code": "422-004", "errors": [],
        })),
    })
}

async fn job(State(sim): State<Arc<Sim>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Some(r) = gate(&sim, &headers, false) {
        return r;
    }
    let job = sim.with_state(|inner| {
        inner.stats.status_requests += 1;
        inner.jobs.get(&id).cloned()
    });
    let Some(job) = job
        .filter(|j| matches!(j.protocol, Protocol::Mindee(_)))
        .filter(|j| !j.is_gone(sim.twins.result_ttl))
    else {
        return problem(
            StatusCode::NOT_FOUND,
            "404-001",
            "Not found",
            "No such job.",
        );
    };
    let base = base_url(&headers);
    let view = job_view(&job, &base);
    if job.status == Status::Succeeded {
        // Processed: the answer is where the result is, not the result.
        let mut response =
            (StatusCode::FOUND, Json(json!({ "job": view.clone() }))).into_response();
        if let Some(Ok(location)) = view["result_url"].as_str().map(HeaderValue::from_str) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        return response;
    }
    (StatusCode::OK, Json(json!({ "job": view }))).into_response()
}

async fn result(
    State(sim): State<Arc<Sim>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = gate(&sim, &headers, false) {
        return r;
    }
    let job = sim.with_state(|inner| {
        inner
            .jobs
            .values()
            .find(|j| matches!(&j.protocol, Protocol::Mindee(m) if m.result_token == token))
            .cloned()
    });
    match job {
        Some(job) if job.status == Status::Succeeded => {
            if job.is_gone(sim.twins.result_ttl) {
                return problem(
                    StatusCode::NOT_FOUND,
                    "404-002",
                    "Not found",
                    "The result has expired.",
                );
            }
            (StatusCode::OK, Json(inference(&job, &sim))).into_response()
        }
        _ => problem(
            StatusCode::NOT_FOUND,
            "404-001",
            "Not found",
            "No such result.",
        ),
    }
}

/// A Mindee field: `{value, confidence, locations}`, a null value when nothing was found.
fn field(
    f: Option<&crate::fields::Field>,
    value: impl Fn(&str) -> Value,
    page: Option<&crate::engine::Page>,
) -> Value {
    let Some(f) = f else {
        return json!({ "value": null, "confidence": null, "locations": [] });
    };
    let confidence = match f.confidence {
        c if c >= 95.0 => "Certain",
        c if c >= 80.0 => "High",
        c if c >= 50.0 => "Medium",
        _ => "Low",
    };
    let locations = page.map_or(json!([]), |p| {
        let (l, t, w, h) = f.bbox.normalized(p.width, p.height);
        json!([{ "page": f.page.saturating_sub(1), "polygon": [[l, t], [l + w, t], [l + w, t + h], [l, t + h]] }])
    });
    json!({ "value": value(&f.value), "confidence": confidence, "locations": locations })
}

fn number(text: &str) -> Value {
    text.replace(',', "")
        .parse::<f64>()
        .map_or(Value::Null, |n| json!(n))
}

/// A date typed in the document's locale, as Mindee's model returns it.
fn date(text: &str, currency: Option<&str>) -> Value {
    crate::fields::typed_date(text, currency)
        .map_or(Value::Null, |d| json!(d.format("%Y-%m-%d").to_string()))
}

/// The item rows as Mindee's `line_items` list: every field of an item's schema on each, null
/// where the row prints none (as its recordings carry them).
fn line_items(output: &crate::state::Output) -> Value {
    let money = |v: &str| crate::fields::plain_amount(v).map_or(Value::Null, |n| json!(n));
    let text = |v: &str| json!(v);
    let items: Vec<Value> = output
        .line_items
        .iter()
        .map(|item| {
            let page = output.pages.iter().find(|p| p.number == item.page);
            let part = |value: Option<&String>| {
                value.map(|v| crate::fields::Field {
                    value: v.clone(),
                    confidence: item.confidence,
                    page: item.page,
                    bbox: item.bbox,
                })
            };
            let description = part(Some(&item.description));
            let quantity = part(item.quantity.as_ref());
            let unit_price = part(item.unit_price.as_ref());
            let total_price = part(Some(&item.amount));
            json!({
                "fields": {
                    "description": field(description.as_ref(), text, page),
                    "quantity": field(quantity.as_ref(), money, page),
                    "unit_price": field(unit_price.as_ref(), money, page),
                    "total_price": field(total_price.as_ref(), money, page),
                    "product_code": field(None, text, None),
                    "unit_measure": field(None, text, None),
                    "tax_rate": field(None, text, None),
                    "tax_amount": field(None, text, None),
                },
                "locations": [],
                "confidence": null,
            })
        })
        .collect();
    json!({ "items": items, "confidence": null })
}

/// The twin's account's International ID model, as Mindee's catalog defines its data schema
/// (docs.mindee.com, use-cases/extraction-models/international-id): a job on it reads the
/// simulator's `id` fields. Every other model id is a financial-document model.
pub const CATALOG_ID_MODEL: &str = "00000000-0000-4000-8000-0000000001d0";

/// The International ID model's fields for a job: every field of its data schema, null where
/// the document has none; the MRZ an object of its lines; the document type one of the
/// catalog's values.
fn id_fields(output: &crate::state::Output) -> Map<String, Value> {
    let f = |name: &str| output.fields.get(name);
    let page_of =
        |name: &str| f(name).and_then(|f| output.pages.iter().find(|p| p.number == f.page));
    let text = |v: &str| json!(v);
    let iso = |v: &str| date(v, None);
    let none = || field(None, text, None);
    let mut fields = Map::new();
    for (theirs, ours, typed) in [
        ("given_names", "given_names", false),
        ("surnames", "surname", false),
        ("nationality", "nationality", false),
        ("document_number", "document_number", false),
        ("date_of_birth", "date_of_birth", true),
        ("date_of_expiry", "expiry_date", true),
    ] {
        let value = if typed {
            field(f(ours), iso, page_of(ours))
        } else {
            field(f(ours), text, page_of(ours))
        };
        fields.insert(theirs.into(), value);
    }
    fields.insert("sex".into(), field(f("sex"), text, page_of("sex")));
    let kind = |v: &str| {
        let v = v.to_ascii_lowercase();
        json!(if v.contains("identity") {
            "National ID"
        } else if v.contains("residence") {
            "Residence Permit"
        } else if v.contains("driving") {
            "Driver License"
        } else {
            "Passport"
        })
    };
    fields.insert(
        "document_type".into(),
        field(f("document_type"), kind, page_of("document_type")),
    );
    for empty in ["place_of_birth", "date_of_issue", "authority"] {
        fields.insert(empty.into(), none());
    }
    fields.insert(
        "address".into(),
        json!({ "locations": [], "confidence": null, "fields": {
            "street": none(), "city": none(), "state": none(), "postal_code": none(),
            "country": none(),
        }}),
    );
    let lines: Vec<String> = f("mrz")
        .map(|m| m.value.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let line = |i: usize| {
        lines.get(i).map_or_else(none, |l| {
            field(
                f("mrz")
                    .map(|m| crate::fields::Field {
                        value: l.clone(),
                        ..m.clone()
                    })
                    .as_ref(),
                text,
                page_of("mrz"),
            )
        })
    };
    fields.insert(
        "mrz".into(),
        json!({ "locations": [], "confidence": null, "fields": {
            "line_1": line(0), "line_2": line(1), "line_3": line(2),
        }}),
    );
    fields
}

/// The inference of a processed job, as Mindee returns it and posts it to webhooks; padded
/// when the `oversized_result` fault struck it.
fn inference(job: &SimJob, sim: &Sim) -> Value {
    let (Protocol::Mindee(m), Some(output)) = (&job.protocol, &job.output) else {
        return Value::Null;
    };
    if job.profile == "id" {
        return wrap(job, m, output, id_fields(output), sim);
    }
    let f = |name: &str| output.fields.get(name);
    let page_of =
        |name: &str| f(name).and_then(|f| output.pages.iter().find(|p| p.number == f.page));
    let text = |v: &str| json!(v);
    let currency = f("currency").map(|c| crate::textract::currency_code(&c.value));
    let date = |v: &str| date(v, currency.as_deref());
    let mut fields = Map::new();
    let mut put = |name: &str, value: Value| {
        fields.insert(name.to_owned(), value);
    };
    put(
        "supplier_name",
        field(
            f("company").or(f("vendor_name")),
            text,
            page_of("company").or(page_of("vendor_name")),
        ),
    );
    // An address is an object of fields, as Mindee sends it; the twin fills only `complete`.
    let none = || field(None, text, None);
    put(
        "supplier_address",
        json!({ "locations": [], "confidence": null, "fields": {
            "complete": field(f("address"), text, page_of("address")),
            "city": none(), "country": none(), "postal_code": none(), "state": none(),
            "po_box": none(), "street_name": none(), "street_number": none(),
            "address_complement": none(),
        }}),
    );
    // Mindee returns every field of the model's data schema, null when the document has none
    // (every recording in tests/fixtures/vendors/mindee-v2/financial_document carries these):
    // what the engine does not read is null here too, never missing.
    put(
        "customer_address",
        json!({ "locations": [], "confidence": null, "fields": {
            "value": none(), "city": none(), "country": none(), "postal_code": none(),
            "state": none(), "po_box": none(), "street_name": none(), "street_number": none(),
            "address_complement": none(),
        }}),
    );
    for name in [
        "customer_name",
        "supplier_phone_number",
        "purchase_category",
        "purchase_subcategory",
        "tips_gratuity",
    ] {
        put(name, none());
    }
    for list in [
        "taxes",
        "customer_company_registrations",
        "supplier_company_registration",
    ] {
        put(list, json!({ "items": [], "confidence": null }));
    }
    let document_type = match job.profile.as_str() {
        "invoice" | "receipt" => job.profile.as_str(),
        _ => "other_financial",
    };
    put(
        "document_type",
        json!({ "locations": [], "confidence": null, "value": document_type }),
    );
    put(
        "invoice_number",
        field(f("invoice_id"), text, page_of("invoice_id")),
    );
    put("receipt_number", field(None, text, None));
    put(
        "date",
        field(
            f("date").or(f("invoice_date")),
            date,
            page_of("date").or(page_of("invoice_date")),
        ),
    );
    put("due_date", field(f("due_date"), date, page_of("due_date")));
    put("total_amount", field(f("total"), number, page_of("total")));
    put(
        "total_net",
        field(f("subtotal"), number, page_of("subtotal")),
    );
    put("total_tax", field(f("tax"), number, page_of("tax")));
    put("line_items", line_items(output));
    put(
        "locale",
        json!({ "locations": [], "confidence": null, "fields": {
            "currency": field(f("currency"), |v| json!(crate::textract::currency_code(v)), None),
            "language": { "locations": [], "confidence": null, "value": "en" },
            "country": { "locations": [], "confidence": null, "value": null },
        }}),
    );
    if output.drifted {
        // A field from a newer model version, and a null where a value used to be.
        put(
            "purchase_category_v2",
            json!({ "value": "food", "confidence": "High", "locations": [] }),
        );
        put(
            "total_tax",
            json!({ "value": null, "confidence": null, "locations": [] }),
        );
    }
    wrap(job, m, output, fields, sim)
}

/// An inference around a model's `fields`: the job, the model, the file, the pages' raw text.
fn wrap(
    job: &SimJob,
    m: &MindeeJob,
    output: &crate::state::Output,
    fields: Map<String, Value>,
    sim: &Sim,
) -> Value {
    let raw_text: Vec<Value> = output
        .pages
        .iter()
        .map(|p| json!({ "content": p.lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join("\n") }))
        .collect();
    let mut inference = json!({
        "id": job.id,
        "job": { "id": job.id },
        "model": { "id": m.model_id },
        "file": { "name": m.filename, "alias": m.alias, "page_count": output.pages.len(), "mime_type": "application/octet-stream" },
        "result": { "fields": fields, "raw_text": { "pages": raw_text } },
        "active_options": { "raw_text": true, "polygon": true, "confidence": true, "rag": false, "text_context": false, "data_schema": { "replace": false } },
    });
    if job.oversized {
        crate::pad(&mut inference, sim.oversized_result_bytes());
    }
    json!({ "inference": inference })
}

/// Webhook endpoints, by id: where to post, and the signing secret.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Endpoint {
    pub url: String,
    pub secret: String,
}

async fn put_webhooks(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    match serde_json::from_slice::<BTreeMap<String, Endpoint>>(&body) {
        Ok(endpoints) => {
            let count = endpoints.len();
            sim.with_state(|inner| inner.mindee_webhooks = endpoints);
            // Never echo secrets.
            Json(json!({ "endpoints": count })).into_response()
        }
        Err(e) => problem(
            StatusCode::BAD_REQUEST,
            "400-001",
            "Invalid webhooks",
            e.to_string(),
        ),
    }
}

/// `X-Signature`: hex HMAC-SHA256 of the body without CR and LF, keyed with the secret's bytes.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let canonical: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| *b != b'\r' && *b != b'\n')
        .collect();
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(&canonical);
    hex::encode(mac.finalize().into_bytes())
}

/// Posts the job's result to each of its webhook endpoints when it ends, through the webhook
/// faults. A failed job is posted too (its job, with the error).
pub fn notify(sim: &Arc<Sim>, job: SimJob) {
    let Protocol::Mindee(m) = &job.protocol else {
        return;
    };
    let body = if job.status == Status::Succeeded {
        inference(&job, sim)
    } else {
        json!({ "job": job_view(&job, "") })
    };
    let body = Bytes::from(body.to_string());
    for id in &m.webhook_ids {
        let Some(endpoint) = sim.with_state(|inner| inner.mindee_webhooks.get(id).cloned()) else {
            sim.with_state(|inner| inner.stats.webhooks_without_endpoint += 1);
            continue;
        };
        // Each endpoint's delivery of each job rolls its own faults.
        let event = format!("{}:{id}", job.subject());
        let plan = sim.with_state(|inner| Plan {
            job: job.id.clone(),
            subject: job.subject().to_owned(),
            lost: inner.strikes_for(Fault::LostWebhook, &event),
            forged_first: inner.strikes_for(Fault::BadSignature, &event),
            copies: if inner.strikes_for(Fault::DuplicateWebhook, &event) {
                2
            } else {
                1
            },
            delay: if inner.strikes_for(Fault::DelayedWebhook, &event) {
                Duration::from_millis(inner.dice.config.webhook_delay_ms)
            } else {
                Duration::ZERO
            },
            replay_after: inner
                .strikes_for(Fault::Replay, &event)
                .then(|| Duration::from_millis(inner.dice.config.webhook_delay_ms.max(500) * 2)),
            retries: inner.webhook.retry_schedule.clone(),
        });
        if plan.lost {
            continue;
        }
        let sim = Arc::clone(sim);
        let body = body.clone();
        tokio::spawn(async move { deliver(sim, endpoint, body, plan).await });
    }
}

struct Plan {
    /// The job whose final status the delivery carries.
    job: String,
    /// Its subject (see [`Sim::release_delayed`]).
    subject: String,
    lost: bool,
    forged_first: bool,
    copies: u32,
    delay: Duration,
    replay_after: Option<Duration>,
    retries: Vec<Duration>,
}

async fn deliver(sim: Arc<Sim>, endpoint: Endpoint, body: Bytes, plan: Plan) {
    use crate::webhooks::DeliveryKind;
    let genuine = signature(&endpoint.secret, &body);
    let post = |signature: String| {
        let sim = Arc::clone(&sim);
        let url = endpoint.url.clone();
        let body = body.clone();
        async move {
            sim.http
                .post(&url)
                .header("content-type", "application/json")
                .header("x-signature", signature)
                .body(body)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    };
    let count = |kind: DeliveryKind| {
        sim.with_state(|inner| *inner.stats.webhooks_sent.entry(kind).or_default() += 1)
    };
    if plan.forged_first {
        count(DeliveryKind::Forged);
        post(signature("not-the-secret", &body)).await;
    }
    sim.hold_delivery(&plan.subject, plan.delay).await;
    for copy in 0..plan.copies {
        count(if copy == 0 {
            if plan.delay.is_zero() {
                DeliveryKind::Genuine
            } else {
                DeliveryKind::Delayed
            }
        } else {
            DeliveryKind::Duplicate
        });
        let mut delivered = post(genuine.clone()).await;
        for wait in &plan.retries {
            if delivered {
                break;
            }
            sim.with_state(|inner| inner.stats.webhook_attempts_failed += 1);
            tokio::time::sleep(*wait).await;
            delivered = post(genuine.clone()).await;
        }
        sim.with_state(|inner| {
            if delivered {
                inner.stats.webhook_deliveries_ok += 1;
                if let Some(job) = inner.jobs.get_mut(&plan.job) {
                    job.completion_acked = true;
                }
            } else {
                inner.stats.webhooks_exhausted += 1;
            }
        });
    }
    if let Some(after) = plan.replay_after {
        // A captured delivery sent again: same body, same valid signature, no timestamp to
        // betray it.
        tokio::time::sleep(after).await;
        count(DeliveryKind::Replay);
        post(genuine).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mindee's SDKs check their published example this way: the body as sent (compact JSON,
    /// no CR or LF), keyed with the secret's bytes. A trailing newline added by whoever saved
    /// the payload does not change the signature.
    #[test]
    fn the_signature_covers_the_body_without_line_breaks() {
        let body = br#"{"inference": {"id": "abc"}}"#;
        let with_newline = b"{\"inference\": {\"id\": \"abc\"}}\r\n";
        assert_eq!(signature("k", body), signature("k", with_newline));
        assert_ne!(signature("k", body), signature("other", body));
        assert_eq!(signature("k", body).len(), 64);
    }
}
