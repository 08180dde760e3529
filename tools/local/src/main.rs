//! `ocrbridge-local`: the local stack's command line.
//!
//! ```text
//! ocrbridge-local health    [--endpoint URL]
//! ocrbridge-local provision [--endpoint URL] [--stack NAME] [--template PATH]
//!                           [--secret LOGICAL_ID=VALUE]... [--env-out FILE]
//! ocrbridge-local demo      [--endpoint URL] [--docs DIR] [--out DIR] [--timeout SECS] [--keep]
//!                           [--binaries DIR]   (run the real binaries from DIR under the RIE)
//!                           [--vendor sim|textract|azure|mindee]   (default: $VENDOR, else sim)
//! ```
//!
//! `--vendor` provisions the stack with that `VendorName` and runs the functions against the
//! vendor simulator's twin of it (the simulator itself for `sim`).
//!
//! `demo` provisions a fresh stack, starts the vendor simulator (real Tesseract) and the webhook
//! endpoint, uploads every file under `--docs` (default `samples/`; the path below it is the S3
//! key, so `receipts/…` is a receipt), runs the pipeline until every document settles, prints a
//! summary table and writes each result and `summary.json` to `--out` (default `.local/demo-out`).
//! `--keep` leaves the stack running afterwards, for `aws --endpoint-url … s3 cp`.
//!
//! `provision` creates the template's buckets, queues, tables and secrets in moto and prints the
//! functions' environment (`export NAME=value` lines), also written to `--env-out` if given.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ocrbridge::aws::{local_sdk_config, AwsClients};
use ocrbridge::vendor::select::VendorKind;
use ocrbridge_local::provision::{provision, ProvisionOptions};
use ocrbridge_local::template::Template;
use ocrbridge_local::{moto, template_path};

const USAGE: &str = "usage: ocrbridge-local health [--endpoint URL]
       ocrbridge-local provision [--endpoint URL] [--stack NAME] [--template PATH] [--secret ID=VALUE]... [--env-out FILE]
       ocrbridge-local demo [--endpoint URL] [--docs DIR] [--out DIR] [--timeout SECS] [--keep] [--binaries DIR] [--vendor NAME]";

struct Args {
    command: String,
    endpoint: String,
    stack: String,
    template: PathBuf,
    secrets: BTreeMap<String, String>,
    env_out: Option<PathBuf>,
    docs: PathBuf,
    out: PathBuf,
    timeout: u64,
    keep: bool,
    binaries: Option<PathBuf>,
    vendor: VendorKind,
}

fn parse_args() -> Result<Args, String> {
    let mut raw = std::env::args().skip(1);
    let command = raw.next().ok_or(USAGE)?;
    let mut args = Args {
        command,
        endpoint: moto::endpoint_from_env(),
        stack: "ocrbridge-local".into(),
        template: template_path(),
        secrets: BTreeMap::new(),
        env_out: None,
        docs: template_path().with_file_name("samples"),
        out: template_path().with_file_name(".local").join("demo-out"),
        timeout: 300,
        keep: false,
        binaries: None,
        vendor: match std::env::var("VENDOR") {
            Ok(v) if !v.is_empty() => v.parse().map_err(|e| format!("VENDOR: {e}"))?,
            _ => VendorKind::Sim,
        },
    };
    while let Some(flag) = raw.next() {
        let mut value = || raw.next().ok_or(format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--endpoint" => args.endpoint = value()?,
            "--stack" => args.stack = value()?,
            "--template" => args.template = value()?.into(),
            "--env-out" => args.env_out = Some(value()?.into()),
            "--docs" => args.docs = value()?.into(),
            "--out" => args.out = value()?.into(),
            "--timeout" => {
                args.timeout = value()?.parse().map_err(|e| format!("--timeout: {e}"))?
            }
            "--keep" => args.keep = true,
            "--binaries" => args.binaries = Some(value()?.into()),
            "--vendor" => args.vendor = value()?.parse().map_err(|e| format!("--vendor: {e}"))?,
            "--secret" => {
                let pair = value()?;
                let (id, secret) = pair
                    .split_once('=')
                    .ok_or("--secret takes LOGICAL_ID=VALUE")?;
                args.secrets.insert(id.to_owned(), secret.to_owned());
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

async fn run(args: Args) -> Result<(), String> {
    moto::wait_healthy(&args.endpoint, Duration::from_secs(10))
        .await
        .map_err(|e| e.to_string())?;
    match args.command.as_str() {
        "health" => {
            println!("moto is healthy at {}", args.endpoint);
            Ok(())
        }
        "provision" => {
            let template = Template::load(&args.template).map_err(|e| e.to_string())?;
            let clients = AwsClients::from_sdk_config(&local_sdk_config(&args.endpoint));
            let options = ProvisionOptions {
                stack_name: args.stack,
                secret_values: args.secrets,
                parameters: vendor_parameters(args.vendor),
            };
            let stack = provision(&clients, &template, &options)
                .await
                .map_err(|e| e.to_string())?;
            for (id, kind) in &stack.skipped {
                eprintln!("not emulated locally: {id} ({kind})");
            }
            let mut lines = vec![format!("export AWS_ENDPOINT_URL={}", args.endpoint)];
            for (name, value) in stack.function_environment().map_err(|e| e.to_string())? {
                lines.push(format!("export {name}={value}"));
            }
            let text = lines.join("\n") + "\n";
            print!("{text}");
            if let Some(path) = args.env_out {
                std::fs::write(&path, &text)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
            Ok(())
        }
        "demo" => demo(args).await,
        other => Err(format!("unknown command {other}\n{USAGE}")),
    }
}

async fn demo(args: Args) -> Result<(), String> {
    use ocrbridge_local::pipeline::{Pipeline, PipelineOptions};
    let template = Template::load(&args.template).map_err(|e| e.to_string())?;
    let clients = AwsClients::from_sdk_config(&local_sdk_config(&args.endpoint));
    let stack_name = format!("demo-{}", ocrbridge::time::UnixMillis::now().0 / 1000);
    let options = ProvisionOptions {
        stack_name: stack_name.clone(),
        parameters: vendor_parameters(args.vendor),
        ..Default::default()
    };
    let stack = provision(&clients, &template, &options)
        .await
        .map_err(|e| e.to_string())?;
    let docs = ocrbridge_local::demo::documents(&args.docs);
    if docs.is_empty() {
        return Err(format!("no documents under {}", args.docs.display()));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let options = PipelineOptions {
        binaries: args.binaries.clone(),
        concurrency: if args.binaries.is_some() { 1 } else { 2 },
        vendor: args.vendor,
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::start_at(clients, &stack, options, &args.endpoint).await?;
    eprintln!(
        "stack {stack_name} on {}; vendor {} (simulator at {}); {} documents",
        args.endpoint,
        args.vendor,
        pipeline.sim.base_url(),
        docs.len()
    );
    let rows = ocrbridge_local::demo::run(
        &pipeline,
        &docs,
        Duration::from_secs(args.timeout),
        Some(&args.out),
    )
    .await?;
    println!("{}", ocrbridge_local::demo::table(&rows));
    println!("results: {}", args.out.display());
    if args.keep {
        println!(
            "the stack stays up: aws --endpoint-url {} s3 cp FILE s3://{}/receipts/ (Ctrl-C to stop)",
            args.endpoint, pipeline.config.documents_bucket
        );
        // Until Ctrl-C ends the process.
        let never = std::sync::atomic::AtomicBool::new(false);
        pipeline.run_until(&never).await;
    }
    Ok(())
}

/// The template parameters that select a vendor.
fn vendor_parameters(vendor: VendorKind) -> BTreeMap<String, String> {
    BTreeMap::from([("VendorName".to_owned(), vendor.as_str().to_owned())])
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match parse_args() {
        Ok(args) => run(args).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ocrbridge-local: {e}");
            ExitCode::FAILURE
        }
    }
}
