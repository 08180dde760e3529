//! `ocrbridge review serve`: the review console. A local web server on 127.0.0.1 that works the
//! `NeedsReview` queue with the operator's own AWS credentials — nothing new is deployed, and
//! nothing is reachable from another machine.
//!
//! - [`auth`]: the session token it prints and the CSRF token of its forms;
//! - [`queue`]: the order of the queue, riskiest first, and its filters;
//! - [`html`]: the pages;
//! - here: the routes, the page images, and the decision — the same guarded transition as
//!   `ocrbridge review approve|correct` ([`crate::commands::review::record`]), with the time the
//!   reviewer spent and the corrections counted as metrics (`ReviewSeconds`, `ReviewCorrections`).

pub mod auth;
pub mod html;
pub mod queue;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use ocrbridge::blob::{Blob, ObjectRef};
use ocrbridge::inspect::FileType;
use ocrbridge::job::{Job, JobState};
use ocrbridge::metrics::{Metrics, REVIEW_CORRECTIONS, REVIEW_SECONDS};
use ocrbridge::time::UnixMillis;
use serde_json::Value;

use crate::commands::review::{self, Decision, Reviewer};
use crate::{CliError, Target};
use auth::Session;
use html::{DocumentView, FieldView, PageImage};
use queue::{Filter, Item};

/// Jobs in review read for the queue.
const QUEUE_LIMIT: i32 = 500;
/// PDF pages shown on a document page (the rest are a `review show` away).
const MAX_PAGES: u32 = 10;
/// How long a page image's presigned URL lives.
const IMAGE_URL_LIFETIME: Duration = Duration::from_secs(15 * 60);

struct App {
    target: Target,
    session: Session,
    reviewer: String,
    /// When this console first showed each document: the start of its review time.
    opened: Mutex<HashMap<String, Instant>>,
}

type Shared = Arc<App>;

/// Serves the console on `127.0.0.1:port` (0: any free port) until interrupted. Prints the URL,
/// with its session token, on stdout.
pub async fn serve(target: Target, port: u16, reviewer: String) -> Result<(), CliError> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .map_err(|e| CliError::Usage(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
    let address = listener
        .local_addr()
        .map_err(|e| CliError::Usage(format!("no local address: {e}")))?;
    let origin = format!("http://{address}");
    let session = Session::new(origin.clone());
    println!(
        "review console for {} (reviewer {reviewer}): {origin}/?token={}",
        target.name,
        session.token()
    );
    println!("the URL is the key: anyone with it can decide jobs as {reviewer}. Ctrl-C stops.");
    let app = Arc::new(App {
        target,
        session,
        reviewer,
        opened: Mutex::new(HashMap::new()),
    });
    let router = Router::new()
        .route("/", get(queue_page))
        .route("/jobs/{id}", get(document_page))
        .route("/jobs/{id}/page/{n}", get(page_image))
        .route("/jobs/{id}/decide", post(decide))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app);
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| CliError::Usage(format!("the console stopped: {e}")))
}

/// Every request passes here first ([`auth`]): the printed URL's token becomes a cookie, a
/// post from another site gets 403, a request without the session 401.
async fn guard(State(app): State<Shared>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let query = request.uri().query().map(str::to_owned);
    if method == Method::GET && app.session.query_has_token(query.as_deref()) {
        let rest: Vec<&str> = query
            .as_deref()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.starts_with("token="))
            .collect();
        let path = request.uri().path();
        let to = if rest.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", rest.join("&"))
        };
        return (
            [(header::SET_COOKIE, app.session.cookie())],
            Redirect::to(&to),
        )
            .into_response();
    }
    match app
        .session
        .check(&method, request.headers(), query.as_deref())
    {
        Ok(()) => next.run(request).await,
        Err(denied) => refusal(denied.status(), &denied.to_string()),
    }
}

fn refusal(status: StatusCode, message: &str) -> Response {
    (
        status,
        Html(format!(
            "<!doctype html><title>{}</title><h1>{}</h1><p id=error>{}</p>",
            status.as_u16(),
            status,
            html::esc(message)
        )),
    )
        .into_response()
}

fn failure(e: &CliError) -> Response {
    let status = match e {
        CliError::UnknownJob(_) => StatusCode::NOT_FOUND,
        CliError::Refused(_) => StatusCode::CONFLICT,
        CliError::Usage(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::BAD_GATEWAY,
    };
    refusal(status, &e.to_string())
}

fn filter_from(query: Option<&str>) -> Filter {
    let mut filter = Filter::default();
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.unwrap_or_default()).unwrap_or_default();
    for (k, v) in pairs {
        let v = Some(v.trim().to_owned()).filter(|v| !v.is_empty());
        match k.as_str() {
            "profile" => filter.profile = v,
            "source" => filter.source = v,
            "rule" => filter.rule = v,
            _ => {}
        }
    }
    filter
}

async fn queue_items(app: &App, filter: &Filter) -> Result<Vec<Item>, CliError> {
    let jobs = app
        .target
        .ledger()
        .recent_in_state(JobState::NeedsReview, QUEUE_LIMIT)
        .await?;
    Ok(queue::order(jobs, filter, UnixMillis::now().0))
}

async fn queue_page(State(app): State<Shared>, RawQuery(query): RawQuery) -> Response {
    let filter = filter_from(query.as_deref());
    let decided =
        serde_urlencoded::from_str::<Vec<(String, String)>>(query.as_deref().unwrap_or_default())
            .unwrap_or_default()
            .into_iter()
            .find(|(k, _)| k == "decided")
            .map(|(_, v)| format!("{v}: recorded. Nothing else in the queue matches the filter."));
    match queue_items(&app, &filter).await {
        Ok(items) => Html(html::queue(
            &app.target.name,
            &items,
            &filter,
            decided.as_deref(),
        ))
        .into_response(),
        Err(e) => failure(&e),
    }
}

/// The fields the reviewer sees: the stored result's (with raw text, page and box), each with
/// the rules that flagged it, and a row for a flagged field the vendor did not find.
async fn field_views(app: &App, item: &Item) -> Result<Vec<FieldView>, CliError> {
    let result = review::result_json(&app.target, &item.job).await?;
    let summary = review::summary(&item.job);
    let source = result
        .get("fields")
        .filter(|f| f.is_object())
        .unwrap_or(&summary);
    let mut views = Vec::new();
    for (name, f) in source.as_object().into_iter().flatten() {
        if matches!(name.as_str(), "profile" | "review" | "flags") || f.is_array() {
            continue;
        }
        let bbox = f.get("bbox").and_then(|b| {
            Some([
                b.get("left")?.as_f64()?,
                b.get("top")?.as_f64()?,
                b.get("width")?.as_f64()?,
                b.get("height")?.as_f64()?,
            ])
        });
        views.push(FieldView {
            name: name.clone(),
            value: FieldView::text(f.get("value").unwrap_or(f)),
            raw: f.get("raw").and_then(Value::as_str).map(str::to_owned),
            confidence: f.get("confidence").and_then(Value::as_f64),
            page: f.get("page").and_then(Value::as_u64),
            bbox,
            rules: Vec::new(),
        });
    }
    for flag in &item.flags {
        match views.iter_mut().find(|v| v.name == flag.field) {
            Some(v) if !v.rules.contains(&flag.rule) => v.rules.push(flag.rule.clone()),
            Some(_) => {}
            None if flag.field != "fields" && !flag.field.is_empty() => views.push(FieldView {
                name: flag.field.clone(),
                value: String::new(),
                raw: None,
                confidence: None,
                page: None,
                bbox: None,
                rules: vec![flag.rule.clone()],
            }),
            None => {}
        }
    }
    Ok(views)
}

async fn page_source(app: &App, job: &Job) -> Result<PageImage, CliError> {
    let pages = job.inspection.pages.unwrap_or(1).clamp(1, MAX_PAGES);
    Ok(match job.inspection.file_type {
        Some(FileType::Png | FileType::Jpeg | FileType::Gif | FileType::Webp | FileType::Bmp) => {
            let url = Blob::new(app.target.clients.s3.clone())
                .presign_get(&ObjectRef::from(&job.source), IMAGE_URL_LIFETIME)
                .await
                .map_err(CliError::aws)?;
            PageImage::Url(url)
        }
        Some(FileType::Pdf) if which("pdftoppm") => PageImage::Rendered(pages),
        Some(FileType::Pdf) => PageImage::None(
            "PDF pages are rendered with pdftoppm, which is not installed here (Debian: apt-get install poppler-utils)".into(),
        ),
        Some(other) => PageImage::None(format!(
            "a browser cannot show {other:?} images; `aws s3 cp s3://{}/{} .` fetches the document",
            job.source.bucket, job.source.key
        )),
        None => PageImage::None("the document's type is not known".into()),
    })
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

async fn document_page(
    State(app): State<Shared>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let filter = filter_from(query.as_deref());
    match render_document(&app, &id, &filter).await {
        Ok(page) => page,
        Err(e) => failure(&e),
    }
}

async fn render_document(app: &App, id: &str, filter: &Filter) -> Result<Response, CliError> {
    let job = crate::commands::job(&app.target, id).await?;
    if job.state != JobState::NeedsReview {
        return Err(CliError::Refused(format!(
            "job {} is {}, not NeedsReview: it was decided already, or never needed review",
            job.id, job.state
        )));
    }
    let items = queue_items(app, filter).await?;
    let at = items.iter().position(|i| i.job.id == job.id);
    let neighbour = |offset: isize| -> Option<String> {
        let at = at? as isize + offset;
        usize::try_from(at)
            .ok()
            .and_then(|i| items.get(i))
            .map(|i| i.job.id.to_string())
    };
    let item = Item::new(job, UnixMillis::now().0);
    app.opened
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(item.job.id.to_string())
        .or_insert_with(Instant::now);
    let fields = field_views(app, &item).await?;
    let image = page_source(app, &item.job).await?;
    let view = DocumentView {
        item: &item,
        fields,
        image,
        pages: item.job.inspection.pages.unwrap_or(1),
        csrf: app.session.csrf(),
        previous: neighbour(-1),
        next: neighbour(1),
        filter,
        reason: item.job.reason.as_ref().map(|r| r.message.as_str()),
    };
    Ok(Html(html::document(&view)).into_response())
}

/// A PDF page as PNG, rendered by `pdftoppm` from the upload.
async fn page_image(State(app): State<Shared>, Path((id, n)): Path<(String, u32)>) -> Response {
    match render_page(&app, &id, n).await {
        Ok(png) => ([(header::CONTENT_TYPE, "image/png")], Body::from(png)).into_response(),
        Err(e) => failure(&e),
    }
}

async fn render_page(app: &App, id: &str, n: u32) -> Result<Vec<u8>, CliError> {
    let job = crate::commands::job(&app.target, id).await?;
    if job.inspection.file_type != Some(FileType::Pdf) || n == 0 || n > MAX_PAGES {
        return Err(CliError::Usage(format!("job {id} has no PDF page {n}")));
    }
    let bytes = review::object_bytes(&app.target, &ObjectRef::from(&job.source)).await?;
    let dir = std::env::temp_dir().join(format!("ocrbridge-review-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).map_err(|e| CliError::Usage(e.to_string()))?;
    let pdf = dir.join("document.pdf");
    let rendered = async {
        tokio::fs::write(&pdf, &bytes).await?;
        let page = n.to_string();
        let status = tokio::process::Command::new("pdftoppm")
            .args(["-png", "-r", "100", "-singlefile", "-f", &page, "-l", &page])
            .arg(&pdf)
            .arg(dir.join("page"))
            .status()
            .await?;
        if !status.success() {
            return Err(std::io::Error::other(format!(
                "pdftoppm exited with {status}"
            )));
        }
        tokio::fs::read(dir.join("page.png")).await
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    rendered.map_err(|e| CliError::Usage(format!("page {n} of {id} could not be rendered: {e}")))
}

async fn decide(
    State(app): State<Shared>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    body: String,
) -> Response {
    let form: Vec<(String, String)> = serde_urlencoded::from_str(&body).unwrap_or_default();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if let Err(denied) = app.session.check_csrf(field("csrf")) {
        return refusal(denied.status(), &denied.to_string());
    }
    let filter = filter_from(query.as_deref());
    match apply(&app, &id, &form, &filter).await {
        Ok(to) => Redirect::to(&to).into_response(),
        Err(e) => failure(&e),
    }
}

/// Records the decision the form carries and says where the reviewer goes next: the next
/// document of the queue, or the queue.
async fn apply(
    app: &App,
    id: &str,
    form: &[(String, String)],
    filter: &Filter,
) -> Result<String, CliError> {
    let item = Item::new(
        crate::commands::job(&app.target, id).await?,
        UnixMillis::now().0,
    );
    let action = form
        .iter()
        .find(|(k, _)| k == "action")
        .map_or("approve", |(_, v)| v.as_str());
    let decision = match action {
        "reject" => Decision::Reject {
            reason: form
                .iter()
                .find(|(k, _)| k == "reason")
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default(),
        },
        "approve" => {
            let shown = field_views(app, &item).await?;
            let corrections = form
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix("field.")?, v.trim())))
                .filter(|(name, value)| {
                    shown
                        .iter()
                        .find(|f| f.name == *name)
                        .is_some_and(|f| f.value != *value)
                })
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect();
            Decision::from_corrections(corrections)
        }
        other => return Err(CliError::Usage(format!("no action {other:?}"))),
    };
    let seconds = app
        .opened
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(id)
        .map(|t| t.elapsed().as_secs_f64());
    let reviewer = Reviewer {
        name: &app.reviewer,
        note: None,
        seconds,
    };
    let (written, record) = review::record(&app.target, &item.job, &decision, &reviewer).await?;
    app.opened
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(id);
    if let Err(e) = publish(&app.target, &item, &record).await {
        eprintln!(
            "review console: {} was recorded, but its review metrics were not: {e}",
            written.id
        );
    }
    let next = queue_items(app, filter)
        .await?
        .into_iter()
        .find(|i| i.job.id != written.id);
    Ok(match next {
        Some(i) => format!("/jobs/{}{}", i.job.id, html::filter_query(filter)),
        None => {
            let q = html::filter_query(filter);
            let sep = if q.is_empty() { "?" } else { "&" };
            format!("/{q}{sep}decided={}", written.id)
        }
    })
}

/// `ReviewSeconds[Profile, Rule]` (under the rule that weighed most) and one
/// `ReviewCorrections[Profile, Field]` per corrected field, put into CloudWatch in the stack's
/// namespace (a console has no Lambda log to carry EMF); both also by the language and
/// handwriting parse recorded on the job (jobs parsed before it have none: their own set only).
pub async fn publish(target: &Target, item: &Item, record: &Value) -> Result<usize, String> {
    let namespace = target
        .env
        .get("METRICS_NAMESPACE")
        .ok_or("the stack's environment names no METRICS_NAMESPACE")?;
    let metrics = Metrics::memory("review").in_namespace(namespace.clone());
    let profile = item.job.profile.as_str();
    let job_id = item.job.id.as_str();
    let text = item.job.text.as_ref().map(|t| t.dimensions());
    let segments: &[&str] = text.as_ref().map_or(&[], |t| t.as_slice());
    if let Some(seconds) = record.get("seconds").and_then(Value::as_f64) {
        metrics.emit_segmented(
            REVIEW_SECONDS,
            seconds,
            &[profile, item.primary_rule()],
            segments,
            &[("job_id", job_id)],
        );
    }
    for field in record
        .get("corrections")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|c| c.keys())
    {
        metrics.count_segmented(
            REVIEW_CORRECTIONS,
            &[profile, field],
            segments,
            &[("job_id", job_id)],
        );
    }
    let records = metrics.take_records();
    if records.is_empty() {
        return Ok(0);
    }
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&target.clients.sdk_config);
    ocrbridge_local::emf::publish(&cloudwatch, &records, Duration::ZERO).await
}
