//! The local stack's commands, one definition for both entry points: `ocrbridge-local …` and
//! `ocrbridge local …`.
//!
//! - `health`: moto answers at `--endpoint`.
//! - `provision`: creates the template's buckets, queues, tables and secrets in moto and prints
//!   the functions' environment (`export NAME=value` lines), also written to `--env-out`.
//! - `demo`: provisions a fresh stack, starts the vendor simulator (real Tesseract) and the
//!   webhook endpoint, uploads every file under `--docs` (the path below it is the S3 key, so
//!   `receipts/…` is a receipt), runs the pipeline until every document settles, prints a table
//!   and writes each result and `summary.json` to `--out`. `--keep` leaves it running and writes
//!   its environment to `.local/stack.env`, where `ocrbridge --local …` finds it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use ocrbridge::aws::{local_sdk_config, AwsClients};
use ocrbridge::vendors::select::VendorKind;

use crate::provision::{provision, LocalStack, ProvisionOptions};
use crate::template::Template;
use crate::{moto, template_path};

/// Where the kept demo stack's environment goes (`ocrbridge --local` reads it).
pub const STACK_ENV_FILE: &str = ".local/stack.env";

#[derive(Debug, Args)]
pub struct LocalOptions {
    /// moto's URL.
    #[arg(
        long,
        global = true,
        env = "OCRBRIDGE_MOTO_URL",
        default_value = "http://127.0.0.1:5055"
    )]
    pub endpoint: String,
    /// The SAM template the stack is derived from.
    #[arg(long, global = true, default_value_os_t = template_path())]
    pub template: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum LocalCommand {
    /// Checks that moto answers.
    Health,
    /// Creates the template's resources in moto and prints the functions' environment.
    Provision {
        #[arg(long, default_value = "ocrbridge-local")]
        stack: String,
        /// A secret's value instead of a generated one: LOGICAL_ID=VALUE (repeatable).
        #[arg(long = "secret", value_parser = secret_pair)]
        secrets: Vec<(String, String)>,
        /// Also write the `export` lines here.
        #[arg(long)]
        env_out: Option<PathBuf>,
        /// The vendor the stack is for (`VendorName`).
        #[arg(long, env = "VENDOR", default_value = "sim")]
        vendor: VendorKind,
    },
    /// Runs the pipeline on the local stack over a folder of documents.
    Demo {
        #[arg(long, default_value_os_t = template_path().with_file_name("samples"))]
        docs: PathBuf,
        #[arg(long, default_value_os_t = template_path().with_file_name(".local").join("demo-out"))]
        out: PathBuf,
        /// Seconds to wait for every document to settle.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Keep the stack running afterwards (Ctrl-C stops it).
        #[arg(long)]
        keep: bool,
        /// Run the real function binaries from this directory under the Lambda RIE.
        #[arg(long)]
        binaries: Option<PathBuf>,
        /// With --binaries: run them in Docker behind `sam local start-lambda` instead of one
        /// bare emulator each (the event sources invoke SAM's Lambda endpoint).
        #[arg(long, requires = "binaries")]
        sam: bool,
        /// The vendor: the functions talk to the simulator's twin of it.
        #[arg(long, env = "VENDOR", default_value = "sim")]
        vendor: VendorKind,
    },
    /// Runs a quality benchmark pack through the pipeline on a fresh local stack, scores it
    /// against the pinned baseline (kept in --out between runs), writes the run and its HTML
    /// report, and prints the per-field table. Exits 1 when a field regressed.
    BenchQuality {
        #[arg(long, default_value_os_t = template_path().with_file_name("bench").join("packs").join("default"))]
        pack: PathBuf,
        #[arg(long, default_value_os_t = template_path().with_file_name(".local").join("bench-quality"))]
        out: PathBuf,
        #[arg(long, env = "VENDOR", default_value = "sim")]
        vendor: VendorKind,
        /// Make this run the baseline the next runs are compared with.
        #[arg(long)]
        pin: bool,
        /// The simulator's silent model update, e.g. `total:0.5` (see vendor-sim's faults).
        #[arg(long)]
        model_update: Option<String>,
        /// Seconds to wait for the documents to settle.
        #[arg(long, default_value_t = 900)]
        timeout: u64,
        /// Intake's `PREPROCESS` for this run (`off`, `on`, `deskew,crop`, per profile…): the
        /// A/B audit runs the pack once with `off` and once with the actions under test, and
        /// `ocrbridge quality compare` pairs the two runs.
        #[arg(long, env = "PREPROCESS", default_value = "off")]
        preprocess: String,
    },
    /// Writes the quality pack with degraded variants of each image (turned 3–15°, faded, on a
    /// dark table, halved, or a PDF with a blank back: `blank_page`), each with its document's
    /// truth, for the A/B audit of preprocessing.
    DegradePack {
        #[arg(long, default_value_os_t = template_path().with_file_name("bench").join("packs").join("default"))]
        pack: PathBuf,
        #[arg(long, default_value_os_t = crate::degrade::default_out())]
        out: PathBuf,
        #[arg(
            long,
            default_value = "rotated,low_contrast,border,downscaled,blank_page"
        )]
        variants: String,
    },
    /// Writes a phone photo of MEGAPIXELS (the pack's first receipt, scaled, turned, on a table)
    /// for the preprocessing benchmark (`make bench-preprocess`).
    BenchInput {
        #[arg(long)]
        megapixels: f64,
        out: PathBuf,
        #[arg(long, default_value_os_t = template_path().with_file_name("bench").join("packs").join("default"))]
        pack: PathBuf,
    },
    /// Writes a duplex scan of PAGES pages (the pack's first receipt on a letter page at 200 dpi,
    /// then its blank back, in turn) as a PDF of JPEG pages or a TIFF of grey pages, for the
    /// blank-page and conversion benchmark (`make bench-preprocess`).
    BenchScan {
        #[arg(long)]
        pages: u32,
        /// `pdf` or `tiff`, from the output's extension.
        out: PathBuf,
        #[arg(long, default_value_os_t = template_path().with_file_name("bench").join("packs").join("default"))]
        pack: PathBuf,
    },
    /// Writes a PDF of PAGES pages, each with a line of text and IMAGE_KB of image data, for the
    /// splitting benchmark (`make bench-split`).
    BenchPdf {
        #[arg(long)]
        pages: u32,
        #[arg(long, default_value_t = 100)]
        image_kb: usize,
        out: PathBuf,
    },
    /// One PDF split into parts of PER_PART pages as intake would (`PDF_PART_PAGES`); prints
    /// the time, per MB of input, and the peak RSS.
    SplitPdf {
        input: PathBuf,
        #[arg(long, default_value_t = 100)]
        per_part: u32,
    },
    /// One PNG or JPEG through preprocessing as intake would prepare it; prints what was done.
    Preprocess {
        input: PathBuf,
        output: PathBuf,
        /// The actions, as `PREPROCESS` names them (`on` for the default set).
        #[arg(long, default_value = "on")]
        actions: String,
    },
    /// Issue #29's second opinion on a quality pack: the first vendor alone (A), the second
    /// alone (B), and a route of both with SECOND_OPINION (A+B), each on a fresh local stack;
    /// prints accuracy and wrong values gone out unreviewed per field, review share and cost.
    BenchSecondOpinion {
        #[arg(long, default_value_os_t = template_path().with_file_name("bench").join("packs").join("default"))]
        pack: PathBuf,
        #[arg(long, default_value = "sim")]
        first: VendorKind,
        #[arg(long, default_value = "azure")]
        second: VendorKind,
        /// SECOND_OPINION for the A+B run, without profiles: applied to every profile of
        /// the pack (e.g. `total_mismatch,low_confidence`).
        #[arg(
            long,
            default_value = "total_mismatch,line_items_mismatch,low_confidence"
        )]
        triggers: String,
        /// The first vendor's silent model update (the twins share one engine: without one
        /// the two vendors read alike), e.g. `total:0.3`.
        #[arg(long)]
        model_update: Option<String>,
        #[arg(long, default_value_t = 900)]
        timeout: u64,
    },
}

fn secret_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| "--secret takes LOGICAL_ID=VALUE".to_owned())
}

/// The template parameters that select a vendor.
/// The stack's vendor parameters: `VENDOR`, and `TEXTRACT_SYNCHRONOUS=on|off` when set
/// (`VENDOR=textract TEXTRACT_SYNCHRONOUS=on make bench-quality`).
fn vendor_parameters(vendor: VendorKind) -> BTreeMap<String, String> {
    let mut parameters = BTreeMap::from([("VendorName".to_owned(), vendor.as_str().to_owned())]);
    if let Ok(sync) = std::env::var("TEXTRACT_SYNCHRONOUS") {
        parameters.insert("TextractSynchronous".to_owned(), sync);
    }
    parameters
}

/// The `export NAME=value` lines of a stack's environment.
pub fn env_lines(endpoint: &str, stack: &LocalStack) -> Result<String, String> {
    let mut lines = vec![
        format!("export AWS_ENDPOINT_URL={endpoint}"),
        format!("export OCRBRIDGE_STACK_NAME={}", stack.stack_name()),
    ];
    for (name, value) in stack.function_environment().map_err(|e| e.to_string())? {
        lines.push(format!("export {name}={value}"));
    }
    for (variable, logical_id) in crate::functions::NAMED {
        if let Some(function) = stack.physical(logical_id) {
            lines.push(format!("export {variable}={}", function.ref_value));
        }
    }
    // The benchmark function's own variable, for `ocrbridge --local quality`.
    if let Some(table) = stack.physical("BenchmarkRunsTable") {
        lines.push(format!("export BENCHMARK_RUNS_TABLE={}", table.ref_value));
    }
    Ok(lines.join("\n") + "\n")
}

fn write(path: &std::path::Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub async fn run(options: &LocalOptions, command: LocalCommand) -> Result<(), String> {
    // The commands that work on files alone need no moto.
    let command = match command {
        LocalCommand::DegradePack {
            pack,
            out,
            variants,
        } => {
            let variants = crate::degrade::parse_variants(&variants)?;
            let written = crate::degrade::degrade_pack(&pack, &out, &variants)?;
            println!("{written} documents in {}", out.display());
            return Ok(());
        }
        LocalCommand::BenchInput {
            megapixels,
            out,
            pack,
        } => return crate::degrade::bench_input(&pack, megapixels, &out),
        LocalCommand::BenchPdf {
            pages,
            image_kb,
            out,
        } => return crate::pdf_bench::write_bench_pdf(pages, image_kb, &out),
        LocalCommand::BenchScan { pages, out, pack } => {
            return crate::degrade::bench_scan(&pack, pages, &out)
        }
        LocalCommand::SplitPdf { input, per_part } => {
            return crate::pdf_bench::split_file(&input, per_part)
        }
        LocalCommand::Preprocess {
            input,
            output,
            actions,
        } => {
            let settings = ocrbridge::preprocess::Settings::parse(&actions)?;
            let any = ocrbridge::job::Profile::new("any").map_err(|e| e.to_string())?;
            return crate::degrade::preprocess_file(&input, &output, settings.actions_for(&any));
        }
        other => other,
    };
    moto::wait_healthy(&options.endpoint, Duration::from_secs(10))
        .await
        .map_err(|e| e.to_string())?;
    let clients = AwsClients::from_sdk_config(&local_sdk_config(&options.endpoint));
    match command {
        LocalCommand::DegradePack { .. }
        | LocalCommand::Preprocess { .. }
        | LocalCommand::BenchInput { .. }
        | LocalCommand::BenchPdf { .. }
        | LocalCommand::BenchScan { .. }
        | LocalCommand::SplitPdf { .. } => Ok(()),
        LocalCommand::Health => {
            println!("moto is healthy at {}", options.endpoint);
            Ok(())
        }
        LocalCommand::Provision {
            stack,
            secrets,
            env_out,
            vendor,
        } => {
            let template = Template::load(&options.template).map_err(|e| e.to_string())?;
            let stack = provision(
                &clients,
                &template,
                &ProvisionOptions {
                    stack_name: stack,
                    secret_values: secrets.into_iter().collect(),
                    parameters: vendor_parameters(vendor),
                    alarms: true,
                    functions: true,
                },
            )
            .await
            .map_err(|e| e.to_string())?;
            for (id, kind) in &stack.skipped {
                eprintln!("not emulated locally: {id} ({kind})");
            }
            let text = env_lines(&options.endpoint, &stack)?;
            print!("{text}");
            if let Some(path) = env_out {
                write(&path, &text)?;
            }
            Ok(())
        }
        LocalCommand::BenchQuality {
            pack,
            out,
            vendor,
            pin,
            model_update,
            timeout,
            preprocess,
        } => {
            bench_quality(
                options,
                clients,
                BenchArgs {
                    pack,
                    out,
                    vendor,
                    pin,
                    model_update,
                    timeout,
                    preprocess,
                },
            )
            .await
        }
        LocalCommand::BenchSecondOpinion {
            pack,
            first,
            second,
            triggers,
            model_update,
            timeout,
        } => {
            let table = crate::second_opinion::run(
                options,
                clients,
                crate::second_opinion::Args {
                    pack,
                    first,
                    second,
                    triggers,
                    model_update,
                    timeout: Duration::from_secs(timeout),
                },
            )
            .await?;
            println!("{table}");
            Ok(())
        }
        LocalCommand::Demo {
            docs,
            out,
            timeout,
            keep,
            binaries,
            sam,
            vendor,
        } => {
            demo(
                options,
                clients,
                DemoArgs {
                    docs,
                    out,
                    timeout,
                    keep,
                    binaries,
                    sam,
                    vendor,
                },
            )
            .await
        }
    }
}

/// A new stack from the template, named `stack_name`, for `vendor`.
pub(crate) async fn fresh_stack(
    options: &LocalOptions,
    clients: &AwsClients,
    stack_name: &str,
    vendor: VendorKind,
) -> Result<LocalStack, String> {
    let template = Template::load(&options.template).map_err(|e| e.to_string())?;
    provision(
        clients,
        &template,
        &ProvisionOptions {
            stack_name: stack_name.to_owned(),
            parameters: vendor_parameters(vendor),
            alarms: true,
            functions: true,
            ..Default::default()
        },
    )
    .await
    .map_err(|e| e.to_string())
}

struct DemoArgs {
    docs: PathBuf,
    out: PathBuf,
    timeout: u64,
    keep: bool,
    binaries: Option<PathBuf>,
    sam: bool,
    vendor: VendorKind,
}

async fn demo(options: &LocalOptions, clients: AwsClients, args: DemoArgs) -> Result<(), String> {
    use crate::pipeline::{Pipeline, PipelineOptions};
    let stack_name = format!("demo-{}", ocrbridge::time::UnixMillis::now().0 / 1000);
    let stack = fresh_stack(options, &clients, &stack_name, args.vendor).await?;
    let docs = crate::demo::documents(&args.docs);
    if docs.is_empty() {
        return Err(format!("no documents under {}", args.docs.display()));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let pipeline_options = PipelineOptions {
        binaries: args.binaries.clone(),
        sam_lambda: args.sam,
        concurrency: if args.binaries.is_some() { 1 } else { 2 },
        vendor: args.vendor,
        ..PipelineOptions::default()
    };
    let pipeline =
        Pipeline::start_at(clients.clone(), &stack, pipeline_options, &options.endpoint).await?;
    eprintln!(
        "stack {stack_name} on {}; vendor {} (simulator at {}); {} documents",
        options.endpoint,
        args.vendor,
        pipeline.sim.base_url(),
        docs.len()
    );
    let rows = crate::demo::run(
        &pipeline,
        &docs,
        Duration::from_secs(args.timeout),
        Some(&args.out),
    )
    .await?;
    println!("{}", crate::demo::table(&rows));
    println!("results: {}", args.out.display());
    if args.keep {
        let env_file = template_path().with_file_name(STACK_ENV_FILE);
        write(&env_file, &env_lines(&options.endpoint, &stack)?)?;
        let env_file = std::fs::canonicalize(&env_file).unwrap_or(env_file);
        println!(
            "the stack stays up: aws --endpoint-url {} s3 cp FILE s3://{}/receipts/; `ocrbridge --local status` ({} holds its environment); Ctrl-C to stop",
            options.endpoint,
            pipeline.config.documents_bucket,
            env_file.display()
        );
        // CloudWatch's delivery of alarm actions, which moto lacks: `ocrbridge --local alarms
        // test` drills a route end to end on the kept stack.
        tokio::spawn(crate::alarms::deliver_actions(
            clients.clone(),
            Duration::from_millis(500),
            std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        ));
        // Until Ctrl-C ends the process.
        let never = std::sync::atomic::AtomicBool::new(false);
        pipeline.run_until(&never).await;
    }
    Ok(())
}

struct BenchArgs {
    pack: PathBuf,
    out: PathBuf,
    vendor: VendorKind,
    pin: bool,
    model_update: Option<String>,
    timeout: u64,
    preprocess: String,
}

async fn bench_quality(
    options: &LocalOptions,
    clients: AwsClients,
    args: BenchArgs,
) -> Result<(), String> {
    use crate::pipeline::{Pipeline, PipelineOptions};
    use crate::quality;
    let pack = ocrbridge::quality::Pack::load(&args.pack).map_err(|e| e.to_string())?;
    let model_update = args
        .model_update
        .as_deref()
        .map(vendor_sim::model_update::ModelUpdate::parse)
        .transpose()
        .map_err(|e| e.to_string())?;
    let now = ocrbridge::time::UnixMillis::now().0;
    let stack_name = format!("bq-{}", now / 1000);
    let stack = fresh_stack(options, &clients, &stack_name, args.vendor).await?;
    let faults = vendor_sim::faults::FaultConfig {
        model_update: model_update.clone(),
        ..Default::default()
    };
    let pipeline = Pipeline::start_at(
        clients,
        &stack,
        PipelineOptions {
            vendor: args.vendor,
            faults,
            environment: vec![("PREPROCESS".into(), args.preprocess.clone())],
            ..PipelineOptions::default()
        },
        &options.endpoint,
    )
    .await?;
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let runner = quality::runner(&pipeline, &stack, args.vendor.as_str())?;
    let baseline_file = quality::baseline_file(&args.out, &pack.name, args.vendor.as_str());
    let baseline = if args.pin {
        None
    } else {
        quality::pin_from_file(&runner, &baseline_file).await?
    };
    eprintln!(
        "pack {} ({} documents) on stack {stack_name}, vendor {}, PREPROCESS={}{}; baseline {}",
        pack.name,
        pack.documents.len(),
        args.vendor,
        args.preprocess,
        model_update.as_ref().map_or(String::new(), |m| format!(
            " with a silent model update ({}{:?} on {:.0}% of documents)",
            m.profile
                .as_deref()
                .map_or(String::new(), |p| format!("{p} ")),
            m.field,
            m.share * 100.0
        )),
        baseline.as_deref().unwrap_or("none")
    );
    let prefix = quality::upload_pack(&pipeline, &pack, &args.pack).await?;
    let run =
        ocrbridge::job::BenchmarkRun::parse(&format!("bq-{now}")).map_err(|e| e.to_string())?;
    let (record, report_key) = quality::run_once(
        &pipeline,
        &runner,
        &pack.name,
        &prefix,
        &run,
        Duration::from_secs(args.timeout),
    )
    .await?;
    let dir = args.out.join(&record.run_id);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let json = serde_json::to_vec_pretty(&record).map_err(|e| e.to_string())?;
    write(&dir.join("run.json"), &String::from_utf8_lossy(&json))?;
    let report = dir.join("report.html");
    write(&report, &ocrbridge::quality::report::html(&record))?;
    if args.pin {
        write(&baseline_file, &String::from_utf8_lossy(&json))?;
    }
    println!("{}", ocrbridge::quality::report::table(&record));
    for (metric, value) in runner.metrics.recorded() {
        if metric.starts_with("QualityRegression") && value > 0.0 {
            println!("metric {metric} = {value}");
        }
    }
    println!(
        "report: {} (stored as s3://{}/{report_key}){}",
        report.display(),
        pipeline.config.results_bucket,
        if args.pin {
            format!("; pinned as the baseline ({})", baseline_file.display())
        } else {
            String::new()
        }
    );
    let regressions = record.regressions();
    if regressions.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "quality regression against the baseline: {}",
            regressions.join(", ")
        ))
    }
}
