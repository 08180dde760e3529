//! `ocrbridge quality`: the quality benchmark's runs (see `ocrbridge::quality`).
//!
//! - `runs`: every run in the benchmark table, newest first, with its regressions and report;
//! - `show RUN`: a run's per-field table against its baseline, and its flipped documents;
//! - `pin RUN --apply`: makes a scored run the baseline of its pack and vendor (dry run without
//!   `--apply`).

use ocrbridge::quality::report;
use ocrbridge::quality::store::{RunStore, StoreError};
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
