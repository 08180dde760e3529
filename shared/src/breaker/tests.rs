use super::*;

fn window(calls: u64, failures: u64) -> Window {
    Window { calls, failures }
}

#[test]
fn it_opens_past_the_error_rate_only_once_there_are_enough_calls() {
    let policy = BreakerPolicy::default();
    assert_eq!(
        policy.should_open(window(9, 9), Outcome::ServerError),
        None,
        "too few calls"
    );
    assert_eq!(
        policy.should_open(window(10, 5), Outcome::ServerError),
        None,
        "at the rate"
    );
    let reason = policy.should_open(window(10, 6), Outcome::Timeout).unwrap();
    assert_eq!(reason, "error rate 60% over 10 calls in 2 min");
    assert_eq!(
        policy.should_open(window(100, 90), Outcome::Success),
        None,
        "a success opens nothing"
    );
}

#[test]
fn an_auth_failure_opens_at_once() {
    let policy = BreakerPolicy::default();
    assert_eq!(
        policy
            .should_open(window(1, 1), Outcome::AuthFailure)
            .as_deref(),
        Some("auth_failure")
    );
}

#[test]
fn settings_are_read_and_checked() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    let policy = BreakerPolicy::from_lookup(&env(&[
        ("BREAKER_ERROR_RATE", "0.25"),
        ("BREAKER_MIN_CALLS", "20"),
        ("BREAKER_WINDOW_MINUTES", "5"),
        ("BREAKER_COOL_DOWN_SECONDS", "90"),
        ("BREAKER_PROBE_LEASE_SECONDS", "15"),
    ]))
    .unwrap();
    assert_eq!(
        (
            policy.error_rate,
            policy.min_calls,
            policy.window_minutes,
            policy.cool_down,
            policy.probe_lease
        ),
        (
            0.25,
            20,
            5,
            Duration::from_secs(90),
            Duration::from_secs(15)
        )
    );
    let wrong = BreakerPolicy::from_lookup(&env(&[("BREAKER_ERROR_RATE", "1.5")])).unwrap_err();
    assert_eq!(wrong.name, "BREAKER_ERROR_RATE");
    assert_eq!(
        BreakerPolicy::from_lookup(&env(&[])).unwrap(),
        BreakerPolicy::default()
    );
}
