//! `ocrbridge-local bench-second-opinion` (`make bench-second-opinion`): the quality pack read by
//! the first vendor alone (A), the second alone (B), and by a route of both with
//! `SECOND_OPINION` on (A+B), each on a fresh local stack, scored per field beside its cost.
//!
//! A+B's fields are A's (a second opinion never replaces a value: it completes a result both
//! read alike, or keeps it in review with both readings), so its accuracy is A's; what it
//! changes is what goes out without a person: the review share falls where B agrees, and a
//! wrong value both vendors read alike goes out unreviewed. The table shows both, per field.

use std::collections::BTreeMap;
use std::time::Duration;

use ocrbridge::aws::AwsClients;
use ocrbridge::cost::Decimal;
use ocrbridge::job::{BenchmarkRun, JobId, JobState};
use ocrbridge::ledger::Ledger;
use ocrbridge::quality::score::DocumentScore;
use ocrbridge::quality::Pack;
use ocrbridge::second_opinion::Outcome;
use ocrbridge::vendors::select::VendorKind;
use vendor_sim::faults::FaultConfig;
use vendor_sim::model_update::ModelUpdate;

use crate::cli::LocalOptions;
use crate::pipeline::{FallbackVendor, Pipeline, PipelineOptions};
use crate::quality;

/// What the bench is asked.
pub struct Args {
    pub pack: std::path::PathBuf,
    pub first: VendorKind,
    pub second: VendorKind,
    /// The rules that ask for a second opinion in the A+B run, for every profile of the pack
    /// (`total_mismatch,low_confidence`).
    pub triggers: String,
    /// The first vendor's silent model update, so that the two vendors read differently (the
    /// twins share one engine: without it they agree on everything).
    pub model_update: Option<String>,
    pub timeout: Duration,
}

/// One arm's scored run.
pub struct Arm {
    pub label: String,
    pub documents: Vec<DocumentScore>,
    /// What the documents cost at their vendor (the benchmark's spend).
    pub billed: Decimal,
    /// What the second opinions cost at the second vendor (`second_pass`).
    pub second_pass: Decimal,
    /// Second opinions by outcome.
    pub opinions: BTreeMap<&'static str, u64>,
}

pub async fn run(
    options: &LocalOptions,
    clients: AwsClients,
    args: Args,
) -> Result<String, String> {
    let pack = Pack::load(&args.pack).map_err(|e| e.to_string())?;
    let model_update = args
        .model_update
        .as_deref()
        .map(ModelUpdate::parse)
        .transpose()
        .map_err(|e| e.to_string())?;
    // The pack's profiles, each routed to both vendors and asking on the same rules.
    let profiles: std::collections::BTreeSet<String> = pack
        .documents
        .iter()
        .map(|(d, _)| ocrbridge::quality::score::profile_of_key(&d.key))
        .collect();
    let per_profile = |each: &dyn Fn(&str) -> String| {
        profiles
            .iter()
            .map(|p| each(p))
            .collect::<Vec<_>>()
            .join(";")
    };
    let routes = per_profile(&|p| format!("{p}={},{}", args.first, args.second));
    let second_opinion = per_profile(&|p| format!("{p}:{}", args.triggers));
    let arms = [
        (
            format!("A ({})", args.first),
            args.first,
            None,
            model_update.clone(),
        ),
        (format!("B ({})", args.second), args.second, None, None),
        (
            format!("A+B ({}, then {})", args.first, args.second),
            args.first,
            Some(FallbackVendor {
                vendor: args.second,
                routes: routes.clone(),
            }),
            model_update.clone(),
        ),
    ];
    let mut out = Vec::new();
    for (label, vendor, fallback, update) in arms {
        eprintln!(
            "bench-second-opinion: {label} on {} documents",
            pack.documents.len()
        );
        let environment = if fallback.is_some() {
            vec![("SECOND_OPINION".to_owned(), second_opinion.clone())]
        } else {
            vec![]
        };
        out.push(
            arm(
                options,
                &clients,
                &pack,
                &args,
                label,
                PipelineOptions {
                    vendor,
                    faults: FaultConfig {
                        model_update: update,
                        ..Default::default()
                    },
                    fallback,
                    environment,
                    ..PipelineOptions::default()
                },
            )
            .await?,
        );
    }
    Ok(table(&out, &second_opinion, args.model_update.as_deref()))
}

async fn arm(
    options: &LocalOptions,
    clients: &AwsClients,
    pack: &Pack,
    args: &Args,
    label: String,
    pipeline_options: PipelineOptions,
) -> Result<Arm, String> {
    let now = ocrbridge::time::UnixMillis::now().0;
    let stack_name = format!("so-{}", now / 1000);
    let stack =
        crate::cli::fresh_stack(options, clients, &stack_name, pipeline_options.vendor).await?;
    let vendor = pipeline_options.vendor;
    let pipeline =
        Pipeline::start_at(clients.clone(), &stack, pipeline_options, &options.endpoint).await?;
    let runner = quality::runner(&pipeline, &stack, vendor.as_str())?;
    let prefix = quality::upload_pack(&pipeline, pack, &args.pack).await?;
    let run = BenchmarkRun::parse(&format!("so-{now}")).map_err(|e| e.to_string())?;
    let ledger = pipeline.intake.ledger.clone();
    let (record, _) = quality::run_until_scored(
        &pipeline,
        &runner,
        &pack.name,
        &prefix,
        &run,
        args.timeout,
        |record| {
            let ledger = ledger.clone();
            async move { !any_pending(&ledger, &record.documents).await }
        },
    )
    .await?;
    let mut billed = Decimal::ZERO;
    let mut second_pass = Decimal::ZERO;
    let mut opinions = BTreeMap::new();
    for document in &record.documents {
        billed += document
            .cost
            .as_deref()
            .and_then(|c| c.parse::<Decimal>().ok())
            .unwrap_or_default();
        let Some(job) = job_of(&ledger, document).await else {
            continue;
        };
        let Some(opinion) = job.second_opinion else {
            continue;
        };
        *opinions.entry(opinion.outcome.as_str()).or_default() += 1;
        if let Ok(Some(child)) = ledger.get_job(&opinion.job_id).await {
            second_pass += child.cost.and_then(|c| c.actual).unwrap_or_default();
        }
    }
    Ok(Arm {
        label,
        documents: record.documents,
        billed,
        second_pass,
        opinions,
    })
}

async fn job_of(ledger: &Ledger, document: &DocumentScore) -> Option<ocrbridge::job::Job> {
    let id = JobId::parse(document.job_id.as_deref()?).ok()?;
    ledger.get_job(&id).await.ok().flatten()
}

/// Whether a document's job waits in review on a second opinion not yet decided.
async fn any_pending(ledger: &Ledger, documents: &[DocumentScore]) -> bool {
    for document in documents {
        if let Some(job) = job_of(ledger, document).await {
            let pending = job
                .second_opinion
                .as_ref()
                .is_some_and(|o| o.outcome == Outcome::Pending);
            if pending && job.state == JobState::NeedsReview {
                return true;
            }
        }
    }
    false
}

/// One arm's count of one field.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    values: u64,
    correct: u64,
    /// Wrong values in a job that completed: out without a person.
    wrong_out: u64,
}

/// Per profile and field, each arm's accuracy and its wrong values that went out unreviewed;
/// per arm, the review share and the money.
pub fn table(arms: &[Arm], triggers: &str, model_update: Option<&str>) -> String {
    let mut lines = vec![format!(
        "second opinion: SECOND_OPINION={triggers}{}",
        model_update.map_or(String::new(), |m| format!(
            "; the first vendor's silent model update {m}"
        ))
    )];
    let mut fields: BTreeMap<(String, String), Vec<Tally>> = BTreeMap::new();
    for (i, arm) in arms.iter().enumerate() {
        for document in &arm.documents {
            let completed = document.state == JobState::Completed.as_str();
            for (name, field) in &document.fields {
                let row = fields
                    .entry((document.profile.clone(), name.clone()))
                    .or_insert_with(|| vec![Tally::default(); arms.len()]);
                row[i].values += 1;
                if field.correct {
                    row[i].correct += 1;
                } else if completed {
                    row[i].wrong_out += 1;
                }
            }
        }
    }
    let header: Vec<String> = arms
        .iter()
        .map(|a| format!("{:>26}", format!("{}: acc / wrong out", short(&a.label))))
        .collect();
    lines.push(format!("{:<26}{}", "profile.field", header.join("")));
    for ((profile, field), row) in &fields {
        let cells: Vec<String> = row
            .iter()
            .map(|t| {
                let acc = if t.values == 0 {
                    "-".to_owned()
                } else {
                    format!("{:.1}%", 100.0 * t.correct as f64 / t.values as f64)
                };
                format!("{:>26}", format!("{acc} / {}", t.wrong_out))
            })
            .collect();
        lines.push(format!(
            "{:<26}{}",
            format!("{profile}.{field}"),
            cells.join("")
        ));
    }
    lines.push(String::new());
    for arm in arms {
        let n = arm.documents.len().max(1);
        let reviewed = arm
            .documents
            .iter()
            .filter(|d| d.state == JobState::NeedsReview.as_str())
            .count();
        let total = arm.billed + arm.second_pass;
        lines.push(format!(
            "{}: {} documents, {reviewed} in review ({:.1}%); billed ${:.4} + second_pass ${:.4} = ${:.4} (${:.5}/document); opinions {:?}",
            arm.label,
            arm.documents.len(),
            100.0 * reviewed as f64 / n as f64,
            arm.billed,
            arm.second_pass,
            total,
            total / Decimal::from(n as u64),
            arm.opinions
        ));
    }
    lines.join("\n")
}

fn short(label: &str) -> &str {
    label.split_whitespace().next().unwrap_or(label)
}
