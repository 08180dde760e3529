//! `ocrbridge secrets rotate vendor-api-key|webhook-secret`: starts Secrets Manager's rotation
//! (the rotate function does the steps) and follows it until the new version is `AWSCURRENT`.
//! `ocrbridge secrets rollback …`: puts `AWSPREVIOUS` back as `AWSCURRENT` (a dry run until
//! `--apply`), for a new key the vendor refuses.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::output::emit;
use crate::{CliError, Target};

fn secret_id<'a>(target: &'a Target, which: &str) -> Result<&'a str, CliError> {
    match which {
        "vendor-api-key" => Ok(&target.config.vendor_api_key_secret),
        "webhook-secret" => Ok(&target.config.webhook_secret),
        other => Err(CliError::Usage(format!(
            "no secret {other:?}: use vendor-api-key or webhook-secret"
        ))),
    }
}

fn sm_error(e: impl std::error::Error + 'static) -> CliError {
    CliError::aws(aws_sdk_secretsmanager::error::DisplayErrorContext(e))
}

/// Moves `AWSCURRENT` back to the version labelled `AWSPREVIOUS`: the old key or secret is
/// current again, and the refused one becomes `AWSPREVIOUS` (so a second rollback undoes the
/// first). The functions re-read the key on their next 401/403; webhook receivers accept
/// current and previous secrets, so no delivery is rejected on the way. Refused while a rotation
/// is pending (`AWSPENDING`): let it finish or remove that label first. Values never printed.
pub async fn rollback(
    target: &Target,
    which: &str,
    apply: bool,
    json_mode: bool,
) -> Result<(), CliError> {
    let secret_id = secret_id(target, which)?;
    let sm = target.clients.secrets();
    let described = sm
        .describe_secret()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(sm_error)?;
    let with = |stage: &str| {
        described
            .version_ids_to_stages()
            .into_iter()
            .flatten()
            .find(|(_, stages)| stages.iter().any(|s| s == stage))
            .map(|(id, _)| id.clone())
    };
    let (Some(current), Some(previous)) = (with("AWSCURRENT"), with("AWSPREVIOUS")) else {
        return Err(CliError::Refused(format!(
            "{which} has no AWSPREVIOUS version to go back to"
        )));
    };
    if let Some(pending) = with("AWSPENDING") {
        return Err(CliError::Refused(format!(
            "{which} has a rotation in progress (AWSPENDING {pending}); let it finish, or remove that label (RUNBOOK.md#rotation-failures), then roll back"
        )));
    }
    if apply {
        sm.update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage("AWSCURRENT")
            .move_to_version_id(&previous)
            .remove_from_version_id(&current)
            .send()
            .await
            .map_err(sm_error)?;
    }
    emit(
        json_mode,
        &json!({"secret": which, "from": current, "to": previous, "applied": apply}),
        || {
            if apply {
                format!("{which}: AWSCURRENT is version {previous} again (was {current}, now AWSPREVIOUS)")
            } else {
                format!("{which}: would make version {previous} AWSCURRENT again (now {current}); --apply to do it")
            }
        },
    );
    Ok(())
}

pub async fn rotate(target: &Target, which: &str, json_mode: bool) -> Result<(), CliError> {
    let secret_id = secret_id(target, which)?;
    let sm = target.clients.secrets();
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
