//! Every crash point, not only the faults we chose.
//!
//! The chaos run breaks the pipeline where we thought it might break. This one breaks it
//! everywhere it can: at every failpoint (`ocrbridge::failpoints::ALL` — just before and just
//! after each AWS write and each vendor call), with each action that makes sense there:
//!
//! - **crash**: the invocation dies; its messages come back after their visibility;
//! - **error**: the effect fails — before it, it never happened; after it, it did and its
//!   answer is lost;
//! - **stall**: the worker pauses past its lease (its batch is given up and taken over), then
//!   goes on and tries to write.
//!
//! Each case is a small scenario of its own: one document (and what its route needs to reach
//! the point: a duplicate upload, a refused key and the operator's re-upload, a lost answer, a
//! lost webhook…), run to quiescence in a pipeline against a twin **without idempotency** — the
//! simulator with none, Azure, Mindee, and Textract's synchronous calls for the points of that
//! path — under the `hold` or the `resubmit` policy. Scenarios of
//! one configuration run side by side in one pipeline; each failpoint is aimed at its own
//! document only. Then, for every document:
//!
//! 1. it is settled — Completed, NeedsReview, Rejected, or Held/Failed with a reason an
//!    operator can act on — and nothing is stuck in a live state;
//! 2. the vendor's books hold at most 1 + the risky resubmits ocrbridge counted for it (none
//!    under `hold`); and where nothing was ambiguous — a worker paused inside its lease while
//!    its message went to another (the **pause** at `submit.after_admit`) — at most one vendor
//!    job, no risk counted, no hold;
//! 3. no state it ever entered came back after a later one (its history), except through an
//!    operator's retry;
//! 4. every vendor job that finished and whose completion the vendor delivered is the job's,
//!    or recorded on it as an orphan (billed, counted): no notice lost; and every vendor job
//!    whose submission answer reached a worker is too, unless the case killed or failed that
//!    worker with the answer in hand (a stale writer that overwrote its successor's vendor job
//!    would drop an answer ocrbridge had);
//! 5. and the failpoint it was aimed at fired: a case that never reaches its point proves
//!    nothing; it is listed, and fails the full run (`make crashpoints`).
//!
//! `make test` runs every (failpoint, action) once, each on one configuration (spread over them)
//! (`CRASHPOINTS=gate`); `make crashpoints` runs the whole matrix, every configuration
//! (`CRASHPOINTS=full`). Both print the table.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use ocrbridge::failpoints::{self, Action};
use ocrbridge::job::{reason, ContentHash, DocumentKey, Job, JobId, JobState, Profile};
use ocrbridge::queue::REASON_CODE_ATTRIBUTE;
use ocrbridge::vendors::ambiguity::{AmbiguityPolicy, Fallback};
use ocrbridge::vendors::select::VendorKind;
use ocrbridge_local::pipeline::{
    ChaosCounters, ChaosFault, ChaosOptions, Pipeline, PipelineOptions,
};
use ocrbridge_tests::{all_jobs, forward_reachable, stack_with, TestStack};
use vendor_sim::engine::EngineKind;
use vendor_sim::faults::{Fault, FaultConfig, Forced};
use vendor_sim::Idempotency;

/// A twin and a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Config {
    vendor: VendorKind,
    fallback: Fallback,
    /// The simulator with native idempotency: only for the points no twin without it can
    /// reach (a lookup by key).
    native: bool,
    /// The Textract twin answering one-page documents in the call (`TEXTRACT_SYNCHRONOUS`): a
    /// call with no token and nothing to look up, only for the points of that path.
    sync: bool,
    /// A pipeline of its own: for a case whose verdict must not depend on how busy the
    /// other cases keep the functions (the pause).
    alone: bool,
    /// A pipeline of its own, with room for every worker its cases stall: for the routes that
    /// hold an event back until what it must come after has happened ([`release_when_due`]).
    /// Stalled among fifty other cases, with their workers holding the few pollers (a frozen
    /// invocation keeps its slot, as in Lambda), the successor they wait for could not run.
    timed: bool,
}

impl Config {
    const fn of(vendor: VendorKind, fallback: Fallback) -> Self {
        Config {
            vendor,
            fallback,
            native: false,
            sync: false,
            alone: false,
            timed: false,
        }
    }

    fn name(self) -> String {
        let twin = if self.native {
            "sim(native)".to_owned()
        } else if self.sync {
            "textract(sync)".to_owned()
        } else if self.vendor == VendorKind::Sim {
            "sim(none)".to_owned()
        } else {
            self.vendor.to_string()
        };
        let alone = if self.alone { " alone" } else { "" };
        let timed = if self.timed { " timed" } else { "" };
        format!("{twin}/{}{alone}{timed}", self.fallback.as_str())
    }

    fn pushes(self) -> bool {
        self.vendor != VendorKind::Azure && !self.sync
    }
}

/// The twins without idempotency, under both policies.
const CONFIGS: [Config; 6] = [
    Config::of(VendorKind::Sim, Fallback::Hold),
    Config::of(VendorKind::Sim, Fallback::Resubmit),
    Config::of(VendorKind::Azure, Fallback::Hold),
    Config::of(VendorKind::Azure, Fallback::Resubmit),
    Config::of(VendorKind::Mindee, Fallback::Hold),
    Config::of(VendorKind::Mindee, Fallback::Resubmit),
];

const SIM_NATIVE: Config = Config {
    vendor: VendorKind::Sim,
    fallback: Fallback::Hold,
    native: true,
    sync: false,
    alone: false,
    timed: false,
};

const TEXTRACT_SYNC: Config = Config {
    vendor: VendorKind::Textract,
    fallback: Fallback::Hold,
    native: false,
    sync: true,
    alone: false,
    timed: false,
};

/// How long an invocation may run.
const INVOCATION: Duration = Duration::from_secs(6);
/// How long a stalled worker sleeps: past its lease (4 s: the invocation less the 2 s margin).
const STALL: Duration = Duration::from_secs(5);
/// How long, at most, a worker stays stalled until what its route waits for has happened (the
/// job was held): the harness releases it then
/// (`failpoints::release`), so the order of events is the route's on a loaded machine too. A
/// fixed pause raced the successor, and lost under load. Less than the local runner lets a
/// frozen invocation run on (four invocation timeouts, 24 s): past that it is dropped, as a
/// crash would drop it, and its answer with it.
const UNTIL_RELEASED: Duration = Duration::from_secs(20);
/// How long, at most, a late completion is held back until the second submission it must come
/// after was made (`Sim::release_delayed`); a stranger's, until its failpoint is armed.
const LATE: Duration = Duration::from_secs(60);
/// How long a worker pauses inside its lease (4 s) on its way to the vendor while its batch is
/// given to another worker: it wakes with time for the call (more than the 1 s a call needs).
const PAUSE: Duration = Duration::from_secs(2);
/// Where the pause is: after the submit worker's last ledger write before the vendor call.
const PAUSE_POINT: &str = "submit.after_admit";
/// The ambiguity grace: how long a lost answer waits for a completion that names the job.
const GRACE: Duration = Duration::from_secs(3);

fn actions() -> [Action; 3] {
    [Action::Crash, Action::Error, Action::Stall(STALL)]
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Crash => "crash",
        Action::Error => "error",
        Action::Stall(d) if d == PAUSE => "pause",
        Action::Stall(_) => "stall",
    }
}

/// What a scenario does to its document, besides the failpoint, so that the point is on its
/// way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// Nothing: the happy path passes the point.
    Happy,
    /// The upload is not a document: intake rejects it.
    Junk,
    /// The same bytes are uploaded again under another key.
    Duplicate,
    /// The vendor refuses the key once: the job is held (`vendor_auth_failed`).
    AuthRefused,
    /// … and the operator uploads the document again.
    AuthThenReupload,
    /// … and the operator redrives its DLQ letter.
    AuthThenRedrive,
    /// The vendor throttles its submission once.
    Throttled,
    /// The vendor rejects the document.
    Rejected,
    /// The answer to its submission is dropped; the vendor made the job.
    LostAnswer,
    /// Its submission hangs and the vendor makes nothing.
    NothingMade,
    /// The answer is dropped and the completion comes after the grace: a second submission
    /// (under `resubmit`), then the first one's completion.
    LateCompletion,
    /// The submit worker stalls past its lease after the vendor took the document; it is let go
    /// once its successor resubmitted and recorded the second vendor job, and then finds it.
    /// (It was raced by a fixed pause until the local event source stopped counting a frozen
    /// invocation against the mapping's concurrency: its two submit slots held by stalled
    /// workers, the successor was never invoked.)
    StallAfterCall,
    /// The submit worker pauses inside its lease on its way to the vendor ([`PAUSE_POINT`]),
    /// while its batch is delivered to another worker (SQS delivers at least once). Nothing is
    /// ambiguous: the lease keeps the other worker waiting, so at most one vendor job, no risk
    /// counted, no hold. (Without the lease, the other worker inherits a live attempt and holds the job
    /// or pays for the document again.)
    Overlap,
    /// The vendor's answer is not recorded and its hand-over stalls: the job is held before
    /// the answer comes back.
    AnswerAfterHold,
    /// Its completion is never pushed: reconcile polls.
    LostWebhook,
    /// The vendor forgets the finished job.
    Expired,
    /// The result is too large to read.
    Oversized,
    /// The vendor never finishes: reconcile expires the job.
    NeverFinishes,
    /// Its submit message is lost: reconcile sends it again.
    LostSubmitMessage,
    /// A verified webhook names a vendor job that is not ours.
    Stranger,
    /// Its first result fetch fails: parse gives the lease back.
    FetchFails,
    /// The webhook's enqueue fails: it gives the claim back.
    EnqueueFails,
}

impl Route {
    /// Whether an operator acts on the job (a retry edge in its history is theirs).
    fn operator(self) -> bool {
        matches!(self, Route::AuthThenReupload | Route::AuthThenRedrive)
    }
}

/// How `point` is reached under `config`, if it can be.
fn route(point: &str, config: Config) -> Option<Route> {
    let (stage, name) = point.split_once('.')?;
    let effect = name
        .trim_start_matches("before_")
        .trim_start_matches("after_")
        .trim_end_matches("_before_enqueue");
    let vendor = config.vendor;
    let all = |r: Route| (!config.native).then_some(r);
    let pushing = |r: Route| (!config.native && config.pushes()).then_some(r);
    let only = |v: VendorKind, r: Route| (!config.native && vendor == v).then_some(r);
    let resubmit = config.fallback == Fallback::Resubmit;
    match (stage, effect) {
        ("submit", "lookup") => config.native.then_some(Route::LostAnswer),
        (_, _) if config.native => None,
        // A synchronous answer: archived in hand, or looked for by the successor of a worker
        // whose answer was lost.
        ("submit", "archive_answer") => config.sync.then_some(Route::Happy),
        ("submit", "find_answer") => config.sync.then_some(Route::LostAnswer),
        (_, _) if config.sync => None,
        ("intake", "reject") => all(Route::Junk),
        ("intake", "link_source") => all(Route::Duplicate),
        ("intake", "retry") => all(Route::AuthThenReupload),
        ("intake", _) => all(Route::Happy),
        ("submit", "revive") => all(Route::AuthThenRedrive),
        ("submit", "pay_retry" | "release" | "pause") => all(Route::Throttled),
        ("submit", "record_attempt") => resubmit.then_some(Route::NothingMade),
        ("submit", "notify_parse") => only(VendorKind::Azure, Route::Happy),
        ("submit", "hold") => all(Route::AuthRefused),
        ("submit", "fail") => all(Route::Rejected),
        ("submit", "record_orphan") => {
            (vendor == VendorKind::Azure && resubmit).then_some(Route::StallAfterCall)
        }
        ("submit", "adopt_held") => {
            (vendor == VendorKind::Azure && !resubmit).then_some(Route::AnswerAfterHold)
        }
        ("submit", _) => all(Route::Happy),
        ("webhook", "release_claim") => pushing(Route::EnqueueFails),
        ("webhook", "dead_letter") => pushing(Route::Stranger),
        ("webhook", _) => pushing(Route::Happy),
        ("parse", "adopt") => pushing(Route::LostAnswer),
        ("parse", "record_orphan") => {
            (config.pushes() && resubmit).then_some(Route::LateCompletion)
        }
        ("parse", "fail_submitted") => all(Route::Expired),
        ("parse", "admit") => only(VendorKind::Azure, Route::Happy),
        // A notice for a job the vendor's success reached first marks it ready in the lease's
        // own write (`parse.*_mark_ready`); the lease alone is taken on a job reconcile marked.
        ("parse", "lease") => pushing(Route::LostWebhook),
        ("parse", "archive_stream" | "fail") => all(Route::Oversized),
        ("parse", "release") => all(Route::FetchFails),
        ("parse", _) => all(Route::Happy),
        ("reconcile", "expire") => all(Route::NeverFinishes),
        ("reconcile", "resend") => all(Route::LostSubmitMessage),
        ("reconcile", _) => pushing(Route::LostWebhook),
        ("batch", "dead_letter") => all(Route::AuthRefused),
        ("batch", "defer") => match vendor {
            VendorKind::Azure => all(Route::Happy),
            _ => all(Route::LostAnswer),
        },
        ("batch", "backoff") => all(Route::Throttled),
        _ => None,
    }
}

/// One case: a failpoint, an action, where it runs, and its document.
#[derive(Debug, Clone)]
struct Case {
    point: &'static str,
    action: Action,
    config: Config,
    route: Route,
    /// The S3 key of its upload.
    key: String,
    bytes: Vec<u8>,
    job: JobId,
    /// What the vendor knows the document by: our job id, or for Azure its content's hash.
    vendor_subject: String,
    /// What the failpoint is aimed at (the job, or for a stranger's webhook the vendor job).
    aim: Arc<std::sync::Mutex<String>>,
}

/// A small PNG header with unique bytes: intake accepts it, the fast engine does not read it.
fn png(tag: &str) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    b.extend_from_slice(&640u32.to_be_bytes());
    b.extend_from_slice(&480u32.to_be_bytes());
    b.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    b.extend_from_slice(tag.as_bytes());
    b
}

/// A fixed, well-mixed number for a case (FNV-1a of its point and action): the gate's choice
/// of configuration is the same on every run.
fn spread(point: &str, action: &str) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in point.bytes().chain([b' ']).chain(action.bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    (hash >> 17) as usize
}

fn cases(full: bool) -> Vec<Case> {
    let receipt = Profile::new("receipt").unwrap();
    let salt = ocrbridge_tests::unique_name("cp");
    let mut out = Vec::new();
    for point in failpoints::ALL {
        let pause = (*point == PAUSE_POINT).then_some(Action::Stall(PAUSE));
        for action in actions().into_iter().chain(pause) {
            let reachable: Vec<(Config, Route)> = CONFIGS
                .iter()
                .chain([&SIM_NATIVE, &TEXTRACT_SYNC])
                .filter_map(|c| match action {
                    // On the twin that pushes nothing: there, only the lease tells the second
                    // worker that the first is alive (a pushed completion would name the job
                    // and heal the overlap).
                    Action::Stall(d) if d == PAUSE => (!c.native && !c.sync && !c.pushes())
                        .then_some((Config { alone: true, ..*c }, Route::Overlap)),
                    _ => route(point, *c).map(|r| (*c, r)),
                })
                .collect();
            assert!(!reachable.is_empty(), "{point}: no route reaches it");
            // The pause runs under both policies even in the gate: under `hold` the overlap
            // shows as a needless hold, under `resubmit` as a second charge.
            let chosen: Vec<(Config, Route)> = if full || action_name(action) == "pause" {
                reachable
            } else {
                // The gate: one configuration per case, spread so that every twin and policy
                // takes its share of each stage and each action (a plain turn would give one
                // configuration every `before_` crash, and its intake batches a pile of them).
                vec![reachable[spread(point, action_name(action)) % reachable.len()]]
            };
            for (config, route) in chosen {
                let timed = matches!(
                    route,
                    Route::AnswerAfterHold | Route::LateCompletion | Route::StallAfterCall
                );
                let config = Config { timed, ..config };
                let n = out.len();
                let bytes = if route == Route::Junk {
                    format!("not a document {salt}-{n}").into_bytes()
                } else {
                    png(&format!("{salt}-{n}"))
                };
                let content = ContentHash::of(&bytes);
                let job = DocumentKey::new(&content, &receipt).job_id();
                // A synchronous call names nothing of ours either: the twin keys it by content.
                let vendor_subject = match config.vendor {
                    VendorKind::Azure => format!("sha256:{}", content.to_hex()),
                    _ if config.sync => format!("sha256:{}", content.to_hex()),
                    _ => job.to_string(),
                };
                out.push(Case {
                    point,
                    action,
                    config,
                    route,
                    key: format!("receipts/cp/{n:04}.png"),
                    bytes,
                    aim: Arc::new(std::sync::Mutex::new(job.to_string())),
                    job,
                    vendor_subject,
                });
            }
        }
    }
    out
}

/// What a run of one configuration is told to do to its documents.
struct Plan {
    sim: BTreeMap<Fault, BTreeSet<Forced>>,
    chaos: BTreeSet<(ChaosFault, String)>,
    /// Failpoints to arm: by name, (action, subject).
    arms: BTreeMap<&'static str, Vec<(Action, String)>>,
}

fn plan(cases: &[Case]) -> Plan {
    let mut plan = Plan {
        sim: BTreeMap::new(),
        chaos: BTreeSet::new(),
        arms: BTreeMap::new(),
    };
    for case in cases {
        let mut force = |fault: Fault| {
            plan.sim
                .entry(fault)
                .or_default()
                .insert(Forced::Subject(case.vendor_subject.clone()));
        };
        match case.route {
            Route::AuthRefused | Route::AuthThenReupload | Route::AuthThenRedrive => {
                force(Fault::AuthRefused)
            }
            Route::Throttled => force(Fault::Throttle),
            Route::Rejected => force(Fault::DocumentRejected),
            Route::LostAnswer => force(Fault::Drop),
            Route::NothingMade => force(Fault::Slow),
            Route::LateCompletion => {
                force(Fault::Drop);
                force(Fault::DelayedWebhook);
            }
            Route::LostWebhook => force(Fault::LostWebhook),
            Route::Expired => force(Fault::ResultExpired),
            Route::Oversized => force(Fault::OversizedResult),
            Route::NeverFinishes => force(Fault::NeverFinishes),
            Route::Stranger => {
                // The stranger's completion comes late, so its failpoint is armed (once its
                // vendor job is known) before it arrives.
                plan.sim
                    .entry(Fault::DelayedWebhook)
                    .or_default()
                    .insert(Forced::Subject(format!("someone-else-{}", case.job)));
            }
            Route::LostSubmitMessage => {
                plan.chaos
                    .insert((ChaosFault::Lose, format!("submit:{}", case.job)));
            }
            _ => {}
        }
        let mut arm = |point: &'static str, action: Action| {
            plan.arms
                .entry(point)
                .or_default()
                .push((action, case.job.to_string()));
        };
        match case.route {
            // Until the worker that took over resubmitted and recorded its vendor job.
            Route::StallAfterCall => arm("submit.after_vendor_call", Action::Stall(UNTIL_RELEASED)),
            // Until the job is held.
            Route::AnswerAfterHold => {
                arm("submit.before_record_submitted", Action::Error);
                arm("batch.before_defer", Action::Stall(UNTIL_RELEASED));
            }
            Route::FetchFails => arm("parse.before_fetch", Action::Error),
            Route::EnqueueFails => arm("webhook.after_enqueue", Action::Error),
            _ => {}
        }
        // The case's own point is armed once its aim is known (a stranger's vendor job is
        // known only when it is made).
        if case.route != Route::Stranger {
            plan.arms
                .entry(case.point)
                .or_default()
                .push((case.action, case.job.to_string()));
        }
    }
    plan
}

fn options(config: Config, plan: &Plan) -> PipelineOptions {
    PipelineOptions {
        vendor: config.vendor,
        engine: EngineKind::Fast,
        faults: FaultConfig {
            seed: 20261202,
            force: plan.sim.clone(),
            // Longer than a lease: the client gives up first.
            slow_delay_ms: 6_000,
            // Held back until released (see `release_when_due`): a completion that comes
            // after the fallback decided.
            webhook_delay_ms: LATE.as_millis() as u64,
            oversized_result_bytes: 300_000,
            ..FaultConfig::default()
        },
        idempotency: if config.native {
            Idempotency::Native
        } else {
            Idempotency::None
        },
        twins: vendor_sim::TwinSettings {
            mindee_posts_per_minute: 100_000.0,
            mindee_gets_per_minute: 100_000.0,
            ..Default::default()
        },
        ambiguity: AmbiguityPolicy {
            grace: GRACE,
            fallback: config.fallback,
        },
        chaos: ChaosOptions {
            seed: 20261202,
            force: plan.chaos.clone(),
            ..Default::default()
        },
        crash_redelivery: Duration::from_millis(500),
        invocation_timeout: INVOCATION,
        // StallAfterCall's worker: stalled until released (≤ UNTIL_RELEASED), then for a lease
        // (STALL), then it records its orphan — 36 s of room, not 24 (`FROZEN_LIMIT=2`, 12 s,
        // loses the orphan every time).
        frozen_limit: 6,
        reconcile_every: Duration::from_secs(1),
        submitted_stale: Duration::from_secs(4),
        stuck: Duration::from_secs(3),
        // Long enough for a document to wait its turn behind every other case's stalls.
        max_age: Duration::from_secs(90),
        // Timed cases stall their workers until released: room for all of them and their
        // successors.
        concurrency: if config.timed { 8 } else { 3 },
        vendor_rps: 200.0,
        // A result over this is streamed to the archive, not read (`oversized_result` is 300 KB).
        environment: [("VENDOR_MAX_RESULT_BYTES", "200000")]
            .into_iter()
            .chain(config.sync.then_some(("TEXTRACT_SYNCHRONOUS", "on")))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            // CRASHPOINTS_MESSAGE_CONCURRENCY=5: submit and parse handle a batch's messages at
            // once (`MESSAGE_CONCURRENCY`, off by default: ocrbridge::batch::DEFAULT_CONCURRENCY).
            .chain(
                std::env::var("CRASHPOINTS_MESSAGE_CONCURRENCY")
                    .ok()
                    .map(|n| ("MESSAGE_CONCURRENCY".to_owned(), n)),
            )
            .collect(),
        ..PipelineOptions::default()
    }
}

/// The outcome of one case.
#[derive(Debug)]
struct Outcome {
    fired: bool,
    /// Where the job ended and how it got there, for a case that did not reach its point.
    story: String,
    violations: Vec<String>,
}

/// How long one configuration may take before its pipeline is called hung.
const HUNG: Duration = Duration::from_secs(240);
/// The most cases one pipeline runs in the full matrix (the gate's largest configuration has 52).
const CHUNK: usize = 45;

/// Runs every case of `config` side by side in one pipeline (its failpoints already armed)
/// and checks each; whether each reached its point is the caller's to say.
async fn run_config(config: Config, cases: &[Case], plan: &Plan) -> Vec<Outcome> {
    let s = stack_with(&[("VendorName", config.vendor.as_str())]).await;
    let p = Pipeline::start(s.clients.clone(), &s.stack, options(config, plan))
        .await
        .unwrap();
    let api_key = s
        .secret(&s.config.vendor_api_key_secret, "AWSCURRENT")
        .await;
    let started = Instant::now();
    for case in cases {
        s.put(&case.key, case.bytes.clone(), Some("image/png"))
            .await;
        if case.route == Route::Duplicate {
            s.put(
                &case.key.replace(".png", "-again.png"),
                case.bytes.clone(),
                Some("image/png"),
            )
            .await;
        }
    }
    let stop = AtomicBool::new(false);
    let run = async {
        tokio::join!(p.run_until(&stop), async {
            let mut acted: BTreeSet<usize> = BTreeSet::new();
            let mut released: BTreeSet<usize> = BTreeSet::new();
            let mut settled_since: Option<Instant> = None;
            loop {
                tokio::time::sleep(Duration::from_millis(700)).await;
                let jobs = jobs_now(&s).await;
                for (i, case) in cases.iter().enumerate() {
                    if !released.contains(&i) && release_when_due(&p, case, jobs.get(&case.job)) {
                        released.insert(i);
                    }
                    if acted.contains(&i) {
                        continue;
                    }
                    if operate(&s, &p, case, jobs.get(&case.job), &api_key).await {
                        acted.insert(i);
                    }
                }
                let done = cases.iter().enumerate().all(|(i, c)| {
                    let operated = !needs_operator(c.route) || acted.contains(&i);
                    // An operator's retry sends the job back: it is not done while still
                    // parked where the operator found it (its message may wait out the
                    // submission pause after a refused key).
                    let retried =
                        !c.route.operator() || jobs.get(&c.job).is_some_and(|j| !held_on_auth(j));
                    operated && retried && jobs.get(&c.job).is_some_and(|j| j.state.is_settled())
                });
                match (done, settled_since) {
                    // Settled for longer than a stall, a redelivery and a reconcile sweep.
                    (true, Some(since)) if since.elapsed() > STALL + Duration::from_secs(5) => {
                        break;
                    }
                    (true, None) => settled_since = Some(Instant::now()),
                    (true, Some(_)) => {}
                    (false, _) => settled_since = None,
                }
                if started.elapsed() > Duration::from_secs(180) {
                    break;
                }
            }
            stop.store(true, Ordering::Relaxed);
        })
    };
    // A pipeline that does not stop is a finding of its own, not a CI hang.
    let hung = tokio::time::timeout(HUNG, run).await.is_err();
    let jobs = jobs_now(&s).await;
    let mut outcomes = Vec::new();
    for case in cases {
        outcomes.push(Outcome {
            fired: false,
            story: match jobs.get(&case.job) {
                Some(j) => format!(
                    "{}: {} ({})",
                    j.id,
                    j.history
                        .iter()
                        .map(|h| h.state.to_string())
                        .collect::<Vec<_>>()
                        .join(" > "),
                    j.reason
                        .as_ref()
                        .map_or("no reason".into(), |r| format!("{}: {}", r.code, r.message))
                ),
                None => format!("{}: no job", case.job),
            },
            violations: check(config, case, jobs.get(&case.job), &p)
                .into_iter()
                .chain(hung.then(|| format!("the pipeline did not stop within {HUNG:?}")))
                .collect(),
        });
    }
    // Every letter in a DLQ says why it is there.
    for (queue, dlq) in [
        ("intake", &s.config.intake_dlq_url),
        ("submit", &s.config.submit_dlq_url),
        ("results", &s.config.results_dlq_url),
    ] {
        for m in s.drain(dlq).await {
            let has_reason = m
                .message_attributes()
                .and_then(|a| a.get(REASON_CODE_ATTRIBUTE))
                .is_some();
            if !has_reason {
                let body = m.body().unwrap_or_default();
                for (case, outcome) in cases.iter().zip(outcomes.iter_mut()) {
                    if body.contains(case.job.as_str()) {
                        outcome
                            .violations
                            .push(format!("a {queue} DLQ letter without a reason: {body}"));
                    }
                }
            }
        }
    }
    outcomes
}

async fn jobs_now(s: &TestStack) -> BTreeMap<JobId, Job> {
    all_jobs(&s.ledger, 100)
        .await
        .into_iter()
        .map(|j| (j.id.clone(), j))
        .collect()
}

fn needs_operator(route: Route) -> bool {
    matches!(
        route,
        Route::AuthThenReupload | Route::AuthThenRedrive | Route::Stranger
    )
}

/// What the route's operator (or outsider) does once the job is where they act; `true` when
/// it is done.
async fn operate(
    s: &TestStack,
    p: &Pipeline,
    case: &Case,
    job: Option<&Job>,
    api_key: &str,
) -> bool {
    match case.route {
        Route::AuthThenReupload => {
            let Some(job) = job.filter(|j| held_on_auth(j)) else {
                return false;
            };
            // A later second than the stop: S3 keeps whole seconds.
            while ocrbridge::time::UnixMillis::now().0 / 1000 <= job.state_since.0 / 1000 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            s.put(
                &case.key.replace(".png", "-reupload.png"),
                case.bytes.clone(),
                Some("image/png"),
            )
            .await;
            true
        }
        Route::AuthThenRedrive => {
            if !job.is_some_and(held_on_auth) {
                return false;
            }
            redrive(s, &case.job).await
        }
        Route::Stranger => {
            let vendor_job = stranger(p, case, api_key).await;
            *case.aim.lock().unwrap() = vendor_job.clone();
            failpoints::arm_more(case.point, &[(case.action, vendor_job)]).unwrap();
            // Armed: its completion may come now.
            p.sim
                .sim
                .release_delayed(&format!("someone-else-{}", case.job));
            true
        }
        _ => true,
    }
}

/// Held on a refused key, where an operator finds it.
fn held_on_auth(j: &Job) -> bool {
    j.state == JobState::Held
        && j.reason.as_ref().map(|r| r.code.as_str()) == Some(reason::VENDOR_AUTH_FAILED)
}

/// Lets a route's held-back event go once what it must come after has happened; `true` when
/// released (or when there is nothing to release). What waits, and for what:
/// - a worker whose hand-over stalled with an unrecorded answer (`AnswerAfterHold`), until the
///   job was held;
/// - a late completion (`LateCompletion`), until the second submission was made.
///
/// A job that settled first releases everything: nothing it waits for can happen any more.
fn release_when_due(p: &Pipeline, case: &Case, job: Option<&Job>) -> bool {
    let settled = job.is_some_and(|j| j.state.is_settled());
    match case.route {
        Route::AnswerAfterHold => {
            if !(settled || job.is_some_and(|j| j.state == JobState::Held)) {
                return false;
            }
            failpoints::release("batch.before_defer", case.job.as_str());
        }
        Route::LateCompletion => {
            if !(settled || p.sim.sim.books(&case.vendor_subject).len() >= 2) {
                return false;
            }
            p.sim.sim.release_delayed(&case.vendor_subject);
        }
        Route::StallAfterCall => {
            // The stalled worker recorded nothing: a vendor job on the job is its successor's.
            if !(settled || job.is_some_and(|j| j.vendor_job_id.is_some())) {
                return false;
            }
            failpoints::release("submit.after_vendor_call", case.job.as_str());
        }
        _ => {}
    }
    true
}

/// Moves `job`'s letter from the submit DLQ back to the submit queue, as an operator's redrive
/// does (with its attributes); other letters are left as they were.
async fn redrive(s: &TestStack, job: &JobId) -> bool {
    let sqs = &s.clients.sqs;
    let got = sqs
        .receive_message()
        .queue_url(&s.config.submit_dlq_url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap();
    let mut moved = false;
    for m in got.messages() {
        let handle = m.receipt_handle().unwrap_or_default();
        if !m.body().unwrap_or_default().contains(job.as_str()) {
            let _ = sqs
                .change_message_visibility()
                .queue_url(&s.config.submit_dlq_url)
                .receipt_handle(handle)
                .visibility_timeout(0)
                .send()
                .await;
            continue;
        }
        sqs.send_message()
            .queue_url(&s.config.submit_queue_url)
            .message_body(m.body().unwrap_or_default())
            .set_message_attributes(m.message_attributes().cloned())
            .send()
            .await
            .unwrap();
        sqs.delete_message()
            .queue_url(&s.config.submit_dlq_url)
            .receipt_handle(handle)
            .send()
            .await
            .unwrap();
        moved = true;
    }
    moved
}

/// Makes a vendor job that is not ours (another client's, with its own reference), whose
/// verified webhook comes to our endpoint; returns its vendor job id.
async fn stranger(p: &Pipeline, case: &Case, api_key: &str) -> String {
    let base = p.sim.base_url();
    let client = reqwest::Client::new();
    let file = || reqwest::multipart::Part::bytes(png("stranger")).file_name("doc.png");
    let request = match case.config.vendor {
        VendorKind::Mindee => client
            .post(format!("{base}/v2/inferences/enqueue"))
            .header("authorization", api_key)
            .multipart(
                reqwest::multipart::Form::new()
                    .text("model_id", ocrbridge_local::pipeline::LOCAL_MINDEE_MODEL)
                    .text("alias", format!("someone-else-{}", case.job))
                    .text(
                        "webhook_ids",
                        ocrbridge_local::pipeline::LOCAL_MINDEE_WEBHOOK_ID,
                    )
                    .part("file", file()),
            ),
        _ => client
            .post(format!("{base}/v1/documents"))
            .bearer_auth(api_key)
            .multipart(
                reqwest::multipart::Form::new()
                    .text("profile", "receipt")
                    .text("external_ref", format!("someone-else-{}", case.job))
                    .part("file", file()),
            ),
    };
    let answer: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
    answer["id"]
        .as_str()
        .or(answer["job"]["id"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// The vendor's own id in what ocrbridge records as a vendor job (Azure's Operation-Location
/// ends in it).
fn vendor_side_id(recorded: &str) -> &str {
    if let Some((_, rest)) = recorded.split_once("/analyzeResults/") {
        return rest.split('?').next().unwrap_or(rest);
    }
    // A synchronous answer, `answered:<attempt>:<request id>`: the twin's request id is its job.
    if ocrbridge::vendors::answer::is_answered(recorded) {
        return recorded.rsplit_once(':').map_or(recorded, |(_, id)| id);
    }
    recorded
}

/// The invariants of one case (see the module docs); each breach said in a line.
fn check(config: Config, case: &Case, job: Option<&Job>, p: &Pipeline) -> Vec<String> {
    let mut out = Vec::new();
    let Some(job) = job else {
        return vec!["the document has no job: lost".into()];
    };
    // 1. Settled, with a reason an operator can act on.
    if !job.state.is_settled() {
        out.push(format!("stuck in {}", job.state));
    }
    let code = job.reason.as_ref().map(|r| r.code.as_str());
    match job.state {
        JobState::Held
            if !matches!(
                code,
                Some(reason::SUBMISSION_OUTCOME_UNKNOWN | reason::VENDOR_AUTH_FAILED)
            ) =>
        {
            out.push(format!("held without an operator's reason: {code:?}"))
        }
        JobState::Failed | JobState::Rejected | JobState::NeedsReview
            if job.reason.as_ref().is_none_or(|r| r.message.is_empty()) =>
        {
            out.push(format!("{} without a reason", job.state))
        }
        _ => {}
    }
    // 2. Paid at most once, unless a counted risk was taken.
    let books = p.sim.sim.books(&case.vendor_subject);
    let extra = books.len().saturating_sub(1);
    if extra > job.risky_resubmits as usize {
        out.push(format!(
            "the vendor made {} jobs, ocrbridge counted {} risky resubmits",
            books.len(),
            job.risky_resubmits
        ));
    }
    if config.fallback == Fallback::Hold && job.risky_resubmits > 0 {
        out.push(format!(
            "{} risky resubmits under hold",
            job.risky_resubmits
        ));
    }
    // 2b. Nothing ambiguous happened to an overlapping delivery: at most one vendor job (none
    // when the document waited past its maximum age), no risk, no hold.
    if case.route == Route::Overlap
        && (books.len() > 1
            || job.risky_resubmits > 0
            || job.history.iter().any(|h| h.state == JobState::Held))
    {
        out.push(format!(
            "a worker paused inside its lease was taken for lost: {} vendor jobs, {} risky resubmits, history {}",
            books.len(),
            job.risky_resubmits,
            job.history
                .iter()
                .map(|h| h.state.to_string())
                .collect::<Vec<_>>()
                .join(" > ")
        ));
    }
    // 3. Never backwards (an operator's retry is the one way back).
    for pair in job.history.windows(2) {
        let (from, to) = (pair[0].state, pair[1].state);
        let retry = case.route.operator() && from.is_retry(to);
        if !forward_reachable(from, to) && !retry {
            out.push(format!("moved back: {from} -> {to}"));
        }
    }
    // 4. Every finished vendor job whose completion was delivered is the job's, or an orphan.
    let known: BTreeSet<&str> = job
        .vendor_job_id
        .iter()
        .chain(&job.orphan_vendor_jobs)
        .map(|v| vendor_side_id(v))
        .collect();
    for vendor_job in &books {
        if vendor_job.completion_acked && !known.contains(vendor_job.id.as_str()) {
            out.push(format!(
                "the vendor delivered the completion of {} and ocrbridge does not know it (state {}, following {:?})",
                vendor_job.id, job.state, job.vendor_job_id
            ));
        }
    }
    // 4b. Every vendor job whose submission answer reached a worker is the job's, or an orphan
    // with its cost — unless the case killed or failed that worker while it held the answer. A
    // lost answer may be paid for as a counted risk; an answer in hand may not be dropped (a
    // stale worker's write over its successor's would drop the successor's).
    if !case.fails_a_worker_holding_an_answer() {
        for vendor_job in books.iter().filter(|v| v.answer_sent) {
            if !known.contains(vendor_job.id.as_str()) {
                // With a batch handled concurrently, another case's crash in the invocation of
                // a frozen worker stops that worker too, its answer with it: the count says
                // whether that happened in this configuration's run, and the other whether a
                // frozen worker outlived the harness's bound on a late write.
                out.push(format!(
                    "the vendor's answer naming {} reached ocrbridge, which does not know it (state {}, following {:?}, orphans {:?}; frozen invocations crashed by another message: {}, frozen workers dropped at the limit: {})",
                    vendor_job.id, job.state, job.vendor_job_id, job.orphan_vendor_jobs,
                    ChaosCounters::get(&p.chaos.frozen_crashed),
                    ChaosCounters::get(&p.chaos.frozen_dropped_at_limit)
                ));
            }
        }
    }
    out
}

/// Failpoints between a vendor's answer in a submit worker's hands and that answer in the
/// ledger (as the job's vendor job, or as an orphan): a crash or an error there loses the
/// answer inside ocrbridge, as a dropped response would outside it.
const ANSWER_IN_HAND: &[&str] = &[
    "submit.after_vendor_call",
    "submit.before_archive_answer",
    "submit.before_record_submitted",
    "submit.before_record_orphan",
    "submit.before_adopt_held",
];

impl Case {
    /// Whether the case kills or fails a worker that holds a vendor's answer (invariant 4b).
    fn fails_a_worker_holding_an_answer(&self) -> bool {
        let fails = matches!(self.action, Action::Crash | Action::Error);
        (fails && ANSWER_IN_HAND.contains(&self.point)) || self.route == Route::AnswerAfterHold
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failpoint_under_every_action_leaves_no_document_lost_stranded_or_paid_twice() {
    let full = std::env::var("CRASHPOINTS").as_deref() == Ok("full");
    // CRASHPOINTS_ONLY=submit.before_vendor_call (a prefix) narrows a run down, to look at one.
    let only = std::env::var("CRASHPOINTS_ONLY").unwrap_or_default();
    // CRASHPOINTS_CONFIG=azure/hold runs one configuration's cases only.
    let only_config = std::env::var("CRASHPOINTS_CONFIG").unwrap_or_default();
    if std::env::var_os("RUST_LOG").is_some() {
        ocrbridge::telemetry::init();
    }
    let all: Vec<Case> = cases(full)
        .into_iter()
        .filter(|c| c.point.starts_with(only.as_str()))
        .filter(|c| only_config.is_empty() || c.config.name() == only_config)
        .collect();
    let mut by_config: BTreeMap<String, (Config, Vec<Case>)> = BTreeMap::new();
    for case in &all {
        by_config
            .entry(case.config.name())
            .or_insert_with(|| (case.config, Vec::new()))
            .1
            .push(case.clone());
    }
    let started = Instant::now();
    // Every configuration at once, each in its own stack and pipeline: a failpoint is aimed at
    // one document, so the arms of all of them live side by side.
    // The full matrix gives a configuration 200-250 cases: one pipeline cannot settle them
    // before its cap (every case came back unreached or stuck when it was tried), so it runs
    // them in pipelines of at most CHUNK, as many as the gate gives a configuration.
    let chunk = if full { CHUNK } else { usize::MAX };
    let plans: Vec<(Config, Vec<Case>, Plan)> = by_config
        .into_values()
        .flat_map(|(config, cases)| {
            cases
                .chunks(chunk)
                .map(|part| (config, part.to_vec()))
                .collect::<Vec<_>>()
        })
        .map(|(config, cases)| {
            let plan = plan(&cases);
            (config, cases, plan)
        })
        .collect();
    let mut arms: BTreeMap<&'static str, Vec<(Action, String)>> = BTreeMap::new();
    for (_, _, plan) in &plans {
        for (point, entries) in &plan.arms {
            arms.entry(point)
                .or_default()
                .extend(entries.iter().cloned());
        }
    }
    for (point, entries) in &arms {
        failpoints::arm(point, entries).unwrap();
    }
    // Biggest first, and a slot freed as soon as any run ends (`buffered` freed one only when
    // the oldest ended, so a long run at the head held the other slot idle): the gate's
    // configurations took 537 s for 911 s of runs two at a time.
    let mut order: Vec<usize> = (0..plans.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(plans[i].1.len()));
    let runs = order.into_iter().map(|i| {
        let (config, cases, plan) = &plans[i];
        async move {
            let began = Instant::now();
            let outcomes = Box::pin(run_config(*config, cases, plan)).await;
            eprintln!(
                "crashpoints[{}]: {} cases in {:.0} s",
                config.name(),
                cases.len(),
                began.elapsed().as_secs_f64()
            );
            (i, outcomes)
        }
    });
    // Two at a time: moto is one Python process for all of them, and a step that waits on
    // it past its invocation's lease is a timeout, not a crash point.
    let parallel = std::env::var("CRASHPOINTS_PARALLEL")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2usize);
    let mut finished: Vec<(usize, Vec<Outcome>)> = futures::stream::iter(runs)
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    // Back in the configurations' order, to pair with their cases.
    finished.sort_by_key(|(i, _)| *i);
    let outcomes: Vec<Vec<Outcome>> = finished.into_iter().map(|(_, o)| o).collect();
    let fired = failpoints::fired_subjects();
    failpoints::disarm_all();
    let mut results: Vec<(Case, Outcome)> = Vec::new();
    for ((_, cases, _), outcomes) in plans.into_iter().zip(outcomes) {
        for (case, mut outcome) in cases.into_iter().zip(outcomes) {
            let aim = case.aim.lock().unwrap().clone();
            outcome.fired = fired.contains(&(case.point.to_owned(), aim));
            results.push((case, outcome));
        }
    }
    // The table: failpoint × action, with the configurations it ran on.
    #[derive(Default)]
    struct Row {
        runs: usize,
        reached: usize,
        violations: usize,
        configs: BTreeSet<String>,
    }
    let mut table: BTreeMap<(&str, &str), Row> = BTreeMap::new();
    for (case, outcome) in &results {
        let row = table
            .entry((case.point, action_name(case.action)))
            .or_default();
        row.runs += 1;
        row.reached += usize::from(outcome.fired);
        row.violations += outcome.violations.len();
        row.configs.insert(case.config.name());
    }
    eprintln!(
        "{:<44} {:<6} {:>4} {:>7} {:>10}  configurations",
        "failpoint", "action", "runs", "reached", "violations"
    );
    for ((point, action), row) in &table {
        eprintln!(
            "{point:<44} {action:<6} {:>4} {:>7} {:>10}  {}",
            row.runs,
            row.reached,
            row.violations,
            row.configs.iter().cloned().collect::<Vec<_>>().join(" ")
        );
    }
    let runs = results.len();
    let unreached: Vec<String> = results
        .iter()
        .filter(|(_, o)| !o.fired)
        .map(|(c, o)| {
            format!(
                "{} {} on {} ({:?}) {}",
                c.point,
                action_name(c.action),
                c.config.name(),
                c.route,
                o.story
            )
        })
        .collect();
    let violations: Vec<String> = results
        .iter()
        .flat_map(|(c, o)| {
            o.violations.iter().map(move |v| {
                format!(
                    "{} {} on {} ({:?}, {}): {v}",
                    c.point,
                    action_name(c.action),
                    c.config.name(),
                    c.route,
                    c.job
                )
            })
        })
        .collect();
    eprintln!(
        "crashpoints: {} failpoints, {runs} runs in {:.0} s, {} not reached, {} violations",
        failpoints::ALL.len(),
        started.elapsed().as_secs_f64(),
        unreached.len(),
        violations.len()
    );
    // A case that did not reach its point proves nothing: listed, and in the full matrix a
    // failure. The gate fails on violations only — whether a race (a stall against a lease, a
    // document against its maximum age) comes out the same way on a loaded 2-core CI machine
    // is not something a gate may hang on, and the gate still reaches most points (the table).
    if !unreached.is_empty() {
        eprintln!("never reached:\n{}", unreached.join("\n"));
    }
    assert!(
        violations.is_empty(),
        "violations:\n{}",
        violations.join("\n")
    );
    assert!(
        !full || unreached.is_empty(),
        "{} cases never reached their point (listed above)",
        unreached.len()
    );
}
