//! `ocrbridge secrets rotate vendor-api-key|webhook-secret`: starts Secrets Manager's rotation
//! (the rotate function does the steps) and follows it until the new version is `AWSCURRENT`.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::output::emit;
use crate::{CliError, Target};

pub async fn rotate(target: &Target, which: &str, json_mode: bool) -> Result<(), CliError> {
    let secret_id = match which {
        "vendor-api-key" => &target.config.vendor_api_key_secret,
        "webhook-secret" => &target.config.webhook_secret,
        other => {
            return Err(CliError::Usage(format!(
                "no secret {other:?}: use vendor-api-key or webhook-secret"
            )))
        }
    };
    let sm = &target.clients.secrets;
    let started = sm
        .rotate_secret()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| CliError::aws(aws_sdk_secretsmanager::error::DisplayErrorContext(e)))?;
    let version = started.version_id().unwrap_or_default().to_owned();
    let spinner = indicatif::ProgressBar::new_spinner();
    if json_mode {
        spinner.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    spinner.set_message(format!(
        "rotating {which}: waiting for version {version} to be AWSCURRENT"
    ));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let described = sm
            .describe_secret()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| CliError::aws(aws_sdk_secretsmanager::error::DisplayErrorContext(e)))?;
        let stages = described
            .version_ids_to_stages()
            .and_then(|m| m.get(&version))
            .cloned()
            .unwrap_or_default();
        if stages.iter().any(|s| s == "AWSCURRENT") {
            spinner.finish_and_clear();
            emit(
                json_mode,
                &json!({"secret": which, "version": version, "stage": "AWSCURRENT"}),
                || format!("{which} rotated: version {version} is AWSCURRENT"),
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            spinner.finish_and_clear();
            return Err(CliError::Aws(format!(
                "{which}: version {version} is still {stages:?} after 2 minutes; the rotate function's log says which step failed (RUNBOOK.md, Rotation failures)"
            )));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
