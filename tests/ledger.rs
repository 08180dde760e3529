//! The job ledger against moto: conditional writes, races, leases, fencing and dedupe.

use std::time::Duration;

use futures::future::join_all;
use ocrbridge::job::{
    ContentHash, DocumentKey, Job, JobState, NewJob, Profile, Reason, SourceObject,
};
use ocrbridge::ledger::{
    AttemptOutcome, BucketSpec, Change, Claim, Created, FenceError, LeaseError, LeaseStep, Ledger,
    RetryDebt, Take, TransitionError,
};
use ocrbridge::time::UnixMillis;
use ocrbridge_tests::{stack, unique_name};

fn new_job(content: &[u8], key: &str) -> NewJob {
    let profile = Profile::new("receipt").unwrap();
    let content = ContentHash::of(content);
    NewJob {
        channel: None,
        prepared: None,
        prep_compute: None,
        benchmark_run: None,
        key: DocumentKey::new(&content, &profile),
        profile,
        content,
        source: SourceObject {
            bucket: "uploads".into(),
            key: key.into(),
            version_id: None,
        },
        inspection: Default::default(),
    }
}

const T0: UnixMillis = UnixMillis(1_700_000_000_000);

fn at(offset_ms: u64) -> UnixMillis {
    UnixMillis(T0.0 + offset_ms)
}

async fn created(ledger: &Ledger, content: &[u8]) -> Job {
    match ledger
        .create_job(&new_job(content, "receipts/a.jpg"), T0)
        .await
        .unwrap()
    {
        Created::New(job) => job,
        Created::Existing(job) => panic!("expected a new job, found {job:?}"),
    }
}

/// A job moved to `Queued`, ready for the submit lease.
async fn queued(ledger: &Ledger) -> Job {
    let job = created(ledger, unique_name("doc").as_bytes()).await;
    ledger
        .transition(&job, JobState::Queued, Change::none(), at(1))
        .await
        .unwrap()
}

#[tokio::test]
async fn duplicate_document_key_returns_the_existing_job() {
    let s = stack().await;
    let first = created(&s.ledger, b"the same bytes").await;
    assert_eq!(first.state, JobState::Received);
    assert_eq!(first.version, 1);

    let again = s
        .ledger
        .create_job(&new_job(b"the same bytes", "receipts/copy.jpg"), at(500))
        .await
        .unwrap();
    match again {
        Created::Existing(existing) => {
            assert_eq!(existing, first, "the existing row comes back untouched");
            assert_eq!(existing.source.key, "receipts/a.jpg");
        }
        Created::New(job) => panic!("second create made a new job: {job:?}"),
    }

    let other = s
        .ledger
        .create_job(&new_job(b"different bytes", "receipts/b.jpg"), at(600))
        .await
        .unwrap();
    assert!(matches!(other, Created::New(ref j) if j.id != first.id));
}

#[tokio::test]
async fn concurrent_creates_of_one_document_make_one_job() {
    let s = stack().await;
    let content = unique_name("race");
    let results = join_all((0..8).map(|i| {
        let ledger = s.ledger.clone();
        let new = new_job(content.as_bytes(), &format!("receipts/{i}.jpg"));
        async move { ledger.create_job(&new, at(i)).await.unwrap() }
    }))
    .await;
    let winners: Vec<&Job> = results
        .iter()
        .filter_map(|r| match r {
            Created::New(job) => Some(job),
            Created::Existing(_) => None,
        })
        .collect();
    assert_eq!(winners.len(), 1, "exactly one create wins: {results:?}");
    for r in &results {
        assert_eq!(r.job(), winners[0], "every loser sees the winner's row");
    }
}

#[tokio::test]
async fn transitions_are_guarded_by_table_and_version() {
    let s = stack().await;
    let job = created(&s.ledger, unique_name("t").as_bytes()).await;

    let queued = s
        .ledger
        .transition(&job, JobState::Queued, Change::none(), at(10))
        .await
        .unwrap();
    assert_eq!(queued.state, JobState::Queued);
    assert_eq!(queued.version, 2);
    assert_eq!(queued.state_since, at(10));

    // A writer holding the old read loses, and learns the current row without a second read.
    match s
        .ledger
        .transition(
            &job,
            JobState::Rejected,
            Change::none().with_reason(Reason::new("x", "y")),
            at(20),
        )
        .await
    {
        Err(TransitionError::Stale { current, .. }) => assert_eq!(*current, queued),
        other => panic!("expected Stale, got {other:?}"),
    }

    // Illegal edges are refused before any write.
    assert!(matches!(
        s.ledger
            .transition(&queued, JobState::Completed, Change::none(), at(30))
            .await,
        Err(TransitionError::Illegal {
            from: JobState::Queued,
            to: JobState::Completed,
            ..
        })
    ));
    // Failure states must carry a reason.
    assert!(matches!(
        s.ledger
            .transition(&queued, JobState::Failed, Change::none(), at(30))
            .await,
        Err(TransitionError::ReasonRequired { .. })
    ));
    assert_eq!(s.ledger.get_job(&job.id).await.unwrap().unwrap(), queued);

    let failed = s
        .ledger
        .transition(
            &queued,
            JobState::Failed,
            Change::none().with_reason(Reason::new("max_age", "gave up after 24h")),
            at(40),
        )
        .await
        .unwrap();
    assert_eq!(
        failed.reason,
        Some(Reason::new("max_age", "gave up after 24h"))
    );
    // Every state it entered, in order, with when and why: the job's story for an operator.
    assert_eq!(
        failed
            .history
            .iter()
            .map(|h| (h.state, h.at, h.reason.as_deref()))
            .collect::<Vec<_>>(),
        [
            (JobState::Received, T0, None),
            (JobState::Queued, at(10), None),
            (JobState::Failed, at(40), Some("max_age")),
        ]
    );
}

#[tokio::test]
async fn a_transition_of_a_missing_job_is_reported_as_missing() {
    let s = stack().await;
    let mut ghost = created(&s.ledger, unique_name("ghost").as_bytes()).await;
    ghost.id = DocumentKey::new(&ContentHash::of(b"never created"), &ghost.profile).job_id();
    assert!(matches!(
        s.ledger
            .transition(&ghost, JobState::Queued, Change::none(), at(1))
            .await,
        Err(TransitionError::Missing(id)) if id == ghost.id
    ));
}

#[tokio::test]
async fn two_workers_race_for_one_lease_and_exactly_one_wins() {
    let s = stack().await;
    // Many rounds: a non-atomic conditional write (moto's threaded server without the DynamoDB
    // lock in tools/python/moto_server.py) lets two winners through in some of them.
    for round in 0..20 {
        let job = queued(&s.ledger).await;
        let results = join_all((0..6).map(|i| {
            let ledger = s.ledger.clone();
            let job = job.clone();
            async move {
                ledger
                    .acquire_lease(
                        &job,
                        LeaseStep::Submit,
                        &format!("w{i}"),
                        at(60_000),
                        at(100),
                    )
                    .await
            }
        }))
        .await;
        let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        for r in &results {
            if let Err(e) = r {
                assert!(
                    matches!(e, LeaseError::Held { owner, .. } if owner == &winners[0].owner),
                    "losers see the winner's live lease, got {e:?}"
                );
            }
        }
        let stored = s.ledger.get_job(&job.id).await.unwrap().unwrap();
        assert_eq!(stored.state, JobState::Submitting);
        assert_eq!(stored.lease.unwrap().owner, winners[0].owner);
    }
}

#[tokio::test]
async fn a_stale_owner_is_fenced_out_after_a_takeover() {
    let s = stack().await;
    let job = queued(&s.ledger).await;

    // A takes the lease until t=1s and records that it is about to call the vendor…
    let a = s
        .ledger
        .acquire_lease(&job, LeaseStep::Submit, "worker-a", at(1_000), at(100))
        .await
        .unwrap();
    assert_eq!(a.inherited_attempt, None);
    let a = s
        .ledger
        .record_attempt(&a, "attempt-a", at(200))
        .await
        .unwrap();

    // …while the lease is live nobody can take over…
    let current = s.ledger.get_job(&job.id).await.unwrap().unwrap();
    assert!(matches!(
        s.ledger
            .acquire_lease(&current, LeaseStep::Submit, "worker-b", at(9_000), at(900))
            .await,
        Err(LeaseError::Held { ref owner, .. }) if owner == "worker-a"
    ));

    // …then A stalls past its lease and B takes over, told that A may have reached the vendor.
    let b = s
        .ledger
        .acquire_lease(
            &current,
            LeaseStep::Submit,
            "worker-b",
            at(9_000),
            at(1_000),
        )
        .await
        .unwrap();
    let inherited = b.inherited_attempt.clone().expect("A's attempt is visible");
    assert_eq!(inherited.attempt_id, "attempt-a");
    assert_eq!(inherited.attempted_at, at(200));

    // A wakes up: every write it tries is rejected and changes nothing.
    let before = s.ledger.get_job(&job.id).await.unwrap().unwrap();
    assert!(matches!(
        s.ledger
            .complete_lease(
                &a,
                JobState::Submitted,
                Change::none().with_vendor_job_id("vendor-a"),
                at(1_100)
            )
            .await,
        Err(FenceError::Lost { ref owner, current: Some(ref cur), .. })
            if owner == "worker-a" && cur.lease.as_ref().unwrap().owner == "worker-b"
    ));
    assert!(matches!(
        s.ledger
            .release_lease(&a, AttemptOutcome::NotReached, RetryDebt::Unchanged)
            .await,
        Err(FenceError::Lost { .. })
    ));
    assert_eq!(s.ledger.get_job(&job.id).await.unwrap().unwrap(), before);

    // B finishes normally.
    let done = s
        .ledger
        .complete_lease(
            &b,
            JobState::Submitted,
            Change::none().with_vendor_job_id("vendor-b"),
            at(1_200),
        )
        .await
        .unwrap();
    assert_eq!(done.state, JobState::Submitted);
    assert_eq!(done.vendor_job_id.as_deref(), Some("vendor-b"));
    assert_eq!(done.lease, None, "completing ends the lease");
}

#[tokio::test]
async fn an_expired_lease_refuses_to_start_a_side_effect() {
    let s = stack().await;
    let job = queued(&s.ledger).await;
    let lease = s
        .ledger
        .acquire_lease(&job, LeaseStep::Submit, "w", at(1_000), at(100))
        .await
        .unwrap();
    assert!(matches!(
        s.ledger.record_attempt(&lease, "late", at(1_000)).await,
        Err(FenceError::Expired { .. })
    ));
    assert!(matches!(
        s.ledger
            .acquire_lease(&job, LeaseStep::Submit, "w2", at(100), at(100))
            .await,
        Err(LeaseError::NoTimeLeft { .. })
    ));
}

#[tokio::test]
async fn releasing_clears_the_attempt_only_when_the_vendor_was_not_reached() {
    let s = stack().await;
    let job = queued(&s.ledger).await;

    let lease = s
        .ledger
        .acquire_lease(&job, LeaseStep::Submit, "w1", at(5_000), at(100))
        .await
        .unwrap();
    let lease = s
        .ledger
        .record_attempt(&lease, "a1", at(110))
        .await
        .unwrap();
    let released = s
        .ledger
        .release_lease(&lease, AttemptOutcome::MayHaveReached, RetryDebt::Unchanged)
        .await
        .unwrap();
    assert_eq!(released.state, JobState::Submitting);
    assert_eq!(released.lease, None);
    assert!(released.attempt.is_some());

    // Released, so the next worker needs no expiry to take it, and must reconcile first.
    let next = s
        .ledger
        .acquire_lease(&released, LeaseStep::Submit, "w2", at(5_000), at(200))
        .await
        .unwrap();
    assert_eq!(next.inherited_attempt.as_ref().unwrap().attempt_id, "a1");
    let next = s.ledger.record_attempt(&next, "a2", at(210)).await.unwrap();
    let released = s
        .ledger
        .release_lease(&next, AttemptOutcome::NotReached, RetryDebt::Unchanged)
        .await
        .unwrap();
    assert_eq!(released.attempt, None);

    let third = s
        .ledger
        .acquire_lease(&released, LeaseStep::Submit, "w3", at(5_000), at(300))
        .await
        .unwrap();
    assert_eq!(third.inherited_attempt, None);
}

#[tokio::test]
async fn leases_respect_where_the_job_is() {
    let s = stack().await;
    let fresh = created(&s.ledger, unique_name("early").as_bytes()).await;
    assert!(matches!(
        s.ledger
            .acquire_lease(&fresh, LeaseStep::Submit, "w", at(5_000), at(100))
            .await,
        Err(LeaseError::NotYet { .. })
    ));

    let job = queued(&s.ledger).await;
    let lease = s
        .ledger
        .acquire_lease(&job, LeaseStep::Submit, "w", at(5_000), at(100))
        .await
        .unwrap();
    let submitted = s
        .ledger
        .complete_lease(
            &lease,
            JobState::Submitted,
            Change::none().with_vendor_job_id("v1"),
            at(200),
        )
        .await
        .unwrap();
    // A redelivered submit message for a submitted job: acknowledge, do nothing.
    assert!(matches!(
        s.ledger
            .acquire_lease(&submitted, LeaseStep::Submit, "w2", at(5_000), at(300))
            .await,
        Err(LeaseError::AlreadyPast { ref current, .. }) if current.state == JobState::Submitted
    ));
    // Even from a stale copy of the job, the database's answer wins.
    assert!(matches!(
        s.ledger
            .acquire_lease(&job, LeaseStep::Submit, "w3", at(5_000), at(300))
            .await,
        Err(LeaseError::AlreadyPast { .. })
    ));
    // The parse lease moves ResultReady → Parsing, and completion must be legal from Parsing.
    let ready = s
        .ledger
        .transition(&submitted, JobState::ResultReady, Change::none(), at(400))
        .await
        .unwrap();
    let parse = s
        .ledger
        .acquire_lease(&ready, LeaseStep::Parse, "p", at(5_000), at(500))
        .await
        .unwrap();
    assert!(matches!(
        s.ledger
            .complete_lease(&parse, JobState::Submitted, Change::none(), at(600))
            .await,
        Err(FenceError::Transition(TransitionError::Illegal { .. }))
    ));
    let done = s
        .ledger
        .complete_lease(&parse, JobState::Completed, Change::none(), at(600))
        .await
        .unwrap();
    assert_eq!(done.state, JobState::Completed);
}

/// How long a webhook invocation may take to finish what its claim guards (its timeout).
const IN_PROGRESS: Duration = Duration::from_secs(10);

#[tokio::test]
async fn dedupe_claims_are_once_until_they_expire() {
    let s = stack().await;
    let id = unique_name("evt");
    let ttl = Duration::from_secs(600);
    let claim = |scope: &'static str, id: String, now| {
        let ledger = s.ledger.clone();
        async move {
            ledger
                .claim_once(scope, &id, ttl, IN_PROGRESS, now)
                .await
                .unwrap()
        }
    };

    let Claim::First(token) = claim("webhook", id.clone(), T0).await else {
        panic!("first claim")
    };
    // While the holder works, a second delivery is told to come back, not that it was handled.
    assert_eq!(
        claim("webhook", id.clone(), at(1_000)).await,
        Claim::InProgress { until: at(10_000) }
    );
    assert!(s
        .ledger
        .complete_claim("webhook", &id, &token)
        .await
        .unwrap());
    assert_eq!(
        claim("webhook", id.clone(), at(1_000)).await,
        Claim::Duplicate { claimed_at: T0 }
    );
    // The same id in another scope is independent.
    assert!(matches!(
        claim("other", id.clone(), at(1_000)).await,
        Claim::First(_)
    ));
    // Just before expiry it is still a duplicate; at expiry it counts as absent, although moto
    // (like DynamoDB, for a while) still holds the item.
    assert!(matches!(
        claim("webhook", id.clone(), at(599_000)).await,
        Claim::Duplicate { .. }
    ));
    assert!(matches!(
        claim("webhook", id, at(600_000)).await,
        Claim::First(_)
    ));
}

/// A holder that dies between its claim and the work (a crash, a timeout) does not turn the
/// sender's retries into duplicates for ever: once its time is up, the next delivery takes the
/// claim over, and the dead holder's late completion is refused.
#[tokio::test]
async fn a_claim_whose_holder_died_is_taken_over_when_its_time_is_up() {
    let s = stack().await;
    let id = unique_name("evt");
    let ttl = Duration::from_secs(600);
    let Claim::First(dead) = s
        .ledger
        .claim_once("webhook", &id, ttl, IN_PROGRESS, T0)
        .await
        .unwrap()
    else {
        panic!("first claim")
    };
    assert!(matches!(
        s.ledger
            .claim_once("webhook", &id, ttl, IN_PROGRESS, at(9_999))
            .await
            .unwrap(),
        Claim::InProgress { .. }
    ));
    let Claim::First(next) = s
        .ledger
        .claim_once("webhook", &id, ttl, IN_PROGRESS, at(10_000))
        .await
        .unwrap()
    else {
        panic!("taken over at the holder's deadline")
    };
    assert!(!s
        .ledger
        .complete_claim("webhook", &id, &dead)
        .await
        .unwrap());
    assert!(s
        .ledger
        .complete_claim("webhook", &id, &next)
        .await
        .unwrap());
    assert!(matches!(
        s.ledger
            .claim_once("webhook", &id, ttl, IN_PROGRESS, at(20_000))
            .await
            .unwrap(),
        Claim::Duplicate { .. }
    ));
}

#[tokio::test]
async fn a_claim_can_be_released_only_by_its_holder() {
    let s = stack().await;
    let id = unique_name("evt");
    let ttl = Duration::from_secs(600);
    let claim = |id: String, now| {
        let ledger = s.ledger.clone();
        async move {
            ledger
                .claim_once("webhook", &id, ttl, IN_PROGRESS, now)
                .await
                .unwrap()
        }
    };
    let Claim::First(token) = claim(id.clone(), T0).await else {
        panic!("first claim")
    };
    let Claim::First(other) = claim("x".into(), T0).await else {
        panic!("first claim")
    };
    assert!(!s
        .ledger
        .release_claim("webhook", &id, &other)
        .await
        .unwrap());
    assert!(matches!(
        claim(id.clone(), at(1)).await,
        Claim::InProgress { .. }
    ));
    assert!(s
        .ledger
        .release_claim("webhook", &id, &token)
        .await
        .unwrap());
    assert!(!s
        .ledger
        .release_claim("webhook", &id, &token)
        .await
        .unwrap());
    assert!(matches!(claim(id, at(2)).await, Claim::First(_)));
}

/// Two containers share one bucket: each starts from what it last saw, so each take is checked
/// against the other's writes, and a pause written by one stops the other.
#[tokio::test]
async fn token_buckets_are_shared_across_containers_and_takes_keep_pauses() {
    let s = stack().await;
    let a = s.ledger.clone();
    // A second container: its own ledger, its own memory of the bucket.
    let b = Ledger::new(s.clients.dynamodb.clone(), s.config.ledger_tables());
    let spec = BucketSpec {
        name: unique_name("bucket"),
        capacity: 3.0,
        refill_per_sec: 0.001,
    };
    let mut granted = 0;
    for (i, ledger) in [&a, &b, &a, &b, &a].into_iter().enumerate() {
        match ledger.take_tokens(&spec, 1.0, at(i as u64)).await.unwrap() {
            Take::Granted => granted += 1,
            Take::Denied { .. } => {}
        }
    }
    assert_eq!(granted, 3, "three tokens, however the takes interleave");

    let fresh = BucketSpec {
        name: unique_name("bucket"),
        ..spec
    };
    assert_eq!(
        a.take_tokens(&fresh, 1.0, at(0)).await.unwrap(),
        Take::Granted
    );
    // B pauses the bucket (a vendor's Retry-After) after A last saw it.
    b.pause_bucket(&fresh, at(60_000)).await.unwrap();
    match a.take_tokens(&fresh, 1.0, at(10)).await.unwrap() {
        Take::Denied { wait } => assert!(wait >= Duration::from_secs(59), "{wait:?}"),
        Take::Granted => panic!("a take from a stale memory erased the pause"),
    }
    // Once the pause is over, tokens flow again.
    assert_eq!(
        a.take_tokens(&fresh, 1.0, at(60_001)).await.unwrap(),
        Take::Granted
    );
}

/// The by-state index is sharded (`state_shard`); a walk through a state merges the shards:
/// every job exactly once, oldest first, whatever the page size, and the counts agree.
#[tokio::test]
async fn paging_through_a_state_merges_its_shards_exactly() {
    let s = stack().await;
    let mut created = Vec::new();
    for i in 0..40u64 {
        let job = s
            .ledger
            .create_job(&new_job(format!("sharded {i}").as_bytes(), "k"), at(i * 10))
            .await
            .unwrap()
            .job()
            .clone();
        created.push(job);
    }
    let shards: std::collections::BTreeSet<String> = created
        .iter()
        .map(|j| ocrbridge::ledger::state_shard(&j.id, JobState::Received))
        .collect();
    assert!(shards.len() > 4, "the jobs spread over shards: {shards:?}");
    assert_eq!(
        s.ledger.count_in_state(JobState::Received).await.unwrap(),
        40
    );
    for page in [1, 7, 40, 100] {
        let mut seen = Vec::new();
        let mut start = None;
        loop {
            let (jobs, next) = s
                .ledger
                .jobs_in_state_before(JobState::Received, at(10_000), page, start)
                .await
                .unwrap();
            assert!(jobs.len() <= page as usize);
            seen.extend(jobs);
            match next {
                Some(cursor) => start = Some(cursor),
                None => break,
            }
        }
        let ids: Vec<_> = seen.iter().map(|j| j.id.clone()).collect();
        let expected: Vec<_> = created.iter().map(|j| j.id.clone()).collect();
        assert_eq!(ids, expected, "page size {page}: oldest first, each once");
    }
    // Before a time: only the jobs that entered the state earlier.
    let (early, _) = s
        .ledger
        .jobs_in_state_before(JobState::Received, at(95), 100, None)
        .await
        .unwrap();
    assert_eq!(early.len(), 10);
    let recent = s
        .ledger
        .recent_in_state(JobState::Received, 3)
        .await
        .unwrap();
    let newest: Vec<_> = created.iter().rev().take(3).map(|j| j.id.clone()).collect();
    assert_eq!(
        recent.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        newest
    );
}

mod breaker {
    //! The vendor breaker (`ocrbridge::breaker`) with many containers on one table: each holds
    //! its own `Ledger` (its own client and caches), as separate Lambda containers do.

    use super::*;
    use ocrbridge::breaker::{Admission, Breaker, BreakerPolicy, BreakerState, Outcome};

    fn containers(s: &ocrbridge_tests::TestStack, vendor: &str, n: usize) -> Vec<Breaker> {
        (0..n)
            .map(|_| Breaker {
                ledger: Ledger::new(s.clients.dynamodb.clone(), s.config.ledger_tables()),
                vendor: vendor.to_owned(),
                policy: BreakerPolicy {
                    min_calls: 10,
                    cool_down: Duration::from_millis(1_500),
                    ..BreakerPolicy::default()
                },
            })
            .collect()
    }

    /// Every container reports its outcomes at once; returns how many transitions each won.
    async fn report(breakers: &[Breaker], outcomes: &[Outcome]) -> Vec<BreakerState> {
        let now = UnixMillis::now();
        let calls = outcomes.iter().enumerate().map(|(i, outcome)| {
            let b = &breakers[i % breakers.len()];
            async move { b.record(*outcome, false, now).await.unwrap() }
        });
        join_all(calls).await.into_iter().flatten().collect()
    }

    #[tokio::test]
    async fn failures_past_the_rate_open_it_once_for_every_container() {
        let s = stack().await;
        let vendor = unique_name("v");
        let breakers = containers(&s, &vendor, 6);
        // Three failures in five calls: too few calls to judge.
        let mut outcomes = vec![Outcome::Success; 2];
        outcomes.extend([Outcome::ServerError; 3]);
        assert_eq!(report(&breakers, &outcomes).await, vec![]);
        assert_eq!(
            breakers[0].admit(UnixMillis::now()).await.unwrap(),
            Admission::Allowed
        );
        // Nine more failures, reported at once by six containers: 12 of 14 failed.
        let moved = report(&breakers, &[Outcome::Timeout; 9]).await;
        assert_eq!(moved.len(), 1, "one container opened it: {moved:?}");
        assert!(
            matches!(&moved[0], BreakerState::Open { reason, .. } if reason.starts_with("error rate"))
        );
        for b in &breakers {
            assert!(
                matches!(
                    b.admit(UnixMillis::now()).await.unwrap(),
                    Admission::Refused { .. }
                ),
                "every container sees it open"
            );
        }
    }

    /// Issue #33: a success is held in its container and written with the vendor's next failure
    /// or once `success_flush` has passed, one `ADD` for all it held; the window a failure reads
    /// holds every call of the container that met it.
    #[tokio::test]
    async fn successes_are_written_in_one_add_with_the_next_failure_or_after_the_flush_interval() {
        let s = stack().await;
        let vendor = unique_name("v");
        let holding = |flush: Duration| Breaker {
            policy: BreakerPolicy {
                success_flush: flush,
                ..containers(&s, &vendor, 1)[0].policy.clone()
            },
            ..containers(&s, &vendor, 1).remove(0)
        };
        let window = |b: &Breaker| {
            let (ledger, policy) = (b.ledger.clone(), b.policy.clone());
            let vendor = vendor.clone();
            async move {
                ledger
                    .breaker_window(&vendor, &policy, UnixMillis::now())
                    .await
                    .unwrap()
            }
        };
        let a = holding(Duration::from_secs(600));
        for _ in 0..5 {
            a.record(Outcome::Success, false, UnixMillis::now())
                .await
                .unwrap();
        }
        assert_eq!(
            window(&a).await.calls,
            0,
            "five successes held, none written"
        );
        a.record(Outcome::ServerError, false, UnixMillis::now())
            .await
            .unwrap();
        let w = window(&a).await;
        assert_eq!(
            (w.calls, w.failures),
            (6, 1),
            "the failure wrote them with it"
        );

        // Past the interval, the next success writes what was held, itself included. Both in
        // one minute: a second success that fell in the next minute (the clock read after the
        // sleep, 0.6% of runs) starts that minute's count afresh and is rightly held, which
        // failed a CI run (7 calls for 8).
        let b = holding(Duration::from_millis(300));
        let this_minute = UnixMillis::now();
        b.record(Outcome::Success, false, this_minute)
            .await
            .unwrap();
        assert_eq!(window(&b).await.calls, 6, "held");
        tokio::time::sleep(Duration::from_millis(350)).await;
        b.record(Outcome::Success, false, this_minute)
            .await
            .unwrap();
        assert_eq!(
            window(&b).await.calls,
            8,
            "both written once the interval passed"
        );

        // 0: every success is written at once.
        let c = holding(Duration::ZERO);
        c.record(Outcome::Success, false, UnixMillis::now())
            .await
            .unwrap();
        assert_eq!(window(&c).await.calls, 9);
    }

    /// A count whose write fails part-way holds again only what it did not write: the earlier
    /// minute's successes it wrote are not counted a second time by the next count.
    #[tokio::test]
    async fn a_count_that_fails_part_way_does_not_count_twice_what_it_wrote() {
        use aws_sdk_dynamodb::types::AttributeValue;
        let s = stack().await;
        let vendor = unique_name("v");
        let ledger = Ledger::new(s.clients.dynamodb.clone(), s.config.ledger_tables());
        let policy = BreakerPolicy {
            success_flush: Duration::from_secs(600),
            ..BreakerPolicy::default()
        };
        const MINUTE: u64 = 60_000;
        let earlier = UnixMillis(UnixMillis::now().0 / MINUTE * MINUTE - MINUTE);
        let this_minute = UnixMillis(earlier.0 + MINUTE);
        for _ in 0..3 {
            ledger
                .breaker_count_success(&vendor, &policy, earlier)
                .await
                .unwrap();
        }
        // This minute's bucket holds `calls` as a string, so an `ADD` to it fails, after the
        // earlier minute's three successes were written.
        let bucket =
            |minute: u64| AttributeValue::S(format!("breaker#{vendor}#{}", minute / MINUTE));
        s.clients
            .dynamodb
            .put_item()
            .table_name(&s.config.dedupe_table)
            .item("dedupe_key", bucket(this_minute.0))
            .item("calls", AttributeValue::S("not a number".into()))
            .send()
            .await
            .unwrap();
        ledger
            .breaker_count(&vendor, Outcome::ServerError, &policy, this_minute)
            .await
            .expect_err("this minute's bucket refuses the ADD");
        s.clients
            .dynamodb
            .delete_item()
            .table_name(&s.config.dedupe_table)
            .key("dedupe_key", bucket(this_minute.0))
            .send()
            .await
            .unwrap();

        let window = ledger
            .breaker_count(&vendor, Outcome::ServerError, &policy, this_minute)
            .await
            .unwrap();
        assert_eq!(
            (window.calls, window.failures),
            (4, 1),
            "the three successes once, the failure that was written"
        );
    }

    /// Issue #33: a container acts on a closed breaker it read within `closed_reuse` without
    /// reading it again — so it may call once more after another container opened it — and the
    /// failure of that call reads it afresh: from then on it is refused.
    #[tokio::test]
    async fn a_container_that_remembers_it_closed_learns_it_is_open_at_its_first_failure() {
        let s = stack().await;
        let vendor = unique_name("v");
        let breakers = containers(&s, &vendor, 2);
        let (a, b) = (&breakers[0], &breakers[1]);
        assert_eq!(
            a.admit(UnixMillis::now()).await.unwrap(),
            Admission::Allowed
        );
        let moved = report(std::slice::from_ref(b), &[Outcome::ServerError; 12]).await;
        assert_eq!(moved.len(), 1, "b opened it: {moved:?}");
        assert_eq!(
            a.admit(UnixMillis::now()).await.unwrap(),
            Admission::Allowed,
            "a acts on the closed state it read a moment ago"
        );
        a.record(Outcome::ServerError, false, UnixMillis::now())
            .await
            .unwrap();
        assert!(
            matches!(
                a.admit(UnixMillis::now()).await.unwrap(),
                Admission::Refused { .. }
            ),
            "its failure read the breaker afresh"
        );
    }

    #[tokio::test]
    async fn after_the_cool_down_one_probe_goes_through_and_its_answer_decides() {
        let s = stack().await;
        let vendor = unique_name("v");
        let breakers = containers(&s, &vendor, 6);
        // A revoked key: one auth failure opens it.
        let moved = report(&breakers, &[Outcome::AuthFailure]).await;
        assert!(
            matches!(&moved[..], [BreakerState::Open { reason, .. }] if reason == "auth_failure")
        );

        for probe_fails in [true, false] {
            tokio::time::sleep(Duration::from_millis(1_600)).await;
            let now = UnixMillis::now();
            let admitted = join_all(breakers.iter().map(|b| b.admit(now))).await;
            let probes: Vec<usize> = admitted
                .iter()
                .enumerate()
                .filter(|(_, a)| matches!(a, Ok(Admission::Probe)))
                .map(|(i, _)| i)
                .collect();
            assert_eq!(probes.len(), 1, "exactly one probe: {admitted:?}");
            let prober = &breakers[probes[0]];
            let outcome = if probe_fails {
                Outcome::ServerError
            } else {
                Outcome::Success
            };
            let moved = prober
                .record(outcome, true, UnixMillis::now())
                .await
                .unwrap();
            if probe_fails {
                assert!(
                    matches!(moved, Some(BreakerState::Open { ref reason, .. }) if reason.contains("probe failed")),
                    "{moved:?}"
                );
                assert!(matches!(
                    breakers[0].admit(UnixMillis::now()).await.unwrap(),
                    Admission::Refused { .. }
                ));
            } else {
                assert_eq!(moved, Some(BreakerState::Closed));
                for b in &breakers {
                    assert_eq!(
                        b.admit(UnixMillis::now()).await.unwrap(),
                        Admission::Allowed
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn an_operator_opens_and_closes_it_by_hand() {
        let s = stack().await;
        let vendor = unique_name("v");
        let b = &containers(&s, &vendor, 1)[0];
        let now = UnixMillis::now();
        b.force(Some(Duration::from_secs(600)), now).await.unwrap();
        assert!(
            matches!(b.admit(now).await.unwrap(), Admission::Refused { until } if until.0 >= now.0 + 599_000)
        );
        b.force(None, now).await.unwrap();
        assert_eq!(b.admit(now).await.unwrap(), Admission::Allowed);
    }
}
