//! The audit's Lambda side: each SQS-fed function against its queue, read live (the function's
//! configuration, its reserved concurrency, its event source mapping, the queue's attributes),
//! so that a console edit after the deploy shows.
//!
//! For each of intake, submit and parse:
//! - the queue's visibility timeout is at least six times the function's timeout (AWS's advice
//!   for SQS event sources: a batch still running when its messages reappear is handled twice);
//! - the mapping has a maximum concurrency, and it is no more than the function's reserved
//!   concurrency: past it Lambda throttles whole batches back onto the queue with their receive
//!   counts raised, and the crash-loop guard parks real uploads (`tests/intake.rs`, the burst).

use aws_sdk_sqs::types::QueueAttributeName;

use crate::Target;

/// The functions fed by a queue the CLI knows: (check name, the function's variable in the
/// stack's environment, the queue's).
pub const FED_BY_QUEUES: [(&str, &str, &str); 3] = [
    ("intake", "INTAKE_FUNCTION_NAME", "INTAKE_QUEUE_URL"),
    ("submit", "SUBMIT_FUNCTION_NAME", "SUBMIT_QUEUE_URL"),
    ("parse", "PARSE_FUNCTION_NAME", "RESULTS_QUEUE_URL"),
];

/// AWS's advice: the visibility timeout at least six times the function's timeout.
pub const VISIBILITY_PER_TIMEOUT: i64 = 6;

/// What the audit read for one function and its queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSide {
    pub timeout_seconds: i64,
    pub visibility_seconds: i64,
    pub reserved: Option<i64>,
    /// The mapping from the queue, if there is one: its maximum concurrency, if set.
    pub mapping: Option<Option<i64>>,
}

/// The verdict on what was read: `Ok` with what was found, `Err` with what is wrong.
pub fn judge(side: &FunctionSide) -> Result<String, String> {
    let mut faults = Vec::new();
    let wanted = VISIBILITY_PER_TIMEOUT * side.timeout_seconds;
    if side.visibility_seconds < wanted {
        faults.push(format!(
            "the queue's visibility timeout is {} s, under {VISIBILITY_PER_TIMEOUT} × the function's {} s timeout ({wanted} s): a batch still running reappears and is handled twice",
            side.visibility_seconds, side.timeout_seconds
        ));
    }
    let maximum = match side.mapping {
        None => {
            faults.push("no event source mapping reads the queue: nothing is processed".into());
            None
        }
        Some(None) => {
            faults.push("the event source mapping has no ScalingConfig.MaximumConcurrency: a burst is throttled back onto the queue and parked as crash loops".into());
            None
        }
        Some(Some(max)) => Some(max),
    };
    if let (Some(max), Some(reserved)) = (maximum, side.reserved) {
        if max > reserved {
            faults.push(format!(
                "the mapping's maximum concurrency {max} is above the function's reserved concurrency {reserved}: the batches past it are throttled"
            ));
        }
    }
    if faults.is_empty() {
        Ok(format!(
            "timeout {} s, queue visibility {} s, maximum concurrency {}{}",
            side.timeout_seconds,
            side.visibility_seconds,
            maximum.map_or("-".into(), |m| m.to_string()),
            side.reserved
                .map_or(String::new(), |r| format!(" of {r} reserved"))
        ))
    } else {
        Err(faults.join("; "))
    }
}

fn lambda_error(e: impl std::error::Error + 'static) -> String {
    aws_sdk_lambda::error::DisplayErrorContext(e).to_string()
}

/// Reads one function's side and its queue's.
pub async fn read(
    target: &Target,
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    queue_url: &str,
) -> Result<FunctionSide, String> {
    let configuration = lambda
        .get_function_configuration()
        .function_name(function)
        .send()
        .await
        .map_err(|e| format!("GetFunctionConfiguration {function}: {}", lambda_error(e)))?;
    let reserved = lambda
        .get_function_concurrency()
        .function_name(function)
        .send()
        .await
        .map_err(|e| format!("GetFunctionConcurrency {function}: {}", lambda_error(e)))?
        .reserved_concurrent_executions
        .map(i64::from);
    let queue = super::audit::attributes(
        target,
        queue_url,
        &[
            QueueAttributeName::VisibilityTimeout,
            QueueAttributeName::QueueArn,
        ],
    )
    .await?;
    let queue_arn = queue
        .get(&QueueAttributeName::QueueArn)
        .cloned()
        .unwrap_or_default();
    let mappings = lambda
        .list_event_source_mappings()
        .function_name(function)
        .send()
        .await
        .map_err(|e| format!("ListEventSourceMappings {function}: {}", lambda_error(e)))?;
    let mapping = mappings
        .event_source_mappings()
        .iter()
        .find(|m| m.event_source_arn() == Some(queue_arn.as_str()))
        .map(|m| {
            m.scaling_config()
                .and_then(|s| s.maximum_concurrency())
                .map(i64::from)
        });
    Ok(FunctionSide {
        timeout_seconds: configuration.timeout().map_or(3, i64::from),
        visibility_seconds: queue
            .get(&QueueAttributeName::VisibilityTimeout)
            .and_then(|v| v.parse().ok())
            .unwrap_or(30),
        reserved,
        mapping,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side() -> FunctionSide {
        FunctionSide {
            timeout_seconds: 60,
            visibility_seconds: 360,
            reserved: Some(10),
            mapping: Some(Some(10)),
        }
    }

    #[test]
    fn the_templates_settings_pass() {
        assert_eq!(
            judge(&side()),
            Ok(
                "timeout 60 s, queue visibility 360 s, maximum concurrency 10 of 10 reserved"
                    .into()
            )
        );
    }

    #[test]
    fn each_fault_is_named() {
        let short = FunctionSide {
            visibility_seconds: 359,
            ..side()
        };
        assert!(judge(&short)
            .unwrap_err()
            .contains("under 6 × the function's 60 s"));
        let uncapped = FunctionSide {
            mapping: Some(None),
            ..side()
        };
        assert!(judge(&uncapped).unwrap_err().contains("no ScalingConfig"));
        let over = FunctionSide {
            mapping: Some(Some(11)),
            ..side()
        };
        assert!(judge(&over)
            .unwrap_err()
            .contains("above the function's reserved concurrency 10"));
        let unmapped = FunctionSide {
            mapping: None,
            ..side()
        };
        assert!(judge(&unmapped)
            .unwrap_err()
            .contains("no event source mapping"));
        // No reserved concurrency: the cap alone is the bound.
        let unreserved = FunctionSide {
            reserved: None,
            ..side()
        };
        assert!(judge(&unreserved).is_ok());
    }
}
