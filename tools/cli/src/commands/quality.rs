//! `ocrbridge quality`: the quality benchmark's runs (see `ocrbridge::quality`).
//!
//! - `runs`: every run in the benchmark table, newest first, with its regressions and report;
//! - `show RUN`: a run's per-field table against its baseline, and its flipped documents;
//! - `pin RUN --apply`: makes a scored run the baseline of its pack and vendor (dry run without
//!   `--apply`);
//! - `compare RUN_A RUN_B`: two runs paired per document and field, both ways (the A/B audit of
//!   a setting such as `PREPROCESS`); a run is a stored id or a `run.json` file.

use ocrbridge::quality::compare::{self as pairing, sign_test, RegressionPolicy};
use ocrbridge::quality::report;
use ocrbridge::quality::store::{RunStore, StoreError};
use ocrbridge::quality::RunRecord;
use serde_json::json;

use crate::output::{emit, Table};
use crate::{CliError, Target};

pub(crate) fn store(target: &Target) -> Result<RunStore, CliError> {
    let table = target.env.get("BENCHMARK_RUNS_TABLE").cloned().ok_or_else(|| {
        CliError::Usage(format!(
            "stack {} names no benchmark runs table (BenchmarkRunsTable); deploy the template with the benchmark function",
            target.name
        ))
    })?;
    Ok(RunStore {
        s3: target.clients.s3.clone(),
        dynamodb: target.clients.dynamodb.clone(),
        results_bucket: target.config.results_bucket.clone(),
        table,
    })
}

fn store_error(e: StoreError) -> CliError {
    match e {
        StoreError::NoSuchRun(run) => CliError::Refused(format!(
            "no stored benchmark run {run}; `ocrbridge quality runs` lists them"
        )),
        other => CliError::aws(other),
    }
}

pub async fn runs(target: &Target, json_mode: bool) -> Result<(), CliError> {
    let rows = store(target)?.rows().await.map_err(store_error)?;
    let value = serde_json::to_value(&rows).unwrap_or_default();
    emit(
        json_mode,
        &json!({ "stack": target.name, "runs": value }),
        || {
            let mut table = Table::new(&[
                "run",
                "state",
                "pack",
                "vendor",
                "docs",
                "baseline",
                "regressions",
                "report",
            ]);
            for r in &rows {
                let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
                table.row(vec![
                    r.run_id.clone(),
                    r.state.clone(),
                    dash(&r.pack),
                    dash(&r.vendor),
                    r.documents.map_or("-".into(), |n| n.to_string()),
                    dash(&r.baseline_run),
                    dash(&r.regressions),
                    dash(&r.report),
                ]);
            }
            if table.is_empty() {
                format!("stack {}: no benchmark runs yet", target.name)
            } else {
                format!(
                    "stack {}: benchmark runs\n\n{}",
                    target.name,
                    table.render()
                )
            }
        },
    );
    Ok(())
}

pub async fn show(target: &Target, run: &str, json_mode: bool) -> Result<(), CliError> {
    let record = store(target)?.get_run(run).await.map_err(store_error)?;
    let value = serde_json::to_value(&record).unwrap_or_default();
    emit(json_mode, &value, || {
        let mut out = format!(
            "run {} · pack {} · vendor {} · {} documents\n\n{}",
            record.run_id,
            record.pack,
            record.vendor,
            record.documents.len(),
            report::table(&record)
        );
        for c in record.comparison.iter().flat_map(|c| c.regressions()) {
            out.push_str(&format!(
                "\n{}.{} flipped right → wrong:\n",
                c.profile, c.field
            ));
            for f in &c.right_to_wrong {
                out.push_str(&format!(
                    "  {}: expected {}, baseline {}, now {} ({})\n",
                    f.key,
                    f.expected,
                    f.before.as_deref().unwrap_or("(null)"),
                    f.after.as_deref().unwrap_or("(null)"),
                    f.raw.as_deref().unwrap_or("-"),
                ));
            }
        }
        out
    });
    Ok(())
}

pub async fn pin(target: &Target, run: &str, apply: bool, json_mode: bool) -> Result<(), CliError> {
    let store = store(target)?;
    let record = store.get_run(run).await.map_err(store_error)?;
    if apply {
        store.pin_baseline(run).await.map_err(store_error)?;
    }
    emit(
        json_mode,
        &json!({"run": run, "pack": record.pack, "vendor": record.vendor, "applied": apply}),
        || {
            if apply {
                format!(
                    "{run} is now the baseline of pack {} with vendor {}",
                    record.pack, record.vendor
                )
            } else {
                format!(
                    "dry run: {run} would become the baseline of pack {} with vendor {}; add --apply",
                    record.pack, record.vendor
                )
            }
        },
    );
    Ok(())
}

/// Whether `run` names a run file rather than a stored run.
pub fn is_run_file(run: &str) -> bool {
    std::path::Path::new(run).is_file()
}

async fn load_run(target: Option<&Target>, run: &str) -> Result<RunRecord, CliError> {
    if is_run_file(run) {
        let bytes = std::fs::read(run).map_err(|e| CliError::Usage(format!("{run}: {e}")))?;
        return serde_json::from_slice(&bytes)
            .map_err(|e| CliError::Usage(format!("{run} is not a benchmark run: {e}")));
    }
    let target = target.ok_or_else(|| {
        CliError::Usage(format!("{run} is not a file; a stored run needs a stack"))
    })?;
    store(target)?.get_run(run).await.map_err(store_error)
}

/// One field of a paired comparison, with its flips counted and tested both ways.
struct PairedField<'a> {
    field: &'a pairing::FieldComparison,
    worse: u64,
    better: u64,
    p_worse: f64,
    p_better: f64,
    verdict: &'static str,
}

impl<'a> PairedField<'a> {
    fn of(field: &'a pairing::FieldComparison, policy: RegressionPolicy) -> Self {
        let (worse, better) = (
            field.right_to_wrong.len() as u64,
            field.wrong_to_right.len() as u64,
        );
        let (p_worse, p_better) = (
            sign_test(worse, worse + better),
            sign_test(better, worse + better),
        );
        let verdict = if field.regressed {
            "B WORSE"
        } else if p_better < policy.alpha && better > worse {
            "B better"
        } else {
            "-"
        };
        PairedField {
            field,
            worse,
            better,
            p_worse,
            p_better,
            verdict,
        }
    }
}

/// What a run cost at the vendor over the documents both runs scored.
fn cost_of(run: &RunRecord, paired: &std::collections::BTreeSet<&str>) -> ocrbridge::cost::Decimal {
    run.documents
        .iter()
        .filter(|d| paired.contains(d.key.as_str()))
        .filter_map(|d| d.cost.as_deref()?.parse::<ocrbridge::cost::Decimal>().ok())
        .sum()
}

pub async fn compare(
    target: Option<&Target>,
    run_a: &str,
    run_b: &str,
    json_mode: bool,
) -> Result<(), CliError> {
    let a = load_run(target, run_a).await?;
    let b = load_run(target, run_b).await?;
    if a.pack != b.pack {
        return Err(CliError::Refused(format!(
            "{} is of pack {} and {} of pack {}: only runs of one pack pair up",
            a.run_id, a.pack, b.run_id, b.pack
        )));
    }
    let policy = RegressionPolicy::default();
    let comparison = pairing::compare(&a.run_id, &a.documents, &b.documents, policy);
    let keys_a: std::collections::BTreeSet<&str> =
        a.documents.iter().map(|d| d.key.as_str()).collect();
    let paired: std::collections::BTreeSet<&str> = b
        .documents
        .iter()
        .map(|d| d.key.as_str())
        .filter(|k| keys_a.contains(k))
        .collect();
    let (cost_a, cost_b) = (cost_of(&a, &paired), cost_of(&b, &paired));
    let fields: Vec<PairedField> = comparison
        .fields
        .iter()
        .map(|f| PairedField::of(f, policy))
        .collect();
    let rows: Vec<serde_json::Value> = fields
        .iter()
        .map(|p| {
            let f = p.field;
            json!({
                "profile": f.profile,
                "field": f.field,
                "paired": f.paired,
                "accuracy_a": f.baseline_accuracy,
                "accuracy_b": f.accuracy,
                "right_to_wrong": p.worse,
                "wrong_to_right": p.better,
                "p_worse": p.p_worse,
                "p_better": p.p_better,
                "regressed": f.regressed,
            })
        })
        .collect();
    let value = json!({
        "run_a": a.run_id,
        "run_b": b.run_id,
        "pack": a.pack,
        "paired_documents": paired.len(),
        "cost_a": cost_a.to_string(),
        "cost_b": cost_b.to_string(),
        "fields": rows,
    });
    emit(json_mode, &value, || {
        let mut table = Table::new(&[
            "profile",
            "field",
            "paired",
            "A",
            "B",
            "A✓→B✗",
            "A✗→B✓",
            "p(worse)",
            "p(better)",
            "verdict",
        ]);
        for p in &fields {
            let f = p.field;
            table.row(vec![
                f.profile.clone(),
                f.field.clone(),
                f.paired.to_string(),
                format!("{:.0}%", f.baseline_accuracy * 100.0),
                format!("{:.0}%", f.accuracy * 100.0),
                p.worse.to_string(),
                p.better.to_string(),
                format!("{:.3}", p.p_worse),
                format!("{:.3}", p.p_better),
                p.verdict.to_owned(),
            ]);
        }
        format!(
            "A {} · B {} · pack {} · {} documents in both\ncost A {cost_a} · cost B {cost_b}\n\n{}",
            a.run_id,
            b.run_id,
            a.pack,
            paired.len(),
            table.render()
        )
    });
    Ok(())
}
