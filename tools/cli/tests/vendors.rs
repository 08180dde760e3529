//! `ocrbridge vendors` against the local stack: the breakers' state, error rate and share of
//! calls as the functions counted them, and failing over by hand (a dry run until `--apply`).

mod support;

use ocrbridge::breaker::{Breaker, BreakerPolicy, Outcome};
use ocrbridge::time::UnixMillis;
use ocrbridge_tests::stack;
use serde_json::Value;
use support::{env_file, json, ocrbridge};

fn vendor<'a>(listed: &'a Value, name: &str) -> &'a Value {
    listed["vendors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["vendor"] == name)
        .unwrap_or_else(|| panic!("no {name} in {listed}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendors_show_their_breakers_and_an_operator_fails_over_by_hand() {
    let s = stack().await;
    let env = env_file(&s);
    let listed = json(&ocrbridge(&env, &["--json", "vendors"]).await);
    assert_eq!(vendor(&listed, "sim")["state"], "closed");
    assert_eq!(vendor(&listed, "sim")["calls"], 0);

    // What two vendors' calls left in the table: sim 3 of 4 fine, azure 1 of 1. Each call is a
    // container of its own: one that read the breaker closed acts on that for up to
    // `BREAKER_CLOSED_REUSE_MS` (the RUNBOOK's 5 seconds), and this test asks what a container
    // reading it now sees. Each writes its success at once (`BREAKER_SUCCESS_FLUSH_MS=0`): a
    // container that holds them would take them with it when it goes.
    let breaker = |name: &str| Breaker {
        ledger: ocrbridge::ledger::Ledger::new(
            s.clients.dynamodb.clone(),
            s.config.ledger_tables(),
        ),
        vendor: name.into(),
        policy: BreakerPolicy {
            success_flush: std::time::Duration::ZERO,
            ..BreakerPolicy::default()
        },
    };
    let now = UnixMillis::now();
    for outcome in [
        Outcome::Success,
        Outcome::Success,
        Outcome::ServerError,
        Outcome::Success,
    ] {
        breaker("sim").record(outcome, false, now).await.unwrap();
    }
    breaker("azure")
        .record(Outcome::Success, false, now)
        .await
        .unwrap();
    let listed = json(&ocrbridge(&env, &["--json", "vendors", "list", "sim", "azure"]).await);
    let (sim, azure) = (vendor(&listed, "sim"), vendor(&listed, "azure"));
    assert_eq!(
        (sim["calls"].as_u64(), sim["failures"].as_u64()),
        (Some(4), Some(1))
    );
    assert_eq!(sim["error_rate"], 0.25);
    assert_eq!(sim["share"], 0.8);
    assert_eq!(azure["share"], 0.2);

    // A dry run changes nothing; --apply opens it, and a container that reads it sees it open.
    let dry = json(&ocrbridge(&env, &["--json", "vendors", "open", "sim", "--for", "10m"]).await);
    assert_eq!(dry["applied"], false);
    assert!(matches!(
        breaker("sim").admit(UnixMillis::now()).await.unwrap(),
        ocrbridge::breaker::Admission::Allowed
    ));
    let out = ocrbridge(&env, &["vendors", "open", "sim", "--for", "10m", "--apply"]).await;
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("opened by an operator"));
    assert!(matches!(
        breaker("sim").admit(UnixMillis::now()).await.unwrap(),
        ocrbridge::breaker::Admission::Refused { .. }
    ));
    let listed = json(&ocrbridge(&env, &["--json", "vendors"]).await);
    assert_eq!(vendor(&listed, "sim")["state"], "open");
    let out = ocrbridge(&env, &["vendors", "close", "sim", "--apply"]).await;
    assert!(out.status.success(), "{out:?}");
    let listed = json(&ocrbridge(&env, &["--json", "vendors"]).await);
    assert_eq!(vendor(&listed, "sim")["state"], "closed");
}
