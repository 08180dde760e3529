//! The stack's functions in moto's Lambda: their configuration, not their code.
//!
//! The local pipeline runs the handlers in process (or through the RIE). What an operator audits
//! is the Lambda side of a deployed stack: each function's timeout and reserved concurrency, and
//! each SQS event source mapping's batch size and maximum concurrency. moto keeps those
//! (`CreateFunction`, `PutFunctionConcurrency`, `CreateEventSourceMapping`), so `ocrbridge audit`
//! reads them through the real Lambda API locally as in AWS. The code is an empty zip that
//! nothing may invoke: the mappings are created disabled, because moto's SQS would otherwise
//! run an enabled one at every message sent (see [`create`]). moto's Lambda refuses a role that does not exist
//! in its IAM, so one role is created for the stack's functions, through CloudFormation.

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, FunctionResponseType, Runtime, ScalingConfig};
use ocrbridge::aws::AwsClients;
use serde_yaml::{Mapping, Value};

use crate::provision::LocalStack;
use crate::template::scalar_to_string;

/// The functions an operator's tools name by variable (the stack's environment file, the CLI's
/// view of a deployed stack): (variable, logical id).
pub const NAMED: [(&str, &str); 3] = [
    ("INTAKE_FUNCTION_NAME", "IntakeFunction"),
    ("SUBMIT_FUNCTION_NAME", "SubmitFunction"),
    ("PARSE_FUNCTION_NAME", "ParseFunction"),
];

/// A zip archive with nothing in it: its end-of-central-directory record alone.
const EMPTY_ZIP: [u8; 22] = [
    0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// The functions' role, as SAM would generate it: a CloudFormation stack of one `AWS::IAM::Role`
/// (the SDK's IAM client alone took a minute of every build for this one call).
const ROLE_TEMPLATE: &str = r#"{
  "Resources": {
    "Role": {
      "Type": "AWS::IAM::Role",
      "Properties": {
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
      }
    }
  },
  "Outputs": {"RoleArn": {"Value": {"Fn::GetAtt": ["Role", "Arn"]}}}
}"#;

/// Creates the functions' role in moto and answers its ARN.
async fn create_role(clients: &AwsClients, stack_name: &str) -> Result<String, String> {
    let cfn = aws_sdk_cloudformation::Client::new(&clients.sdk_config);
    cfn.create_stack()
        .stack_name(stack_name)
        .template_body(ROLE_TEMPLATE)
        .capabilities(aws_sdk_cloudformation::types::Capability::CapabilityIam)
        .send()
        .await
        .map_err(aws_error)?;
    // moto creates a stack's resources within CreateStack: its outputs are there at once.
    let described = cfn
        .describe_stacks()
        .stack_name(stack_name)
        .send()
        .await
        .map_err(aws_error)?;
    described
        .stacks()
        .iter()
        .flat_map(|s| s.outputs())
        .find(|o| o.output_key() == Some("RoleArn"))
        .and_then(|o| o.output_value())
        .map(str::to_owned)
        .ok_or_else(|| format!("the role stack {stack_name} answered no RoleArn output"))
}

fn number(props: &Mapping, key: &str) -> Option<i32> {
    props
        .get(key)
        .and_then(scalar_to_string)
        .and_then(|v| v.parse().ok())
}

fn text(props: &Mapping, key: &str) -> Option<String> {
    props.get(key).and_then(scalar_to_string)
}

/// One SQS event source mapping, resolved.
struct QueueMapping {
    function: String,
    queue_arn: String,
    batch_size: Option<i32>,
    maximum_concurrency: Option<i32>,
    reports_item_failures: bool,
}

fn mapping_of(function: &str, props: &Mapping) -> Option<QueueMapping> {
    let queue_arn = text(props, "Queue").or_else(|| text(props, "EventSourceArn"))?;
    Some(QueueMapping {
        function: function.to_owned(),
        queue_arn,
        batch_size: number(props, "BatchSize"),
        maximum_concurrency: props
            .get("ScalingConfig")
            .and_then(Value::as_mapping)
            .and_then(|s| number(s, "MaximumConcurrency")),
        reports_item_failures: props
            .get("FunctionResponseTypes")
            .and_then(Value::as_sequence)
            .is_some_and(|t| {
                t.iter()
                    .any(|v| v.as_str() == Some("ReportBatchItemFailures"))
            }),
    })
}

/// An SDK error with its whole chain of causes (every SDK crate re-exports the same type).
fn aws_error(e: impl std::error::Error + 'static) -> String {
    aws_sdk_lambda::error::DisplayErrorContext(e).to_string()
}

/// Creates the stack's functions, their reserved concurrency and their SQS event source
/// mappings in moto, as CloudFormation would from the template.
pub async fn create(clients: &AwsClients, stack: &LocalStack) -> Result<(), String> {
    let lambda = aws_sdk_lambda::Client::new(&clients.sdk_config);
    let role = create_role(clients, &format!("{}-functions", stack.stack_name())).await?;
    let global_timeout = stack.global_function_timeout();
    let mut mappings = Vec::new();
    for (logical_id, props) in stack.resolved_of_kind("AWS::Serverless::Function")? {
        let name = stack
            .physical(&logical_id)
            .map(|p| p.ref_value.clone())
            .ok_or_else(|| format!("{logical_id} has no name"))?;
        let timeout = number(&props, "Timeout").or(global_timeout);
        lambda
            .create_function()
            .function_name(&name)
            .runtime(Runtime::Providedal2023)
            .handler("bootstrap")
            .role(&role)
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(EMPTY_ZIP.to_vec()))
                    .build(),
            )
            .set_timeout(timeout)
            .set_memory_size(number(&props, "MemorySize"))
            .send()
            .await
            .map_err(|e| format!("CreateFunction {logical_id}: {}", aws_error(e)))?;
        if let Some(reserved) = number(&props, "ReservedConcurrentExecutions") {
            lambda
                .put_function_concurrency()
                .function_name(&name)
                .reserved_concurrent_executions(reserved)
                .send()
                .await
                .map_err(|e| format!("PutFunctionConcurrency {logical_id}: {}", aws_error(e)))?;
        }
        for event in props
            .get("Events")
            .and_then(Value::as_mapping)
            .into_iter()
            .flat_map(|events| events.values())
            .filter(|e| e.get("Type").and_then(Value::as_str) == Some("SQS"))
        {
            if let Some(m) = event
                .get("Properties")
                .and_then(Value::as_mapping)
                .and_then(|p| mapping_of(&name, p))
            {
                mappings.push(m);
            }
        }
    }
    for (_, props) in stack.resolved_of_kind("AWS::Lambda::EventSourceMapping")? {
        if let Some(function) = text(&props, "FunctionName") {
            mappings.extend(mapping_of(&function, &props));
        }
    }
    for m in mappings {
        // Created disabled: moto's SQS acts on an enabled mapping at every SendMessage, receiving
        // a batch and invoking the function (an empty zip), so each upload's notification took
        // the earlier ones from the local pipeline again, and past maxReceiveCount they were
        // dead-lettered with no reason. The local pipeline is what consumes the queues here;
        // the mapping is kept for what `ocrbridge audit` reads (batch size, concurrency).
        let mut request = lambda
            .create_event_source_mapping()
            .function_name(&m.function)
            .event_source_arn(&m.queue_arn)
            .enabled(false)
            .set_batch_size(m.batch_size);
        if let Some(max) = m.maximum_concurrency {
            request =
                request.scaling_config(ScalingConfig::builder().maximum_concurrency(max).build());
        }
        if m.reports_item_failures {
            request =
                request.function_response_types(FunctionResponseType::ReportBatchItemFailures);
        }
        request.send().await.map_err(|e| {
            format!(
                "CreateEventSourceMapping {} → {}: {}",
                m.queue_arn,
                m.function,
                aws_error(e)
            )
        })?;
    }
    Ok(())
}
