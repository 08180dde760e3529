//! Test support: a freshly provisioned local stack per test, on the shared moto server.
//!
//! moto must be running (`make test` starts it). If it is not, tests fail with the reason; they
//! never skip, because a skipped integration test proves nothing.

use std::time::Duration;

use ocrbridge::aws::{local_sdk_config, AwsClients};
use ocrbridge::config::StackConfig;
use ocrbridge::keyring::{Keyring, Stage};
use ocrbridge::ledger::Ledger;
use ocrbridge::vendors::sim::{http_client, HttpTimeouts, SimVendor};
use ocrbridge_local::provision::{provision, LocalStack, ProvisionOptions};
use ocrbridge_local::template::Template;
use ocrbridge_local::{moto, template_path};
use vendor_sim::{RunningSim, SimConfig};

pub struct TestStack {
    pub endpoint: String,
    pub clients: AwsClients,
    pub stack: LocalStack,
    pub config: StackConfig,
    pub ledger: Ledger,
}

/// Provisions the template under a unique stack name, so tests can run in parallel against one
/// moto server without resets.
pub async fn stack() -> TestStack {
    stack_with(&[]).await
}

/// [`stack`] with template parameters set (e.g. `VendorName=textract`).
pub async fn stack_with(parameters: &[(&str, &str)]) -> TestStack {
    stack_from(
        Template::load(&template_path()).expect("template.yaml loads"),
        parameters,
    )
    .await
}

/// A stack deployed for `vendor` (`VendorName`) and the pipeline on that vendor's twin, with
/// the default options otherwise.
pub async fn pipeline_on(
    vendor: ocrbridge::vendors::select::VendorKind,
) -> (TestStack, ocrbridge_local::pipeline::Pipeline) {
    pipeline_with(vendor, &[]).await
}

/// [`pipeline_on`], with template parameters besides `VendorName` (`TextractSynchronous`…).
pub async fn pipeline_with(
    vendor: ocrbridge::vendors::select::VendorKind,
    parameters: &[(&str, &str)],
) -> (TestStack, ocrbridge_local::pipeline::Pipeline) {
    use ocrbridge_local::pipeline::{Pipeline, PipelineOptions};
    let vendor_name = [("VendorName", vendor.as_str())];
    let all: Vec<(&str, &str)> = vendor_name.iter().chain(parameters).copied().collect();
    let s = stack_with(&all).await;
    let p = Pipeline::start(
        s.clients.clone(),
        &s.stack,
        PipelineOptions {
            vendor,
            ..PipelineOptions::default()
        },
    )
    .await
    .expect("the pipeline starts");
    (s, p)
}

/// [`stack_with`], and the template's CloudWatch alarms created too (for the alarm drills).
pub async fn stack_with_alarms(parameters: &[(&str, &str)]) -> TestStack {
    provisioned(
        Template::load(&template_path()).expect("template.yaml loads"),
        parameters,
        true,
    )
    .await
}

/// A stack of another template than `template.yaml` (e.g. one with a setting taken out, to show
/// what it is there for).
pub async fn stack_from(template: Template, parameters: &[(&str, &str)]) -> TestStack {
    provisioned(template, parameters, false).await
}

async fn provisioned(template: Template, parameters: &[(&str, &str)], alarms: bool) -> TestStack {
    let endpoint = moto::endpoint_from_env();
    if let Err(e) = moto::wait_healthy(&endpoint, Duration::from_secs(5)).await {
        panic!("{e}");
    }
    let clients = AwsClients::from_sdk_config(&local_sdk_config(&endpoint));
    let options = ProvisionOptions {
        stack_name: unique_name("t"),
        parameters: parameters
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        alarms,
        // The functions' Lambda configuration goes with the alarms: both are what an operator
        // audits, and neither is needed to run the pipeline.
        functions: alarms,
        ..Default::default()
    };
    let stack = provision(&clients, &template, &options)
        .await
        .expect("the template provisions into moto");
    let config = stack
        .stack_config()
        .expect("the template sets every variable");
    let ledger = Ledger::new(clients.dynamodb.clone(), config.ledger_tables());
    TestStack {
        endpoint,
        clients,
        stack,
        config,
        ledger,
    }
}

/// `prefix-` and 10 random hex characters; lowercase, so it is valid in bucket names.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

/// The vendors' real recordings kept in the repository (`tests/fixtures/vendors/<vendor>/`,
/// each folder's README giving every file's source and licence).
pub fn vendor_recordings() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vendors")
}

/// `../shared` beside the repository (or `OCRBRIDGE_SHARED_DIR`): corpus and fixtures.
pub fn shared_dir() -> std::path::PathBuf {
    let dir = std::env::var("OCRBRIDGE_SHARED_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    assert!(
        dir.join("fixtures").is_dir(),
        "the shared fixtures are not at {} (set OCRBRIDGE_SHARED_DIR)",
        dir.display()
    );
    dir
}

impl TestStack {
    /// A secret's value at `stage` (`AWSCURRENT`, `AWSPENDING`, `AWSPREVIOUS`).
    pub async fn secret(&self, id: &str, stage: &str) -> String {
        self.clients
            .secrets()
            .get_secret_value()
            .secret_id(id)
            .version_stage(stage)
            .send()
            .await
            .expect("GetSecretValue")
            .secret_string()
            .expect("a string secret")
            .to_owned()
    }

    /// Puts a new `AWSCURRENT` value (the old one becomes `AWSPREVIOUS`), as an operator pasting
    /// a key, or a rotation, would.
    pub async fn put_secret(&self, id: &str, value: &str) {
        self.clients
            .secrets()
            .put_secret_value()
            .secret_id(id)
            .secret_string(value)
            .send()
            .await
            .expect("PutSecretValue");
    }

    /// The rotate function's handler on this stack, with `registry` as the vendor, its metrics
    /// in memory.
    pub fn rotate<R>(&self, registry: R) -> rotate::Rotate<R> {
        rotate::Rotate {
            secrets: self.clients.secrets(),
            registry,
            metrics: ocrbridge::metrics::Metrics::memory("rotate"),
            stack: self.config.clone(),
            // moto cannot enable rotation without running a rotation Lambda.
            require_rotation_enabled: false,
        }
    }

    /// The vendor simulator on a free port, accepting the stack's current API key; `config`
    /// sets the rest (its `listen` and `api_keys` are replaced).
    pub async fn start_sim(&self, config: SimConfig) -> RunningSim {
        let api_key = self
            .secret(&self.config.vendor_api_key_secret, "AWSCURRENT")
            .await;
        vendor_sim::start(SimConfig {
            listen: "127.0.0.1:0".parse().expect("an address"),
            api_keys: vec![api_key],
            ..config
        })
        .await
        .expect("the simulator starts")
    }

    /// The simulator adapter, reading the stack's API key through a keyring, as the functions do.
    pub fn sim_vendor(&self, sim: &RunningSim, timeouts: HttpTimeouts) -> SimVendor {
        SimVendor::new(
            http_client(timeouts, Default::default()).expect("an HTTP client"),
            sim.base_url(),
            Keyring::new(
                self.clients.secrets(),
                &self.config.vendor_api_key_secret,
                &[Stage::Current],
                Duration::from_secs(60),
            ),
        )
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>, content_type: Option<&str>) {
        self.clients
            .s3
            .put_object()
            .bucket(&self.config.documents_bucket)
            .key(key)
            .set_content_type(content_type.map(str::to_owned))
            .body(aws_sdk_s3::primitives::ByteStream::from(bytes))
            .send()
            .await
            .expect("PutObject");
    }

    /// The keys in the results bucket under `prefix` (the raw archive, refusal records…).
    pub async fn result_keys(&self, prefix: &str) -> Vec<String> {
        self.clients
            .s3
            .list_objects_v2()
            .bucket(&self.config.results_bucket)
            .prefix(prefix)
            .send()
            .await
            .expect("the results bucket lists")
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect()
    }

    /// One long poll (1 s) of `queue_url`, with attributes; what it receives stays on the queue,
    /// invisible for the queue's visibility timeout, as Lambda's event source leaves a batch it
    /// hands over.
    pub async fn receive(&self, queue_url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        self.clients
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .expect("ReceiveMessage")
            .messages
            .unwrap_or_default()
    }

    /// Every message currently on `queue_url`, with attributes: received until two polls come
    /// back empty, and deleted.
    pub async fn drain(&self, queue_url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        let mut out = Vec::new();
        let mut empty_polls = 0;
        while empty_polls < 2 {
            let got = self.receive(queue_url).await;
            if got.is_empty() {
                empty_polls += 1;
            }
            for m in got {
                self.clients
                    .sqs
                    .delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("DeleteMessage");
                out.push(m);
            }
        }
        out
    }
}

/// Every job in the ledger, paging through the `by-state-shard` index state by state (`page` items a
/// request, so a run with more jobs than a page exercises the continuation).
pub async fn all_jobs(ledger: &Ledger, page: i32) -> Vec<ocrbridge::job::Job> {
    let mut out = Vec::new();
    for state in ocrbridge::job::JobState::ALL {
        let mut start = None;
        loop {
            let (jobs, next) = ledger
                .jobs_in_state_before(state, ocrbridge::time::UnixMillis(u64::MAX), page, start)
                .await
                .expect("the by-state-shard index answers");
            out.extend(jobs);
            match next {
                Some(key) => start = Some(key),
                None => break,
            }
        }
    }
    out
}

/// Whether the state machine can get from `from` to `to` without an operator (no retry edge):
/// a job observed in `from` and later in `to` did not move backwards.
pub fn forward_reachable(from: ocrbridge::job::JobState, to: ocrbridge::job::JobState) -> bool {
    use ocrbridge::job::JobState;
    let mut seen = vec![from];
    let mut frontier = vec![from];
    while let Some(state) = frontier.pop() {
        if state == to {
            return true;
        }
        for next in JobState::ALL {
            if state.can_transition_to(next) && !state.is_retry(next) && !seen.contains(&next) {
                seen.push(next);
                frontier.push(next);
            }
        }
    }
    false
}

/// The simulator's ground truth (`GET /admin/stats`).
pub async fn sim_stats(sim: &RunningSim) -> serde_json::Value {
    reqwest::get(format!("{}/admin/stats", sim.base_url()))
        .await
        .expect("the simulator answers")
        .json()
        .await
        .expect("stats are JSON")
}

/// Every `external_ref` the simulator saw, with the vendor jobs it made for it (ground truth a
/// client cannot read: more than one is a duplicate charge).
pub async fn sim_external_refs(
    sim: &RunningSim,
) -> std::collections::BTreeMap<String, Vec<String>> {
    reqwest::get(format!("{}/admin/external-refs", sim.base_url()))
        .await
        .expect("the simulator answers")
        .json()
        .await
        .expect("a map of references")
}

/// Switches the simulator's faults (`PUT /admin/faults`).
pub async fn set_faults(sim: &RunningSim, faults: serde_json::Value) {
    let response = reqwest::Client::new()
        .put(format!("{}/admin/faults", sim.base_url()))
        .json(&faults)
        .send()
        .await
        .expect("the simulator answers");
    assert!(response.status().is_success(), "{response:?}");
}

/// An SQS Lambda event built from real received messages, as the event source mapping would.
/// The ARN of the queue at `queue_url` (`…/<account>/<name>`), as Lambda names the queue a
/// message came from in its event.
pub fn queue_arn(queue_url: &str) -> String {
    let mut parts = queue_url.trim_end_matches('/').rsplit('/');
    let name = parts.next().unwrap_or_default();
    let account = parts.next().unwrap_or_default();
    format!("arn:aws:sqs:us-east-1:{account}:{name}")
}

pub fn sqs_event(
    messages: &[aws_sdk_sqs::types::Message],
    queue_arn: &str,
) -> aws_lambda_events::event::sqs::SqsEvent {
    let records: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, serde_json::Value> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), serde_json::Value::String(v.clone())))
                        .collect()
                })
                .unwrap_or_default();
            serde_json::json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).expect("an SQS event")
}

/// A one-page PDF with a text layer (Helvetica), one line of text per entry, top to bottom.
pub fn text_pdf(lines: &[&str]) -> Vec<u8> {
    let page: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    text_pdf_pages(&[page])
}

/// A PDF with a text layer, one page per entry, each with its lines top to bottom.
pub fn text_pdf_pages(pages: &[Vec<String>]) -> Vec<u8> {
    let n = pages.len();
    // Objects: 1 catalog, 2 pages, 3 font, then a page and its content stream per page.
    let kids: Vec<String> = (0..n).map(|i| format!("{} 0 R", 4 + 2 * i)).collect();
    let mut objects = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        format!("<< /Type /Pages /Kids [{}] /Count {n} >>", kids.join(" ")),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    for (i, lines) in pages.iter().enumerate() {
        let mut content = String::from("BT /F1 11 Tf 40 760 Td 12 TL\n");
        for line in lines {
            let escaped = line
                .replace('\\', "\\\\")
                .replace('(', "\\(")
                .replace(')', "\\)");
            content.push_str(&format!("({escaped}) Tj T*\n"));
        }
        content.push_str("ET\n");
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            5 + 2 * i
        ));
        objects.push(format!(
            "<< /Length {} >>\nstream\n{content}endstream",
            content.len()
        ));
    }
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

/// Runs the whole local pipeline (as Lambda's event sources would) until every job in `ids` is
/// settled, or `timeout` passes; returns the jobs as they stand.
pub async fn run_until_settled(
    p: &ocrbridge_local::pipeline::Pipeline,
    ledger: &Ledger,
    ids: &[ocrbridge::job::JobId],
    timeout: Duration,
) -> Vec<ocrbridge::job::Job> {
    run_until(p, ledger, ids, timeout, |j| j.state.is_settled()).await
}

/// Runs the whole local pipeline until every job in `ids` exists and is `done`, or `timeout`
/// passes; returns the jobs as they stand.
pub async fn run_until(
    p: &ocrbridge_local::pipeline::Pipeline,
    ledger: &Ledger,
    ids: &[ocrbridge::job::JobId],
    timeout: Duration,
    done: impl Fn(&ocrbridge::job::Job) -> bool,
) -> Vec<ocrbridge::job::Job> {
    let stop = std::sync::atomic::AtomicBool::new(false);
    let started = std::time::Instant::now();
    let (_, jobs) = tokio::join!(p.run_until(&stop), async {
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let mut jobs = Vec::new();
            for id in ids {
                if let Ok(Some(job)) = ledger.get_job(id).await {
                    jobs.push(job);
                }
            }
            let finished = jobs.len() == ids.len() && jobs.iter().all(&done);
            if finished || started.elapsed() > timeout {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                return jobs;
            }
        }
    });
    jobs
}

/// The job intake makes for `bytes` uploaded under `profile`.
pub fn job_id_for(bytes: &[u8], profile: &str) -> ocrbridge::job::JobId {
    ocrbridge::job::DocumentKey::new(
        &ocrbridge::job::ContentHash::of(bytes),
        &ocrbridge::job::Profile::new(profile).expect("a profile name"),
    )
    .job_id()
}

/// Reads a stored result (or any object) from the results bucket, gunzipping `.gz` archives.
pub async fn results_object(s: &TestStack, key: &str) -> Vec<u8> {
    let out = s
        .clients
        .s3
        .get_object()
        .bucket(&s.config.results_bucket)
        .key(key)
        .send()
        .await
        .expect("GetObject");
    let bytes = out
        .body
        .collect()
        .await
        .expect("the body")
        .into_bytes()
        .to_vec();
    if key.ends_with(".gz") {
        use std::io::Read;
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut text)
            .expect("gzip");
        text
    } else {
        bytes
    }
}

/// What every payload of an API carries, folded in one payload's key paths at a time (`None`
/// before the first): the paths a twin of that API must send too.
pub fn carried_by_all(
    so_far: Option<std::collections::BTreeSet<String>>,
    paths: &std::collections::BTreeSet<String>,
) -> Option<std::collections::BTreeSet<String>> {
    Some(match so_far {
        None => paths.clone(),
        Some(seen) => seen.intersection(paths).cloned().collect(),
    })
}

/// Every key path in `value` (`Blocks[].Geometry.BoundingBox.Width`), arrays collapsed: a
/// payload's shape, to check a twin's answers against a vendor's real ones.
pub fn key_paths(value: &serde_json::Value) -> std::collections::BTreeSet<String> {
    fn walk(value: &serde_json::Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    out.insert(path.clone());
                    walk(v, &path, out);
                }
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    walk(item, &format!("{prefix}[]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = std::collections::BTreeSet::new();
    walk(value, "", &mut out);
    out
}

/// A sample event from `events/`, its names (bucket, webhook secret) pointed at this stack.
pub fn sample_event(name: &str, s: &TestStack) -> serde_json::Value {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("events").join(name)).unwrap();
    let text = text
        .replace("ocrbridge-documents-123456789012-us-east-1", &s.config.documents_bucket)
        .replace("096fKKXTRTtl3on89fVO.nfljtsv6qko", "")
        .replace(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:ocrbridge/webhook-signing-secret-AbCdEf",
            &s.config.webhook_secret,
        );
    serde_json::from_str(&text).unwrap()
}
