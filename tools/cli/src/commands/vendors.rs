//! `ocrbridge vendors`: each vendor's breaker (`ocrbridge::breaker`) — its state, its recent
//! error rate and its share of the calls — and opening or closing one by hand (`open NAME`,
//! `close NAME`; dry runs until `--apply`). Submit consults them: while a vendor's breaker is
//! open, new submissions take the next vendor in their profile's route (`VENDOR_ROUTES`), or
//! wait when there is none — so opening one by hand is how an operator fails over.

use std::time::Duration;

use ocrbridge::breaker::{Breaker, BreakerPolicy, BreakerState};
use ocrbridge::time::UnixMillis;
use ocrbridge::vendors::route::RouteTable;
use serde_json::json;

use crate::output::{emit, Table};
use crate::{CliError, Target};

fn breaker(target: &Target, vendor: &str) -> Result<Breaker, CliError> {
    let policy = BreakerPolicy::from_lookup(&|k| target.env.get(k).cloned())
        .map_err(|e| CliError::Usage(e.to_string()))?;
    Ok(Breaker {
        ledger: target.ledger(),
        vendor: vendor.to_owned(),
        policy,
    })
}

fn until(t: UnixMillis) -> String {
    t.to_rfc3339().unwrap_or_default()
}

fn describe(state: &BreakerState) -> String {
    match state {
        BreakerState::Closed => "closed".into(),
        BreakerState::Open { until: u, reason } => format!("open until {}: {reason}", until(*u)),
        BreakerState::HalfOpen {
            probe_until: Some(u),
        } => {
            format!("half-open, probing until {}", until(*u))
        }
        BreakerState::HalfOpen { probe_until: None } => "half-open".into(),
    }
}

/// The breakers of `names` (when none is named, the stack's vendor and every vendor its routes
/// name).
pub async fn list(target: &Target, names: &[String], json_mode: bool) -> Result<(), CliError> {
    let names: Vec<String> = if names.is_empty() {
        let routes = RouteTable::parse(target.env.get("VENDOR_ROUTES").map(String::as_str))
            .map_err(|e| CliError::Usage(e.to_string()))?;
        let mut names = vec![target.vendor().to_owned()];
        for kind in routes.vendors() {
            if !names.iter().any(|n| n == kind.as_str()) {
                names.push(kind.as_str().to_owned());
            }
        }
        names
    } else {
        names.to_vec()
    };
    let now = UnixMillis::now();
    let mut rows = Vec::new();
    for name in &names {
        let b = breaker(target, name)?;
        let (state, _) = b.ledger.breaker_state(name).await?;
        let window = b.ledger.breaker_window(name, &b.policy, now).await?;
        rows.push((name.clone(), state, window, b.policy.window_minutes));
    }
    let total: u64 = rows.iter().map(|(_, _, w, _)| w.calls).sum();
    let share = |calls: u64| (total > 0).then(|| calls as f64 / total as f64);
    let rate = |calls: u64, failures: u64| (calls > 0).then(|| failures as f64 / calls as f64);
    let value = json!({
        "stack": target.name,
        "vendors": rows.iter().map(|(name, state, w, minutes)| json!({
            "vendor": name,
            "state": state.name(),
            "detail": describe(state),
            "window_minutes": minutes,
            "calls": w.calls,
            "failures": w.failures,
            "error_rate": rate(w.calls, w.failures),
            "share": share(w.calls),
        })).collect::<Vec<_>>(),
    });
    emit(json_mode, &value, || {
        let mut t = Table::new(&["vendor", "breaker", "calls", "error rate", "share"]);
        for (name, state, w, minutes) in &rows {
            let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.0}%", 100.0 * v));
            t.row(vec![
                name.clone(),
                describe(state),
                format!("{} in {minutes} min", w.calls),
                pct(rate(w.calls, w.failures)),
                pct(share(w.calls)),
            ]);
        }
        t.render()
    });
    Ok(())
}

/// Opens (`hold` for how long) or closes a vendor's breaker by hand.
pub async fn force(
    target: &Target,
    name: &str,
    hold: Option<Duration>,
    apply: bool,
    json_mode: bool,
) -> Result<(), CliError> {
    let b = breaker(target, name)?;
    let (before, _) = b.ledger.breaker_state(name).await?;
    let after = if apply {
        Some(b.force(hold, UnixMillis::now()).await?)
    } else {
        None
    };
    let wanted = if hold.is_some() { "open" } else { "closed" };
    emit(
        json_mode,
        &json!({
            "vendor": name,
            "applied": apply,
            "before": before.name(),
            "after": after.as_ref().map(BreakerState::name),
        }),
        || match &after {
            Some(state) => format!("{name}: {} → {}", describe(&before), describe(state)),
            None => format!(
                "dry run: {name} is {}; it would be {wanted}; add --apply",
                describe(&before)
            ),
        },
    );
    Ok(())
}
