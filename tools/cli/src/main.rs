//! `ocrbridge`: the operator's command line. See the crate docs and `ocrbridge --help`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use ocrbridge::job::JobState;
use ocrbridge_cli::commands::review::Decision;
use ocrbridge_cli::commands::{self, jobs};
use ocrbridge_cli::output::parse_duration;
use ocrbridge_cli::{CliError, Target};
use ocrbridge_local::cli::{LocalCommand, LocalOptions};

#[derive(Debug, Parser)]
#[command(
    name = "ocrbridge",
    version,
    about = "Operate an ocrbridge stack: status, jobs, review, DLQs, spot checks, secrets",
    after_help = "Exit codes: 0 done, 1 an AWS call failed, 2 usage, 3 not found, 4 refused, 5 no credentials."
)]
struct Cli {
    #[command(flatten)]
    target: TargetArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct TargetArgs {
    /// A deployed stack, by its CloudFormation name (the normal AWS credential chain).
    #[arg(long, global = true, env = "OCRBRIDGE_STACK")]
    stack: Option<String>,
    /// The local stack (`make dev` / `ocrbridge local demo --keep` write its environment to
    /// .local/stack.env).
    #[arg(long, global = true)]
    local: bool,
    /// A stack's environment file (`export NAME=value` lines, as `ocrbridge local provision
    /// --env-out` writes them).
    #[arg(long, global = true)]
    env_file: Option<PathBuf>,
    /// JSON instead of tables, for scripts.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Jobs by state with the oldest live one, queue and DLQ depths: the daily check.
    Status,
    /// List, show and retry jobs.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Work the NeedsReview queue.
    Review {
        #[command(subcommand)]
        command: ReviewCommand,
    },
    /// Each vendor's breaker: its state, recent error rate and share of calls; open or close
    /// one by hand (`open NAME`, `close NAME`).
    Vendors {
        #[command(subcommand)]
        command: Option<VendorsCommand>,
    },
    /// Dead-lettered messages, by reason; redrive what can succeed now.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Parse a job's result again (a job failed by a parser or schema problem, once fixed).
    Replay {
        #[command(subcommand)]
        command: ReplayCommand,
    },
    /// The monthly checkpoint: the live webhook, secrets, alarm routes, queues and DLQs, the
    /// benchmark — one line per check, exit 4 when any fails.
    Audit {
        /// The webhook function's URL (the stack's `WebhookUrl` output): a signed test delivery
        /// must be accepted there and a forged one refused with 401.
        #[arg(long, env = "OCRBRIDGE_WEBHOOK_URL")]
        webhook_url: Option<String>,
    },
    /// The weekly checkpoint: this week against the last — volume, cost per document and page,
    /// retries, duplicate suppression, failure reasons, latency percentiles, quality.
    Report {
        /// The report covers a week (the only period so far).
        #[arg(long, required = true)]
        week: bool,
        /// The week's last day (2026-11-29; it ends at the next UTC midnight) or an RFC 3339
        /// time; the week ends now without it.
        #[arg(long, value_parser = commands::report::parse_ending)]
        ending: Option<ocrbridge::time::UnixMillis>,
        /// Also write one self-contained HTML page with charts here.
        #[arg(long)]
        html: Option<std::path::PathBuf>,
    },
    /// What the vendor was paid, by vendor, model and profile: per document and per page, with
    /// failed-but-billed work, duplicates, retries and in-flight estimates on their own.
    Cost {
        /// Only documents that arrived at or after this: a date (2026-11-23), an RFC 3339
        /// time, or a duration back from now (7d).
        #[arg(long, value_parser = commands::cost::parse_instant)]
        since: Option<ocrbridge::time::UnixMillis>,
        /// Only documents that arrived before this (the same forms).
        #[arg(long, value_parser = commands::cost::parse_instant)]
        until: Option<ocrbridge::time::UnixMillis>,
        /// Lines by line (vendor, model, profile: the default), source, profile, model or day
        /// (cost per document by day: is cost rising faster than volume?).
        #[arg(long, default_value = "line", value_parser = commands::cost::parse_by)]
        by: ocrbridge::cost::CostBy,
        /// Prices the reviewers' time (USD an hour); without it, the stack's
        /// ReviewerHourlyRate parameter.
        #[arg(long, env = "OCRBRIDGE_REVIEWER_HOURLY_RATE", value_parser = commands::cost::parse_rate)]
        reviewer_hourly_rate: Option<ocrbridge::cost::Decimal>,
    },
    /// The quality benchmark's runs: list, show one against its baseline, pin a baseline.
    Quality {
        #[command(subcommand)]
        command: QualityCommand,
    },
    /// A few recently finished documents per workflow, with their fields and confidence.
    SpotCheck {
        #[arg(long, default_value_t = 3)]
        per_profile: usize,
    },
    /// Prove that alarms reach a person: fire one through its route and put it back.
    Alarms {
        #[command(subcommand)]
        command: AlarmsCommand,
    },
    /// Rotate a secret and follow the rotation.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// The local stack: moto, provisioning, the demo (as `ocrbridge-local`).
    Local {
        #[command(flatten)]
        options: LocalOptions,
        #[command(subcommand)]
        command: LocalCommand,
    },
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// Jobs by state, profile and age, newest state change first.
    List {
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// One job's whole story: history, attempt, vendor job, reasons, cost, where its files are.
    Show { job: String },
    /// Send Failed/Held jobs with a retryable reason back to Queued (a dry run without --apply).
    Retry {
        /// Job ids; or select with --reason and --since.
        jobs: Vec<String>,
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long)]
        apply: bool,
        /// Also resubmit jobs held because their last submission may have reached the vendor
        /// (submission_outcome_unknown): each may be a second charge, counted as
        /// DuplicateSubmissionRisk. Without it they are left held.
        #[arg(long)]
        accept_duplicate_risk: bool,
    },
}

#[derive(Debug, Args)]
struct FilterArgs {
    /// Only jobs in these states (repeatable).
    #[arg(long = "state")]
    states: Vec<JobState>,
    #[arg(long)]
    profile: Option<String>,
    /// Only jobs that entered their state within this long: 90s, 15m, 2h, 7d.
    #[arg(long, value_parser = parse_duration)]
    since: Option<u64>,
    /// Only jobs with this reason code.
    #[arg(long)]
    reason: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

impl FilterArgs {
    fn filter(&self) -> jobs::Filter {
        jobs::Filter {
            states: self.states.clone(),
            profile: self.profile.clone(),
            since_ms: self.since,
            reason: self.reason.clone(),
            limit: self.limit,
        }
    }
}

#[derive(Debug, Subcommand)]
enum ReviewCommand {
    /// Jobs waiting for review, newest first, with why.
    List {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// A job's fields with confidence and page.
    Show { job: String },
    /// The vendor's values are right: complete the job.
    Approve {
        job: String,
        #[arg(long, env = "USER", default_value = "operator")]
        by: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Complete the job with corrected values, stored beside the vendor's.
    Correct {
        job: String,
        /// FIELD=VALUE (repeatable).
        #[arg(long = "set", required = true, value_parser = field_pair)]
        corrections: Vec<(String, String)>,
        #[arg(long, env = "USER", default_value = "operator")]
        by: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// The document cannot be used: fail the job with the reviewer's reason.
    Reject {
        job: String,
        #[arg(long, required = true)]
        reason: String,
        #[arg(long, env = "USER", default_value = "operator")]
        by: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// The review console: a local web page (127.0.0.1 only) with the queue riskiest first,
    /// each document beside its fields, approve/correct/reject from the keyboard. Prints its
    /// URL with a session token; runs until Ctrl-C.
    Serve {
        /// 0 picks a free port.
        #[arg(long, default_value_t = 8640)]
        port: u16,
        #[arg(long, env = "USER", default_value = "operator")]
        by: String,
    },
}

fn field_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| "--set takes FIELD=VALUE".to_owned())
}

#[derive(Debug, Subcommand)]
enum QualityCommand {
    /// Every benchmark run, newest first, with its regressions and report.
    Runs,
    /// A run's per-field table against its baseline, and the documents that flipped.
    Show { run: String },
    /// Make a scored run the baseline of its pack and vendor (dry run without --apply).
    Pin {
        run: String,
        #[arg(long)]
        apply: bool,
    },
    /// Two runs of the same pack, paired document by document: per field, accuracy in each,
    /// the documents that flipped either way, the sign test on them, and each run's cost. A
    /// run is a stored run's id or a `run.json` written by `make bench-quality` (which needs
    /// no stack), e.g. the A/B audit's PREPROCESS=off and PREPROCESS=on runs.
    Compare { run_a: String, run_b: String },
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// Messages in a DLQ (intake, submit, results), grouped by reason.
    List { queue: String },
    /// Move dead-lettered messages back (a dry run without --apply); never the ones that would
    /// fail the same way (malformed, unknown job), unless --reason names them.
    Redrive {
        queue: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        apply: bool,
    },
}

#[derive(Debug, Subcommand)]
enum VendorsCommand {
    /// The breakers of these vendors (the stack's own without names).
    List { names: Vec<String> },
    /// Open a vendor's breaker for a while (a dry run without --apply).
    Open {
        name: String,
        /// How long (30m, 2h); the breaker then half-opens and probes.
        #[arg(long = "for", default_value = "30m", value_parser = parse_duration)]
        hold: u64,
        #[arg(long)]
        apply: bool,
    },
    /// Close a vendor's breaker now (a dry run without --apply).
    Close {
        name: String,
        #[arg(long)]
        apply: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ReplayCommand {
    /// Fetch and parse the job's result again (it keeps its vendor job: nothing is bought).
    Result {
        job: String,
        #[arg(long)]
        apply: bool,
    },
}

#[derive(Debug, Subcommand)]
enum AlarmsCommand {
    /// The daily "confirm alerts reach the right channel": sets an alarm to ALARM, waits for
    /// CloudWatch's notification on a temporary queue subscribed to its topic, puts it back
    /// (waiting for that too), and removes the queue. Without NAME: every alarm checked, one
    /// fired per distinct route.
    Test {
        /// An alarm, by its full name or the part after `ocrbridge-<env>-` (e.g. JobsFailed).
        name: Option<String>,
        /// Fire every alarm, not one per route (the on-call person gets one drill each).
        #[arg(long)]
        all: bool,
        /// How long to wait for each notification.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        timeout: u64,
    },
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    /// Start a rotation (vendor-api-key or webhook-secret) and wait for it.
    Rotate { secret: String },
    /// Put AWSPREVIOUS back as AWSCURRENT (vendor-api-key or webhook-secret): for a new key
    /// the vendor refuses. A dry run until --apply.
    Rollback {
        secret: String,
        #[arg(long)]
        apply: bool,
    },
}

async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        // Two run files are compared without a stack.
        Command::Quality {
            command: QualityCommand::Compare { run_a, run_b },
        } if commands::quality::is_run_file(&run_a) && commands::quality::is_run_file(&run_b) => {
            commands::quality::compare(None, &run_a, &run_b, cli.target.json).await
        }
        Command::Local { options, command } => ocrbridge_local::cli::run(&options, command)
            .await
            .map_err(CliError::Aws),
        command => on_stack(&cli.target, command).await,
    }
}

/// The commands that act on a stack.
async fn on_stack(t: &TargetArgs, command: Command) -> Result<(), CliError> {
    let target = Target::resolve(t.stack.as_deref(), t.env_file.as_deref(), t.local).await?;
    let json = t.json;
    match command {
        Command::Status => commands::status::run(&target, json).await,
        Command::Audit { webhook_url } => {
            commands::audit::run(&target, webhook_url.as_deref(), json).await
        }
        Command::Report {
            week: _,
            ending,
            html,
        } => commands::report::week(&target, ending, html.as_deref(), json).await,
        Command::Cost {
            since,
            until,
            by,
            reviewer_hourly_rate,
        } => {
            let window = ocrbridge::cost::Window { since, until };
            commands::cost::run(&target, window, by, reviewer_hourly_rate, json).await
        }
        Command::Quality { command } => match command {
            QualityCommand::Runs => commands::quality::runs(&target, json).await,
            QualityCommand::Show { run } => commands::quality::show(&target, &run, json).await,
            QualityCommand::Pin { run, apply } => {
                commands::quality::pin(&target, &run, apply, json).await
            }
            QualityCommand::Compare { run_a, run_b } => {
                commands::quality::compare(Some(&target), &run_a, &run_b, json).await
            }
        },
        Command::Jobs { command } => match command {
            JobsCommand::List { filter } => jobs::list(&target, &filter.filter(), json).await,
            JobsCommand::Show { job } => jobs::show(&target, &job, json).await,
            JobsCommand::Retry {
                jobs: ids,
                filter,
                apply,
                accept_duplicate_risk,
            } => {
                let selection = if ids.is_empty() {
                    if filter.reason.is_none() && filter.since.is_none() {
                        return Err(CliError::Usage(
                            "name the jobs, or select them with --reason and/or --since".into(),
                        ));
                    }
                    jobs::Selection::Filter(filter.filter())
                } else {
                    jobs::Selection::Ids(ids)
                };
                jobs::retry(&target, selection, apply, accept_duplicate_risk, json).await
            }
        },
        Command::Review { command } => match command {
            ReviewCommand::List { limit } => commands::review::list(&target, limit, json).await,
            ReviewCommand::Show { job } => commands::review::show(&target, &job, json).await,
            ReviewCommand::Approve { job, by, note } => {
                let decision = Decision::Approve;
                commands::review::decide(&target, &job, decision, &by, note.as_deref(), json).await
            }
            ReviewCommand::Correct {
                job,
                corrections,
                by,
                note,
            } => {
                let decision = Decision::Correct(corrections);
                commands::review::decide(&target, &job, decision, &by, note.as_deref(), json).await
            }
            ReviewCommand::Reject {
                job,
                reason,
                by,
                note,
            } => {
                let decision = Decision::Reject { reason };
                commands::review::decide(&target, &job, decision, &by, note.as_deref(), json).await
            }
            ReviewCommand::Serve { port, by } => {
                ocrbridge_cli::console::serve(target, port, by).await
            }
        },
        Command::Vendors { command } => match command {
            None => commands::vendors::list(&target, &[], json).await,
            Some(VendorsCommand::List { names }) => {
                commands::vendors::list(&target, &names, json).await
            }
            Some(VendorsCommand::Open { name, hold, apply }) => {
                let hold = std::time::Duration::from_millis(hold);
                commands::vendors::force(&target, &name, Some(hold), apply, json).await
            }
            Some(VendorsCommand::Close { name, apply }) => {
                commands::vendors::force(&target, &name, None, apply, json).await
            }
        },
        Command::Dlq { command } => match command {
            DlqCommand::List { queue } => commands::dlq::list(&target, &queue, json).await,
            DlqCommand::Redrive {
                queue,
                reason,
                apply,
            } => commands::dlq::redrive(&target, &queue, reason.as_deref(), apply, json).await,
        },
        Command::Replay {
            command: ReplayCommand::Result { job, apply },
        } => {
            let found = commands::job(&target, &job).await?;
            let parse_failure = found.reason.as_ref().is_some_and(|r| {
                r.code.starts_with("parse_failed:") || r.code == "result_unavailable"
            });
            if !parse_failure {
                return Err(CliError::Refused(format!(
                    "job {} is {}{}: replay is for jobs whose result could not be parsed (parse_failed:*) or fetched (result_unavailable); see `ocrbridge jobs retry`",
                    found.id,
                    found.state,
                    found.reason.as_ref().map(|r| format!(" ({})", r.code)).unwrap_or_default()
                )));
            }
            jobs::retry(&target, jobs::Selection::Ids(vec![job]), apply, false, json).await
        }
        Command::SpotCheck { per_profile } => {
            commands::spot_check::run(&target, per_profile, json).await
        }
        Command::Alarms {
            command: AlarmsCommand::Test { name, all, timeout },
        } => {
            commands::alarms::test(
                &target,
                name.as_deref(),
                all,
                std::time::Duration::from_millis(timeout),
                json,
            )
            .await
        }
        Command::Secrets {
            command: SecretsCommand::Rotate { secret },
        } => commands::secrets::rotate(&target, &secret, json).await,
        Command::Secrets {
            command: SecretsCommand::Rollback { secret, apply },
        } => commands::secrets::rollback(&target, &secret, apply, json).await,
        Command::Local { .. } => Err(CliError::Usage("`ocrbridge local` takes no stack".into())),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ocrbridge: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
