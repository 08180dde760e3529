//! `ocrbridge quality` against the local stack: runs listed, a run shown with the documents that
//! flipped, a baseline pinned only with --apply, an unknown run refused.

mod support;

use std::time::Duration;

use ocrbridge::job::BenchmarkRun;
use ocrbridge::quality::pack::Pack;
use ocrbridge_local::pipeline::{Pipeline, PipelineOptions};
use ocrbridge_local::quality::{run_once, runner, upload_pack};
use ocrbridge_tests::{set_faults, stack};
use serde_json::{json, Value};
use support::{env_file, json, ocrbridge};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_listed_shown_and_pinned_by_the_operator() {
    let s = stack().await;
    let p = Pipeline::start(s.clients.clone(), &s.stack, PipelineOptions::default())
        .await
        .unwrap();
    // The default pack's invoices: text PDFs the simulator reads right.
    let dir = std::env::temp_dir()
        .join(format!("cli-quality-{}", std::process::id()))
        .join("invoices-only");
    std::fs::create_dir_all(dir.join("invoices")).unwrap();
    let from =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/packs/default/invoices");
    for entry in std::fs::read_dir(&from).unwrap() {
        let path = entry.unwrap().path();
        // invoices/intl/: the other languages, not read right by the simulator.
        if path.is_file() {
            std::fs::copy(&path, dir.join("invoices").join(path.file_name().unwrap())).unwrap();
        }
    }
    let pack = Pack::load(&dir).unwrap();
    let prefix = upload_pack(&p, &pack, &dir).await.unwrap();
    let runner = runner(&p, &s.stack, "sim").unwrap();
    let env = env_file(&s);
    let timeout = Duration::from_secs(300);

    let base = BenchmarkRun::parse("bq-cli-1").unwrap();
    run_once(&p, &runner, &pack.name, &prefix, &base, timeout)
        .await
        .unwrap();
    let dry = ocrbridge(&env, &["quality", "pin", "bq-cli-1"]).await;
    assert!(dry.status.success());
    assert!(String::from_utf8_lossy(&dry.stdout).contains("dry run"));
    assert!(
        runner
            .store
            .baseline(&pack.name, "sim")
            .await
            .unwrap()
            .is_none(),
        "a dry run pins nothing"
    );
    let pinned = ocrbridge(&env, &["quality", "pin", "bq-cli-1", "--apply", "--json"]).await;
    assert_eq!(json(&pinned)["applied"], true);
    assert_eq!(
        runner
            .store
            .baseline(&pack.name, "sim")
            .await
            .unwrap()
            .unwrap()
            .run_id,
        "bq-cli-1"
    );

    set_faults(
        &p.sim,
        json!({ "model_update": { "field": "total", "share": 1.0 } }),
    )
    .await;
    let after = BenchmarkRun::parse("bq-cli-2").unwrap();
    run_once(&p, &runner, &pack.name, &prefix, &after, timeout)
        .await
        .unwrap();

    let runs = json(&ocrbridge(&env, &["quality", "runs", "--json"]).await);
    let rows = runs["runs"].as_array().unwrap();
    let row = |id: &str| rows.iter().find(|r| r["run_id"] == id).cloned().unwrap();
    assert_eq!(row("bq-cli-2")["regressions"], "invoice.total");
    assert_eq!(row("bq-cli-2")["baseline_run"], "bq-cli-1");
    assert_eq!(row("bq-cli-1")["regressions"], Value::Null);
    assert!(row("bq-cli-2")["report"]
        .as_str()
        .unwrap()
        .ends_with("benchmarks/bq-cli-2/report.html"));

    let shown = ocrbridge(&env, &["quality", "show", "bq-cli-2"]).await;
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("invoice.total flipped right → wrong"),
        "{text}"
    );
    for (document, _) in &pack.documents {
        assert!(
            text.contains(&document.key),
            "{} is listed: {text}",
            document.key
        );
    }
    let missing = ocrbridge(&env, &["quality", "show", "bq-nope"]).await;
    assert_eq!(
        missing.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}
