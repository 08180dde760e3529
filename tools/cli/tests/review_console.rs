//! The review console in a real browser: Chromium, driven over WebDriver (`chromedriver`, from
//! Debian's chromium-driver), against `ocrbridge review serve` on the local stack with the
//! pipeline running. A reviewer opens the queue (riskiest first), opens the receipt whose total
//! disagrees with its lines, sees the total flagged, corrects it from the keyboard and approves;
//! the job is Completed with the correction, the reviewer and the time, and `ReviewSeconds` and
//! `ReviewCorrections` reached CloudWatch, and `ocrbridge cost` prices the time. Without the token
//! the console answers 401, and a form posted from another site 403. Then the queue narrowed to one
//! rule, and the other document rejected from the keyboard with a reason.

mod support;

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::types::DimensionFilter;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use ocrbridge::job::{Job, JobId, JobState};
use ocrbridge_local::pipeline::{Pipeline, PipelineOptions};
use ocrbridge_tests::{job_id_for, stack, text_pdf, TestStack};
use serde_json::{json, Value};
use support::env_file;
use tokio::io::{AsyncBufReadExt, BufReader};
use vendor_sim::engine::EngineKind;

fn receipt(shop: &str, date: &str, total: &str) -> Vec<u8> {
    text_pdf(&[
        shop,
        &format!("Date: {date}"),
        "Subtotal: 15.60",
        "Tax: 0.94",
        &format!("Total: {total}"),
    ])
}

async fn until_state(s: &TestStack, id: &JobId, state: JobState) -> Job {
    let started = Instant::now();
    loop {
        let job = s.ledger.get_job(id).await.unwrap();
        if let Some(job) = job.as_ref().filter(|j| j.state == state) {
            return job.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{id} never became {state}: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A PDF's first page as a 150-dpi PNG (`pdftoppm`, from poppler-utils, as setup installs).
fn png(pdf: &[u8]) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("review-console-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("in.pdf"), pdf).unwrap();
    let status = std::process::Command::new("pdftoppm")
        .args(["-png", "-r", "150", "-singlefile"])
        .arg(dir.join("in.pdf"))
        .arg(dir.join("page"))
        .status()
        .expect("pdftoppm is installed (scripts/setup.sh installs poppler-utils)");
    assert!(status.success());
    let png = std::fs::read(dir.join("page.png")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    png
}

/// The width of the page image the browser loaded, once it has (0: it could not).
async fn page_width(browser: &Client) -> i64 {
    let started = Instant::now();
    loop {
        let width = browser
            .execute(
                "const i=document.getElementById('page-1');return i&&i.complete?i.naturalWidth:-1;",
                vec![],
            )
            .await
            .unwrap()
            .as_i64()
            .unwrap_or(0);
        if width >= 0 || started.elapsed() > Duration::from_secs(10) {
            return width;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// chromedriver on a free port, and a headless Chromium session through it.
async fn browser() -> (tokio::process::Child, Client) {
    let port = free_port();
    let driver = tokio::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver is installed (scripts/setup.sh installs Debian's chromium-driver)");
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000"]}),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let started = Instant::now();
    loop {
        match ClientBuilder::new(connector.clone())
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => return (driver, client),
            Err(e) => {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "no WebDriver session: {e}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// Starts `ocrbridge review serve` and returns it with the URL it printed.
async fn console(env: &std::path::Path) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ocrbridge"))
        .arg("--env-file")
        .arg(env)
        .args(["review", "serve", "--port", "0", "--by", "ana"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the console prints its URL")
        .unwrap()
        .unwrap();
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no URL in {first:?}"))
        .to_owned();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

/// Waits until the browser shows the job's page.
async fn until_at(browser: &Client, id: &JobId, what: &str) {
    let started = Instant::now();
    loop {
        let url = browser.current_url().await.unwrap();
        if url.path().ends_with(id.as_str()) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{what}: {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn press(browser: &Client, keys: &str) {
    browser
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .send_keys(keys)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_corrects_a_flagged_total_in_the_browser_and_the_job_completes_with_it() {
    let s = stack().await;
    let pipeline = Pipeline::start(
        s.clients.clone(),
        &s.stack,
        PipelineOptions {
            engine: EngineKind::Tesseract,
            ..PipelineOptions::default()
        },
    )
    .await
    .unwrap();
    let stop = AtomicBool::new(false);
    let script = async {
        // A receipt dated years ahead (its money adds up), then one whose total disagrees with its
        // lines: the second is riskier although it has waited less.
        // The first is a scan (a PNG, shown through a presigned URL), the second a PDF (its
        // page rendered by the console).
        let future = png(&receipt("FUTURE SHOP", "14/11/2031", "16.54"));
        s.put("receipts/future.png", future.clone(), None).await;
        let future_id = job_id_for(&future, "receipt");
        until_state(&s, &future_id, JobState::NeedsReview).await;
        let wrong = receipt("WRONG SHOP", "14/11/2026", "19.90");
        s.put("receipts/wrong.pdf", wrong.clone(), None).await;
        let wrong_id = job_id_for(&wrong, "receipt");
        until_state(&s, &wrong_id, JobState::NeedsReview).await;

        let env = env_file(&s);
        let (_console, url) = console(&env).await;
        let origin = url.split("/?").next().unwrap().to_owned();

        // Without the token: 401, whatever the path.
        let http = reqwest::Client::new();
        for path in ["/", &format!("/jobs/{wrong_id}")] {
            let status = http
                .get(format!("{origin}{path}"))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 401, "{path} without the token");
        }
        // With the session but without the form's CSRF token: 403, and nothing moves.
        let token = url.split("token=").nth(1).unwrap();
        let forged = http
            .post(format!("{origin}/jobs/{wrong_id}/decide"))
            .header("cookie", format!("ocrbridge_review={token}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("action=approve")
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 403);

        let (_driver, browser) = browser().await;
        // The queue, riskiest first.
        browser.goto(&url).await.unwrap();
        let here = browser.current_url().await.unwrap();
        assert!(
            here.query().is_none_or(|q| !q.contains("token")),
            "the token leaves the address bar once it is a cookie: {here}"
        );
        let rows = browser
            .find_all(Locator::Css("#queue tbody tr"))
            .await
            .unwrap();
        let mut order = Vec::new();
        let mut risks = Vec::new();
        for row in &rows {
            order.push(row.attr("data-job").await.unwrap().unwrap());
            let risk = row
                .find(Locator::Css("td.risk"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            risks.push(risk.parse::<u32>().unwrap());
        }
        assert_eq!(
            order,
            [wrong_id.to_string(), future_id.to_string()],
            "the receipt whose money does not add up comes first (risks {risks:?})"
        );
        assert!(risks[0] > risks[1], "{risks:?}");

        // Enter opens the selected (first) document.
        press(&browser, &char::from(Key::Enter).to_string()).await;
        until_at(&browser, &wrong_id, "Enter opened nothing").await;
        // The total is flagged, by the rule that caught it, and the page is shown.
        let total_row = browser
            .find(Locator::Css("tr[data-field=total]"))
            .await
            .unwrap();
        assert_eq!(
            total_row.attr("class").await.unwrap().as_deref(),
            Some("flagged")
        );
        assert!(
            total_row.text().await.unwrap().contains("total_mismatch"),
            "{}",
            total_row.text().await.unwrap()
        );
        let input = browser.find(Locator::Css("#f-total")).await.unwrap();
        assert_eq!(input.prop("value").await.unwrap().as_deref(), Some("19.90"));
        let width = page_width(&browser).await;
        assert!(width > 100, "the PDF's page, rendered: {width}");
        if let Ok(png) = browser.screenshot().await {
            let _ = std::fs::write(
                std::env::temp_dir().join("ocrbridge-review-console.png"),
                png,
            );
        }

        // `n` jumps to the flagged fields, in order, until the total has the focus.
        let mut focused = String::new();
        for _ in 0..6 {
            press(&browser, "n").await;
            focused = browser
                .active_element()
                .await
                .unwrap()
                .attr("id")
                .await
                .unwrap()
                .unwrap_or_default();
            if focused == "f-total" {
                break;
            }
        }
        assert_eq!(focused, "f-total", "n never reached the flagged total");
        // Typing replaces the selected value; Enter approves with the correction.
        let active = browser.active_element().await.unwrap();
        active
            .send_keys(&format!("16.54{}", char::from(Key::Enter)))
            .await
            .unwrap();

        let done = until_state(&s, &wrong_id, JobState::Completed).await;
        let review: Value = serde_json::from_str(done.review.as_deref().unwrap()).unwrap();
        assert_eq!(review["decision"], "corrected", "{review}");
        assert_eq!(review["by"], "ana");
        assert_eq!(
            review["corrections"]["total"]["vendor"], "19.90",
            "{review}"
        );
        assert_eq!(review["corrections"]["total"]["corrected"], "16.54");
        assert_eq!(
            review["corrections"].as_object().unwrap().len(),
            1,
            "only the field that changed is a correction: {review}"
        );
        let seconds = review["seconds"]
            .as_f64()
            .expect("the review time is recorded");
        assert!(seconds > 0.0, "{review}");
        assert!(review["at_ms"].as_u64().unwrap() >= done.created_at.0);
        // The browser went on to the next document in the queue.
        until_at(
            &browser,
            &future_id,
            "after the decision the next document opens",
        )
        .await;
        let src = browser
            .find(Locator::Id("page-1"))
            .await
            .unwrap()
            .attr("src")
            .await
            .unwrap()
            .unwrap_or_default();
        assert!(
            src.contains("X-Amz-Signature") && src.contains("receipts/future.png"),
            "the scan comes through a presigned URL: {src}"
        );
        let width = page_width(&browser).await;
        assert!(width > 100, "the scan, loaded from S3: {width}");

        // The review metrics reached CloudWatch, in the stack's namespace.
        let namespace = s.stack.function_environment().unwrap()["METRICS_NAMESPACE"].clone();
        let cloudwatch = aws_sdk_cloudwatch::Client::new(&s.clients.sdk_config);
        let listed = |name: &'static str, dimension: (&'static str, &'static str)| {
            let cloudwatch = cloudwatch.clone();
            let namespace = namespace.clone();
            async move {
                cloudwatch
                    .list_metrics()
                    .namespace(namespace)
                    .metric_name(name)
                    .dimensions(
                        DimensionFilter::builder()
                            .name(dimension.0)
                            .value(dimension.1)
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap()
                    .metrics()
                    .len()
            }
        };
        assert!(listed("ReviewSeconds", ("Rule", "total_mismatch")).await > 0);
        assert!(listed("ReviewCorrections", ("Field", "total")).await > 0);
        // Also by the segments parse recorded: the simulator marks no handwriting.
        assert!(listed("ReviewCorrections", ("Handwriting", "unknown")).await > 0);
        assert!(listed("ReviewSeconds", ("Handwriting", "unknown")).await > 0);

        // `ocrbridge cost` prices the recorded time at the reviewer's rate, labelled review.
        let cost = support::json(
            &support::ocrbridge(&env, &["--json", "cost", "--reviewer-hourly-rate", "60"]).await,
        );
        assert_eq!(cost["review"]["timed"], 1, "{cost}");
        assert_eq!(cost["review"]["hourly_rate_usd"], "60", "{cost}");
        let usd: f64 = cost["review"]["total_usd"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (usd - seconds * 60.0 / 3600.0).abs() < 0.01,
            "{usd} for {seconds} s at 60/h: {cost}"
        );

        // A form posted to the console from another site is refused, and the job stays in review.
        let attacker = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let attacker_port = attacker.local_addr().unwrap().port();
        let page = format!(
            "<form id=f method=post action=\"{origin}/jobs/{future_id}/decide\"><input name=action value=approve></form><script>document.getElementById('f').submit()</script>"
        );
        tokio::spawn(async move {
            let app = axum::Router::new().route(
                "/",
                axum::routing::get(move || {
                    let page = page.clone();
                    async move { axum::response::Html(page) }
                }),
            );
            axum::serve(attacker, app).await.unwrap();
        });
        // `localhost` is another site than `127.0.0.1`.
        browser
            .goto(&format!("http://localhost:{attacker_port}/"))
            .await
            .unwrap();
        let started = Instant::now();
        loop {
            let body = browser.source().await.unwrap();
            if body.contains("403") {
                assert!(body.contains("another site"), "{body}");
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no refusal: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            s.ledger.get_job(&future_id).await.unwrap().unwrap().state,
            JobState::NeedsReview,
            "the forged approval changed nothing"
        );
        // The queue narrowed to one rule, and a rejection from the keyboard: `r`, the reason,
        // Enter. The job fails with the reviewer's reason; nothing is left to review.
        browser
            .goto(&format!("{origin}/?rule=date_in_future"))
            .await
            .unwrap();
        let rows = browser
            .find_all(Locator::Css("#queue tbody tr"))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0].attr("data-job").await.unwrap().as_deref(),
            Some(future_id.as_str())
        );
        browser
            .goto(&format!("{origin}/?rule=total_mismatch"))
            .await
            .unwrap();
        assert!(browser
            .find_all(Locator::Css("#queue tbody tr"))
            .await
            .unwrap()
            .is_empty());
        browser
            .goto(&format!("{origin}/jobs/{future_id}"))
            .await
            .unwrap();
        press(&browser, "r").await;
        browser
            .active_element()
            .await
            .unwrap()
            .send_keys(&format!(
                "dated 2031: not a real receipt{}",
                char::from(Key::Enter)
            ))
            .await
            .unwrap();
        let rejected = until_state(&s, &future_id, JobState::Failed).await;
        let reason = rejected.reason.unwrap();
        assert_eq!(reason.code, "rejected_in_review");
        assert!(
            reason.message.contains("ana") && reason.message.contains("not a real receipt"),
            "{}",
            reason.message
        );
        let review: Value = serde_json::from_str(rejected.review.as_deref().unwrap()).unwrap();
        assert_eq!(review["decision"], "rejected", "{review}");
        let started = Instant::now();
        while browser.find(Locator::Id("empty")).await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the queue is empty after the last decision"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        browser.close().await.unwrap();
        stop.store(true, Ordering::Relaxed);
    };
    tokio::join!(pipeline.run_until(&stop), script);
}
