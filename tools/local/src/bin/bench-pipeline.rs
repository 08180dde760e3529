//! The happy path, measured: real receipts through the real function binaries under the Runtime
//! Interface Emulator, with moto's request recorder on.
//!
//! ```text
//! bench-pipeline [--docs N] [--interval-ms MS] [--binaries DIR] [--corpus DIR]
//!                [--vendor sim|textract] [--textract-sync on|off] [--tag-source-objects on|off]
//!                [--long-poll on|off]
//!     (moto must be running; scripts/bench-pipeline.sh starts its own)
//! ```
//! `--vendor textract` runs against the simulator's Textract twin (receipts through
//! AnalyzeExpense); `--textract-sync on` reads them in the call (`TEXTRACT_SYNCHRONOUS`), `off`
//! starts a job, waits for its SNS notification and `Get*`s the result
//! (`scripts/bench-textract-sync.sh` runs both and compares). `--tag-source-objects` sets the
//! template's `TagSourceObjects` (default off): on adds intake's tags on the upload. The
//! benchmark knows each upload's job id from its bytes, as intake derives it, not from the tags.
//! The event sources long-poll, as Lambda's do, unless `--long-poll off`.
//! Reports, for documents that all end Completed or NeedsReview:
//! - the AWS requests the pipeline made per document, by caller, service and operation. Every
//!   function binary tags its requests with `AWS_SDK_UA_APP_ID=<function>`; the emulated event
//!   sources, the uploader and this benchmark's own observation use their own app ids, and the
//!   vendor's presigned GETs carry no SDK user agent at all. This benchmark's observation reads
//!   are left out of the totals;
//! - the pipeline's overhead: upload to stored result minus the simulator's own time for the job
//!   (document fetch, queue, OCR), p50 and p95;
//! - the vendor's calls per document, from the simulator's own counters (the Textract twin's
//!   calls are not AWS requests moto sees: submissions, status and result reads apart).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_config::AppName;
use aws_sdk_s3::primitives::ByteStream;
use ocrbridge::aws::{local_sdk_config, AwsClients};
use ocrbridge::job::{ContentHash, DocumentKey, JobId, JobState, Profile};
use ocrbridge::ledger::Ledger;
use ocrbridge::time::UnixMillis;
use ocrbridge::vendors::select::VendorKind;
use ocrbridge_local::bench::{fresh_stack_with, Flags, BILLABLE_REQUESTS, OVERHEAD_P95_MS};
use ocrbridge_local::pipeline::{Binaries, EventSourceCounters, Pipeline, PipelineOptions};
use ocrbridge_local::provision::LocalStack;
use ocrbridge_local::{moto, template_path};
use serde_json::Value;
use vendor_sim::engine::EngineKind;

/// The bench's own callers, as their User-Agent app ids.
const OBSERVER: &str = "bench-observer";
const UPLOADER: &str = "uploader";
const EVENT_SOURCE: &str = "event-source";

fn clients(endpoint: &str, app: &str) -> Result<AwsClients, String> {
    let config = local_sdk_config(endpoint)
        .into_builder()
        .app_name(AppName::new(app.to_owned()).map_err(|e| e.to_string())?)
        .build();
    Ok(AwsClients::from_sdk_config(&config))
}

/// One recorded request: who made it, and which operation of which service it was.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Call {
    caller: String,
    service: String,
    operation: String,
}

fn header<'a>(headers: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

/// Classifies one line of moto's recording. JSON-protocol services name the operation in
/// `X-Amz-Target`; S3 is REST, and the Rust SDK names it in the `x-id` query parameter.
fn classify(entry: &Value) -> Option<Call> {
    let headers = entry.get("headers")?.as_object()?;
    let agent = header(headers, "x-amz-user-agent")
        .or_else(|| header(headers, "user-agent"))
        .unwrap_or_default();
    let caller = agent
        .split_whitespace()
        .find_map(|part| part.strip_prefix("app/"))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            if agent.contains("aws-sdk") {
                "unnamed sdk client".into()
            } else {
                "vendor (presigned URL)".into()
            }
        });
    if let Some(target) = header(headers, "x-amz-target") {
        let (prefix, operation) = target.split_once('.')?;
        let service = match prefix {
            p if p.starts_with("DynamoDB") => "dynamodb",
            p if p.starts_with("AmazonSQS") => "sqs",
            p if p.eq_ignore_ascii_case("secretsmanager") => "secretsmanager",
            other => other,
        };
        return Some(Call {
            caller,
            service: service.into(),
            operation: operation.into(),
        });
    }
    let url = entry.get("url")?.as_str()?;
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let method = entry.get("method")?.as_str()?;
    let operation = query
        .split('&')
        .find_map(|p| p.strip_prefix("x-id="))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let has = |name: &str| query.split('&').any(|p| p.split('=').next() == Some(name));
            match method {
                "GET" if has("tagging") => "GetObjectTagging".into(),
                "PUT" if has("tagging") => "PutObjectTagging".into(),
                "HEAD" => "HeadObject".into(),
                "GET" => "GetObject".into(),
                "PUT" => "PutObject".into(),
                other => format!("{other} (unclassified)"),
            }
        });
    Some(Call {
        caller,
        service: "s3".into(),
        operation,
    })
}

/// What a document costs in AWS at list prices (`ocrbridge_local::aws_prices`): the requests
/// counted above, the functions' invocations and their billed GB-seconds (the emulator's
/// `Billed Duration` × the template's `MemorySize`). The vendor's own price is not in it.
fn print_cost_per_document(
    calls: &BTreeMap<Call, u64>,
    event_sources: &EventSourceCounters,
    presigned_fetches: u64,
    binaries: Option<&Binaries>,
    stack: &LocalStack,
    n: f64,
) {
    use ocrbridge::cost::{lambda_gb_second, Decimal};
    use ocrbridge_local::aws_prices::{lambda_invocation_usd, request_usd};
    let mut by_service: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut unpriced: BTreeMap<String, u64> = BTreeMap::new();
    let mut charge =
        |service: &str, operation: &str, count: u64| match request_usd(service, operation) {
            Some(usd) => {
                *by_service.entry(service.to_owned()).or_default() += usd * Decimal::from(count)
            }
            None => {
                *unpriced
                    .entry(format!("{service} {operation}"))
                    .or_default() += count
            }
        };
    for (call, count) in calls {
        if [OBSERVER, UPLOADER, EVENT_SOURCE].contains(&call.caller.as_str())
            || call.caller == "vendor (presigned URL)"
        {
            continue;
        }
        charge(&call.service, &call.operation, *count);
    }
    // The event sources' receives that returned messages and their deletes (empty polls are a
    // fixed cost per poller, not per document).
    charge(
        "sqs",
        "ReceiveMessage",
        EventSourceCounters::get(&event_sources.receives_with_messages)
            + EventSourceCounters::get(&event_sources.delete_batches),
    );
    charge("s3", "GetObject", presigned_fetches);
    let mut lambda = Decimal::ZERO;
    let mut compute = Vec::new();
    for function in binaries.map(|b| b.all()).into_iter().flatten() {
        let billed = function.billed_durations();
        let logical = format!(
            "{}{}Function",
            function.name[..1].to_uppercase(),
            &function.name[1..]
        );
        let memory_mb = stack.memory_mb(&logical).unwrap_or(128);
        let ms: f64 = billed.iter().sum();
        let gb_seconds =
            Decimal::from_f64_retain(ms * memory_mb as f64 / 1_024_000.0).unwrap_or_default();
        let usd = gb_seconds * lambda_gb_second(std::env::consts::ARCH)
            + lambda_invocation_usd() * Decimal::from(billed.len());
        lambda += usd;
        compute.push(format!(
            "{} {} × {:.0} ms × {memory_mb} MB",
            function.name,
            billed.len(),
            if billed.is_empty() {
                0.0
            } else {
                ms / billed.len() as f64
            }
        ));
    }
    by_service.insert("lambda".to_owned(), lambda);
    let total: Decimal = by_service.values().copied().sum();
    let per_doc = |usd: Decimal| usd / Decimal::from_f64_retain(n).unwrap_or(Decimal::ONE);
    println!(
        "  AWS cost per document         ${:.8}  at list prices (us-east-1, {}), excl. the vendor and the upload",
        per_doc(total),
        ocrbridge::cost::LIST_PRICES_AS_OF
    );
    for (service, usd) in &by_service {
        println!("    {service:<14} ${:.8}", per_doc(*usd));
    }
    println!("    (DynamoDB at one request unit a request: a floor, as an item past 1 KB takes more write units; Lambda: {})", compute.join(", "));
    if !unpriced.is_empty() {
        let list: Vec<String> = unpriced
            .iter()
            .map(|(op, k)| format!("{op} ×{k}"))
            .collect();
        println!("    unpriced: {}", list.join(", "));
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let flags = Flags::from_env();
    let root = template_path().with_file_name("");
    let docs: usize = flags.parse("--docs", 20);
    let interval = Duration::from_millis(flags.parse("--interval-ms", 1000));
    let binaries = flags
        .get("--binaries")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/debug"));
    let corpus = flags
        .get("--corpus")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/corpus/sroie-dev"));

    let mut files: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .map_err(|e| format!("{}: {e}", corpus.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    files.sort();
    files.truncate(docs);
    if files.is_empty() {
        return Err(format!("no .jpg receipts under {}", corpus.display()));
    }

    let vendor: VendorKind = flags
        .get("--vendor")
        .unwrap_or_else(|| "sim".into())
        .parse()
        .map_err(|e| format!("--vendor: {e}"))?;
    let sync = flags.get("--textract-sync").unwrap_or_else(|| "off".into());
    // The template's default unless told: `off` measures the upload's tags left out.
    let tagging = flags.get("--tag-source-objects");
    // Lambda's event sources long-poll; `off` measures the local runner's sleeping pollers.
    let long_poll = match flags.get("--long-poll").as_deref() {
        None | Some("on") => true,
        Some("off") => false,
        Some(other) => return Err(format!("--long-poll is on or off, not {other:?}")),
    };
    if !["on", "off"].contains(&sync.as_str()) {
        return Err(format!("--textract-sync is on or off, not {sync:?}"));
    }
    let endpoint = moto::endpoint_from_env();
    let observer = clients(&endpoint, OBSERVER)?;
    let uploader = clients(&endpoint, UPLOADER)?;
    let stack = fresh_stack_with(
        &observer,
        &endpoint,
        "bench-pipeline",
        &[
            ("VendorName", vendor.as_str()),
            ("TextractSynchronous", sync.as_str()),
        ]
        .into_iter()
        .chain(tagging.as_deref().map(|t| ("TagSourceObjects", t)))
        .collect::<Vec<_>>(),
    )
    .await?;
    println!(
        "vendor: {vendor}{}",
        if vendor == VendorKind::Textract {
            format!(" (TEXTRACT_SYNCHRONOUS={sync})")
        } else {
            String::new()
        }
    );
    let options = PipelineOptions {
        vendor,
        engine: EngineKind::Tesseract,
        // The happy path: no schedule-driven work inside the measurement.
        reconcile_every: Duration::from_secs(3600),
        submitted_stale: Duration::from_secs(3600),
        binaries: Some(binaries),
        long_poll,
        // Intake's own variable: the binaries get the template's global environment only.
        environment: tagging
            .iter()
            .map(|t| ("TAG_SOURCE_OBJECTS".to_owned(), t.clone()))
            .collect(),
        ..PipelineOptions::default()
    };
    let p = Pipeline::start_at(
        clients(&endpoint, EVENT_SOURCE)?,
        &stack,
        options,
        &endpoint,
    )
    .await?;
    let bucket = p.config.documents_bucket.clone();
    let ledger = Ledger::new(observer.dynamodb.clone(), p.config.ledger_tables());

    ocrbridge_local::moto::recorder(&endpoint, "reset-recording").await?;
    ocrbridge_local::moto::recorder(&endpoint, "start-recording").await?;
    let started = Instant::now();
    // The event sources poll continuously and independently, as Lambda's do, while documents
    // arrive one every `interval` (a steady load, not a burst that only measures queueing
    // behind the emulator's one instance per function); the observer looks every half second.
    let done = AtomicBool::new(false);
    let pump = p.run_until(&done);
    let receipt = Profile::new("receipt").map_err(|e| e.to_string())?;
    let upload = async {
        let mut uploaded: Vec<(String, UnixMillis, JobId)> = Vec::new();
        for file in &files {
            let name = file
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("receipt.jpg");
            let key = format!("receipts/{name}");
            let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
            let body = ByteStream::from(bytes.clone());
            uploader
                .s3
                .put_object()
                .bucket(&bucket)
                .key(&key)
                .content_type("image/jpeg")
                .body(body)
                .send()
                .await
                .map_err(|e| aws_sdk_s3::error::DisplayErrorContext(e).to_string())?;
            // The job's id, as intake makes it (the receipts/ folder is the receipt profile):
            // known without reading the upload's tags, which may be off.
            let id = DocumentKey::new(&ContentHash::of(&bytes), &receipt).job_id();
            uploaded.push((key, UnixMillis::now(), id));
            tokio::time::sleep(interval).await;
        }
        Ok::<_, String>(uploaded)
    };
    let observe = async {
        let uploaded = match upload.await {
            Ok(uploaded) => uploaded,
            Err(e) => {
                done.store(true, Ordering::Relaxed);
                return Err(e);
            }
        };
        let mut settled = BTreeMap::new();
        while settled.len() < uploaded.len() && started.elapsed() < Duration::from_secs(600) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            for (key, _, id) in &uploaded {
                if settled.contains_key(key) {
                    continue;
                }
                if let Ok(Some(job)) = ledger.get_job(id).await {
                    if job.state.is_terminal() || job.state == JobState::NeedsReview {
                        settled.insert(key.clone(), job);
                    }
                }
            }
        }
        done.store(true, Ordering::Relaxed);
        Ok((uploaded, settled))
    };
    let ((), observed) = tokio::join!(pump, observe);
    let (uploaded, settled) = observed?;
    ocrbridge_local::moto::recorder(&endpoint, "stop-recording").await?;
    let wall = started.elapsed();
    let recording = ocrbridge_local::moto::recorder(&endpoint, "download-recording").await?;

    // Requests by caller, service and operation; the observer's are not the pipeline's.
    let mut calls: BTreeMap<Call, u64> = BTreeMap::new();
    let mut unreadable = 0;
    for line in recording.lines().filter(|l| !l.trim().is_empty()) {
        // moto appends from its request threads; a line two of them interleaved is unreadable.
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            unreadable += 1;
            continue;
        };
        if let Some(call) = classify(&entry) {
            *calls.entry(call).or_default() += 1;
        }
    }
    let n = uploaded.len() as f64;
    println!(
        "documents: {} uploaded, {} settled in {:.1} s",
        uploaded.len(),
        settled.len(),
        wall.as_secs_f64()
    );
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    for job in settled.values() {
        *states.entry(job.state.to_string()).or_default() += 1;
    }
    println!("final states: {states:?}");
    if unreadable > 0 {
        println!("recorder lines unreadable (interleaved writes; not counted): {unreadable}");
    }
    println!();
    println!(
        "{:<24} {:<15} {:<26} {:>7} {:>8}",
        "caller", "service", "operation", "total", "per doc"
    );
    let mut by_caller: BTreeMap<String, u64> = BTreeMap::new();
    for (call, count) in &calls {
        if call.caller == OBSERVER {
            continue;
        }
        println!(
            "{:<24} {:<15} {:<26} {:>7} {:>8.2}",
            call.caller,
            call.service,
            call.operation,
            count,
            *count as f64 / n
        );
        *by_caller.entry(call.caller.clone()).or_default() += count;
    }
    println!();
    let functions: u64 = by_caller
        .iter()
        .filter(|(c, _)| {
            ["intake", "submit", "webhook", "parse", "reconcile"].contains(&c.as_str())
        })
        .map(|(_, n)| n)
        .sum();
    let once_per_container: u64 = calls
        .iter()
        .filter(|(c, _)| c.service == "secretsmanager" && c.caller != OBSERVER)
        .map(|(_, n)| n)
        .sum();
    let es = &p.event_sources;
    let es_docs = EventSourceCounters::get(&es.receives_with_messages)
        + EventSourceCounters::get(&es.delete_batches);
    let fetches = by_caller
        .get("vendor (presigned URL)")
        .copied()
        .unwrap_or(0);
    println!("per document (happy path):");
    println!(
        "  functions' own requests      {:>6.2}  ({functions} in all; {once_per_container} of them secret reads, once per container)",
        functions as f64 / n
    );
    println!(
        "  functions' without secrets   {:>6.2}",
        (functions - once_per_container) as f64 / n
    );
    println!(
        "  event sources, with messages {:>6.2}  ({} receives returning messages + {} DeleteMessageBatch; {} empty polls are the pollers' fixed cost)",
        es_docs as f64 / n,
        EventSourceCounters::get(&es.receives_with_messages),
        EventSourceCounters::get(&es.delete_batches),
        EventSourceCounters::get(&es.empty_receives),
    );
    // Textract reads the document from our bucket and publishes its notification to our
    // topic: requests billed to the account like the functions' own.
    let twin = by_caller.get("vendor-twin").copied().unwrap_or(0);
    println!("  vendor's presigned GETs      {:>6.2}", fetches as f64 / n);
    println!(
        "  vendor's own AWS requests    {:>6.2}  (S3 reads, SNS publishes)",
        twin as f64 / n
    );
    println!(
        "  total billable, excl. upload {:>6.2}",
        (functions + es_docs + fetches + twin) as f64 / n
    );
    print_cost_per_document(&calls, es, fetches, p.binaries.as_ref(), &stack, n);
    let sim = p.sim.sim.stats();
    println!(
        "  vendor calls                 {:>6.2}  ({} in all: {} submissions, {} status and result reads)",
        sim.requests as f64 / n,
        sim.requests,
        sim.submit_requests,
        sim.status_requests
    );
    println!();

    // Overhead: upload → result stored (the Completed/NeedsReview transition, which follows the
    // result's PutObject), minus the vendor's own time for the job.
    let mut end_to_end = Vec::new();
    let mut vendor_ms = Vec::new();
    let mut overhead = Vec::new();
    for (key, at, _) in &uploaded {
        let Some(job) = settled.get(key) else {
            continue;
        };
        if !matches!(job.state, JobState::Completed | JobState::NeedsReview) {
            continue;
        }
        // The simulator's job: the whole id, or its last part (Textract's `api:JobId`, an
        // answer's `answered:<attempt>:<request>`, whose request id is the twin's job).
        let Some(processing) = job
            .vendor_job_id
            .as_deref()
            .map(|id| id.rsplit(':').next().unwrap_or(id))
            .and_then(|id| p.sim.sim.job(id))
            .and_then(|j| j.processing_ms)
        else {
            continue;
        };
        let total = job.state_since.0.saturating_sub(at.0) as f64;
        end_to_end.push(total);
        vendor_ms.push(processing as f64);
        overhead.push(total - processing as f64);
    }
    for v in [&mut end_to_end, &mut vendor_ms, &mut overhead] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "latency over {} results (ms)     p50      p95      max",
        overhead.len()
    );
    for (name, v) in [
        ("upload → result stored", &end_to_end),
        ("simulator's own time", &vendor_ms),
        ("pipeline overhead", &overhead),
    ] {
        println!(
            "  {name:<28} {:>7.0}  {:>7.0}  {:>7.0}",
            percentile(v, 50.0),
            percentile(v, 95.0),
            v.last().copied().unwrap_or(f64::NAN)
        );
    }
    println!();
    println!(
        "{}",
        BILLABLE_REQUESTS.line(
            "billable AWS requests per document",
            (functions + es_docs + fetches + twin) as f64 / n,
            ""
        )
    );
    println!(
        "{}",
        OVERHEAD_P95_MS.line("pipeline overhead, p95", percentile(&overhead, 95.0), "ms")
    );
    if settled.len() < uploaded.len() {
        return Err(format!(
            "{} of {} documents did not settle",
            uploaded.len() - settled.len(),
            uploaded.len()
        ));
    }
    Ok(())
}
