//! Failpoints at every effect boundary: a point just before and just after each AWS write and
//! each vendor call the functions make, where a test can inject what production throws at
//! them — the invocation dies, the call fails, or the worker stalls past its lease — and then
//! check that no document is lost, stranded or paid for twice (`tests/crashpoints.rs`).
//!
//! **Names** say where a point is: `<stage>.<before|after>_<effect>`, e.g.
//! `submit.before_vendor_call` or `webhook.after_claim_before_enqueue`. [`ALL`],
//! [`SECOND_OPINION`], [`PREPROCESS`] and [`PARTS`] list every one, so the enumerating tests
//! (`tests/crashpoints.rs`, `tests/second_opinion.rs`, `tests/preprocess.rs`,
//! `tests/parts.rs`) walk them all and a point nobody can reach is noticed.
//!
//! **Cost**: none in a packaged build. Without the `failpoints` cargo feature, which only the
//! test crate turns on, [`check`] is an inlined `Ok(())` and the `fail` crate is not compiled in.
//!
//! **Arming** goes through the `fail` crate (TiKV's failpoint library), with the `return`
//! action and an argument naming what to do to whom:
//!
//! ```text
//! fail::cfg("submit.before_vendor_call", "return(crash@doc-…;stall:6000@doc-…)")
//! ```
//!
//! Each entry is `ACTION@SUBJECT`: `crash`, `error` or `stall:<ms>`, aimed at one job id (or, in
//! intake before the job exists, the upload's key). Scenarios that run side by side in one
//! process each break only their own document, and each `(point, subject)` fires once.
//!
//! **What each action means:**
//! - `crash`: the invocation dies here. In the local runner the event source stops it (the
//!   batch comes back after its visibility, as after a Lambda crash); anywhere else it panics.
//! - `error`: the effect fails. Before the effect, it never happened; **after** it, it did and
//!   the caller is told it failed — a lost answer (a DynamoDB write that committed, a vendor
//!   that took the document), which is what every retry must survive.
//! - `stall:<ms>`: the worker pauses (a stalled connection, a paused process) and then goes on.
//!   The local runner gives its batch up for lost at once, so another worker takes over; the
//!   stalled one resumes afterwards and must be fenced out.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

/// What an armed failpoint does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Crash,
    Error,
    Stall(Duration),
}

impl Action {
    /// The spelling in a failpoint's argument: `crash`, `error`, `stall:<ms>`.
    pub fn spec(self) -> String {
        match self {
            Action::Crash => "crash".into(),
            Action::Error => "error".into(),
            Action::Stall(d) => format!("stall:{}", d.as_millis()),
        }
    }

    #[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
    fn parse(text: &str) -> Option<Self> {
        match text {
            "crash" => Some(Action::Crash),
            "error" => Some(Action::Error),
            _ => text
                .strip_prefix("stall:")
                .and_then(|ms| ms.parse().ok())
                .map(|ms| Action::Stall(Duration::from_millis(ms))),
        }
    }
}

/// An error injected at a failpoint; every error type an effect can fail with converts from it,
/// so the code's own error handling runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("failpoint {name}: injected failure{}", if *.after { " after the effect took place" } else { "" })]
pub struct Injected {
    pub name: &'static str,
    /// The effect happened; only its answer is lost.
    pub after: bool,
}

/// The invocation a handler runs in, as the local runner sees it: the runner scopes
/// [`INVOCATION`] around each handler call, and the chaos faults and failpoints signal it.
#[derive(Debug, Default)]
pub struct Invocation {
    /// A vendor submission is in flight right now.
    pub in_vendor_call: AtomicBool,
    /// Signalled when the worker stalls: the runner gives its batch up for lost.
    pub frozen: Notify,
    /// Signalled to stop the invocation now.
    pub kill: Notify,
}

tokio::task_local! {
    /// The invocation the current handler future belongs to (local runner only).
    pub static INVOCATION: std::sync::Arc<Invocation>;
}

/// The points only a second opinion reaches (a route of two vendors and `SECOND_OPINION`):
/// `tests/second_opinion.rs` walks them on that stack, the crash-point gate those of [`ALL`].
pub const SECOND_OPINION: &[&str] = &[
    "parse.before_create_second_opinion",
    "parse.after_create_second_opinion",
    "parse.before_enqueue_second_opinion",
    "parse.after_enqueue_second_opinion",
    "parse.before_settle_second_opinion",
    "parse.after_settle_second_opinion",
];

/// The points only preprocessing reaches (`PREPROCESS` on, an image accepted):
/// `tests/preprocess.rs` walks them.
pub const PREPROCESS: &[&str] = &["intake.before_put_prepared", "intake.after_put_prepared"];

/// The points only a document sent in parts reaches (`PDF_PART_PAGES`, a PDF past it):
/// `tests/parts.rs` crashes at each of the writes a part's exactly-once rests on.
pub const PARTS: &[&str] = &[
    "intake.before_put_part",
    "intake.after_put_part",
    "intake.before_create_part",
    "intake.after_create_part",
    "intake.before_mark_in_parts",
    "intake.after_mark_in_parts",
    "parse.before_record_part",
    "parse.after_record_part",
    "parse.before_store_merged",
    "parse.after_store_merged",
    "parse.before_settle_parts",
    "parse.after_settle_parts",
    "reconcile.before_fail_parts",
    "reconcile.after_fail_parts",
];

/// Every other failpoint, by stage, in the order a document meets them: the crash-point gate's.
pub const ALL: &[&str] = &[
    // intake
    "intake.before_create_job",
    "intake.after_create_job",
    "intake.before_reject",
    "intake.after_reject",
    "intake.before_enqueue_submit",
    "intake.after_enqueue_submit",
    "intake.before_mark_queued",
    "intake.after_mark_queued",
    "intake.before_link_source",
    "intake.after_link_source",
    "intake.before_retry",
    "intake.after_retry",
    "intake.before_tag",
    "intake.after_tag",
    // submit
    "submit.before_revive",
    "submit.after_revive",
    "submit.before_lease",
    "submit.after_lease",
    "submit.before_lookup",
    "submit.after_lookup",
    "submit.before_pay_retry",
    "submit.after_pay_retry",
    "submit.before_admit",
    "submit.after_admit",
    "submit.before_record_attempt",
    "submit.after_record_attempt",
    "submit.before_vendor_call",
    "submit.after_vendor_call",
    "submit.before_archive_answer",
    "submit.after_archive_answer",
    "submit.before_find_answer",
    "submit.after_find_answer",
    "submit.before_record_submitted",
    "submit.after_record_submitted",
    "submit.before_notify_parse",
    "submit.after_notify_parse",
    "submit.before_release",
    "submit.after_release",
    "submit.before_pause",
    "submit.after_pause",
    "submit.before_hold",
    "submit.after_hold",
    "submit.before_fail",
    "submit.after_fail",
    "submit.before_record_orphan",
    "submit.after_record_orphan",
    "submit.before_adopt_held",
    "submit.after_adopt_held",
    // webhook
    "webhook.before_claim",
    "webhook.after_claim_before_enqueue",
    "webhook.after_enqueue",
    "webhook.after_complete_claim",
    "webhook.before_release_claim",
    "webhook.after_release_claim",
    "webhook.before_dead_letter",
    "webhook.after_dead_letter",
    // parse
    "parse.before_adopt",
    "parse.after_adopt",
    "parse.before_record_orphan",
    "parse.after_record_orphan",
    "parse.before_status",
    "parse.after_status",
    "parse.before_mark_ready",
    "parse.after_mark_ready",
    "parse.before_fail_submitted",
    "parse.after_fail_submitted",
    "parse.before_lease",
    "parse.after_lease",
    "parse.before_admit",
    "parse.after_admit",
    "parse.before_fetch",
    "parse.after_fetch",
    "parse.before_archive",
    "parse.after_archive",
    "parse.before_archive_stream",
    "parse.after_archive_stream",
    "parse.before_store_result",
    "parse.after_store_result",
    "parse.before_complete",
    "parse.after_complete",
    "parse.before_fail",
    "parse.after_fail",
    "parse.before_release",
    "parse.after_release",
    // reconcile
    "reconcile.before_expire",
    "reconcile.after_expire",
    "reconcile.before_resend",
    "reconcile.after_resend",
    "reconcile.before_status",
    "reconcile.after_status",
    "reconcile.before_mark_ready",
    "reconcile.after_mark_ready",
    "reconcile.before_notice",
    "reconcile.after_notice",
    // the SQS side of every consumer
    "batch.before_dead_letter",
    "batch.after_dead_letter",
    "batch.before_defer",
    "batch.after_defer",
    "batch.before_backoff",
    "batch.after_backoff",
];

/// Evaluates failpoint `name` for `subject` (the job it is about): nothing, an injected error,
/// or — for `crash` and `stall` — the action itself, carried out here.
#[inline]
pub async fn check(name: &'static str, subject: &str) -> Result<(), Injected> {
    match armed(name, subject) {
        None => Ok(()),
        Some(action) => act(name, subject, action).await,
    }
}

/// `before`, the effect, then `after`: an error injected at `before` means the effect never
/// ran, one at `after` that it ran and its answer was lost. Unarmed, the two checks are plain
/// function calls: no future of their own on the way to the effect.
pub async fn around<T, E: From<Injected>>(
    before: &'static str,
    after: &'static str,
    subject: &str,
    effect: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    if let Some(action) = armed(before, subject) {
        act(before, subject, action).await?;
    }
    let out = effect.await?;
    if let Some(action) = armed(after, subject) {
        act(after, subject, action).await?;
    }
    Ok(out)
}

/// The action armed at `name` for `subject`, if any (and if it has not fired yet).
#[inline]
fn armed(name: &'static str, subject: &str) -> Option<Action> {
    #[cfg(feature = "failpoints")]
    {
        armed::take(name, subject)
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = (name, subject);
        None
    }
}

/// Carries out an armed action at `name` for `subject`.
async fn act(name: &'static str, subject: &str, action: Action) -> Result<(), Injected> {
    let after = name.contains(".after_");
    match action {
        Action::Error => Err(Injected { name, after }),
        Action::Stall(pause) => {
            tracing::warn!(failpoint = name, ?pause, "failpoint: stalling");
            let _ = INVOCATION.try_with(|i| i.frozen.notify_one());
            let mut released = stall_gate(name, subject).subscribe();
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = released.wait_for(|r| *r) => {
                    tracing::warn!(failpoint = name, "failpoint: stall released");
                }
            }
            Ok(())
        }
        Action::Crash => {
            tracing::warn!(failpoint = name, "failpoint: crashing the invocation");
            if INVOCATION.try_with(|i| i.kill.notify_one()).is_err() {
                panic!("failpoint {name}: crash injected");
            }
            // The runner drops this future; it never resumes.
            std::future::pending::<()>().await;
            Ok(())
        }
    }
}

/// Stalls a test may end early ([`release`]), by `(point, subject)`.
type StallGates =
    std::collections::BTreeMap<(String, String), Arc<tokio::sync::watch::Sender<bool>>>;
static STALL_GATES: std::sync::Mutex<StallGates> = std::sync::Mutex::new(StallGates::new());

fn stall_gate(name: &str, subject: &str) -> Arc<tokio::sync::watch::Sender<bool>> {
    let mut gates = STALL_GATES.lock().unwrap_or_else(|p| p.into_inner());
    Arc::clone(
        gates
            .entry((name.to_owned(), subject.to_owned()))
            .or_insert_with(|| Arc::new(tokio::sync::watch::channel(false).0)),
    )
}

/// Ends the stall at `name` for `subject` now — or, if it has not begun, as soon as it begins.
/// A stall is a worker paused until something else has happened (its successor took over and
/// wrote): a test releases it when that something has happened, instead of betting a fixed
/// pause against how slowly a loaded machine gets there. The pause stays the upper bound.
pub fn release(name: &'static str, subject: &str) {
    stall_gate(name, subject).send_replace(true);
}

/// How many times each failpoint fired, by name.
pub fn fired() -> std::collections::BTreeMap<String, u64> {
    #[cfg(feature = "failpoints")]
    {
        armed::fired()
    }
    #[cfg(not(feature = "failpoints"))]
    Default::default()
}

/// Every `(failpoint, subject)` that fired.
pub fn fired_subjects() -> std::collections::BTreeSet<(String, String)> {
    #[cfg(feature = "failpoints")]
    {
        armed::fired_subjects()
    }
    #[cfg(not(feature = "failpoints"))]
    Default::default()
}

/// Arms `name` with `entries` (`(action, subject)`), replacing what it had. With the feature
/// off, an error: nothing would fire.
pub fn arm(name: &'static str, entries: &[(Action, String)]) -> Result<(), String> {
    #[cfg(feature = "failpoints")]
    {
        armed::arm(name, entries)
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = (name, entries);
        Err("built without the `failpoints` feature: nothing can be armed".into())
    }
}

/// Adds `entries` to what `name` is armed with.
pub fn arm_more(name: &'static str, entries: &[(Action, String)]) -> Result<(), String> {
    #[cfg(feature = "failpoints")]
    {
        armed::arm_more(name, entries)
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = (name, entries);
        Err("built without the `failpoints` feature: nothing can be armed".into())
    }
}

/// Disarms every failpoint.
pub fn disarm_all() {
    #[cfg(feature = "failpoints")]
    armed::disarm_all();
    STALL_GATES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
}

#[cfg(feature = "failpoints")]
mod armed {
    use std::collections::{BTreeMap, HashSet};
    use std::sync::Mutex;

    use super::{Action, ALL, PARTS, PREPROCESS, SECOND_OPINION};

    /// `(point, subject)` pairs that already fired: each fires once.
    static FIRED: Mutex<Option<HashSet<(String, String)>>> = Mutex::new(None);
    static COUNTS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

    pub(super) fn arm(name: &'static str, entries: &[(Action, String)]) -> Result<(), String> {
        let known = [ALL, SECOND_OPINION, PREPROCESS, PARTS];
        if !known.iter().any(|list| list.contains(&name)) {
            return Err(format!("no failpoint named {name:?}"));
        }
        let argument = entries
            .iter()
            .map(|(action, subject)| format!("{}@{subject}", action.spec()))
            .collect::<Vec<_>>()
            .join(";");
        fail::cfg(name, &format!("return({argument})"))
    }

    /// Serialises `arm_more`'s read-modify-write of a point's configuration.
    static ARMING: Mutex<()> = Mutex::new(());

    pub(super) fn arm_more(name: &'static str, entries: &[(Action, String)]) -> Result<(), String> {
        let _arming = ARMING.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<(Action, String)> = fail::list()
            .into_iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, actions)| {
                actions
                    .strip_prefix("return(")
                    .and_then(|a| a.strip_suffix(')'))
                    .unwrap_or_default()
                    .split(';')
                    .filter_map(|entry| {
                        let (action, subject) = entry.split_once('@')?;
                        Some((Action::parse(action)?, subject.to_owned()))
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        all.extend_from_slice(entries);
        arm(name, &all)
    }

    pub(super) fn disarm_all() {
        for name in ALL {
            fail::remove(name);
        }
        if let Ok(mut fired) = FIRED.lock() {
            *fired = None;
        }
    }

    /// The action armed at `name` for `subject`, if it has not fired yet; marks it fired.
    pub(super) fn take(name: &'static str, subject: &str) -> Option<Action> {
        let argument = fail::eval(name, |arg| arg.unwrap_or_default())?;
        let action = argument.split(';').find_map(|entry| {
            let (action, target) = entry.split_once('@')?;
            (target == subject).then(|| Action::parse(action)).flatten()
        })?;
        let mut fired = FIRED.lock().unwrap_or_else(|p| p.into_inner());
        if !fired
            .get_or_insert_with(HashSet::new)
            .insert((name.to_owned(), subject.to_owned()))
        {
            return None;
        }
        *COUNTS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_owned())
            .or_default() += 1;
        Some(action)
    }

    pub(super) fn fired_subjects() -> std::collections::BTreeSet<(String, String)> {
        FIRED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .flatten()
            .cloned()
            .collect()
    }

    pub(super) fn fired() -> BTreeMap<String, u64> {
        COUNTS.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_say_where_they_are_and_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for name in ALL {
            let (stage, point) = name.split_once('.').expect("stage.point");
            assert!(
                ["intake", "submit", "webhook", "parse", "reconcile", "batch"].contains(&stage),
                "{name}"
            );
            assert!(
                point.starts_with("before_") || point.starts_with("after_"),
                "{name}"
            );
            assert!(seen.insert(name), "{name} twice");
        }
    }

    #[test]
    fn actions_round_trip_through_their_spelling() {
        for action in [
            Action::Crash,
            Action::Error,
            Action::Stall(Duration::from_millis(6000)),
        ] {
            assert_eq!(Action::parse(&action.spec()), Some(action));
        }
        assert_eq!(Action::parse("explode"), None);
    }

    #[cfg(feature = "failpoints")]
    #[tokio::test]
    async fn an_armed_point_fires_once_for_its_subject_only() {
        let name = "submit.before_vendor_call";
        arm(name, &[(Action::Error, "doc-a".into())]).unwrap();
        assert!(check(name, "doc-b").await.is_ok(), "another document");
        assert_eq!(
            check(name, "doc-a").await,
            Err(Injected { name, after: false })
        );
        assert!(check(name, "doc-a").await.is_ok(), "once");
        assert!(arm("submit.nowhere", &[]).is_err());
        disarm_all();
    }
}
