//! Creating the template's buckets, queues, tables and secrets in moto.
//!
//! The definitions come from `template.yaml` and nowhere else: names through `!Sub` with the local
//! stack name, queue settings and redrive, table keys, indexes and TTL, the bucket's S3 → SQS
//! notification, and secrets' generation rules. Resource types the emulator cannot run (functions,
//! IAM, schedules, rotation) are listed as skipped.
//!
//! Parallel tests share one moto server and `/moto-api/reset` is global, so each test provisions
//! its own stack under a unique stack name instead of resetting.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_s3::types::{
    BucketVersioningStatus, Event, FilterRule, FilterRuleName, NotificationConfiguration,
    NotificationConfigurationFilter, QueueConfiguration, S3KeyFilter, VersioningConfiguration,
};
use aws_sdk_sqs::types::QueueAttributeName;
use ocrbridge::aws::{AwsClients, LOCAL_REGION};
use ocrbridge::config::StackConfig;
use rand::Rng;
use serde_yaml::{Mapping, Value};

use crate::template::{scalar_to_string, Physical, ResourceDef, Scope, Template, TemplateError};

/// moto's default account.
pub const LOCAL_ACCOUNT_ID: &str = "123456789012";

const EMULATED: [&str; 7] = [
    "AWS::S3::Bucket",
    "AWS::SQS::Queue",
    "AWS::DynamoDB::Table",
    "AWS::SecretsManager::Secret",
    "AWS::SNS::Topic",
    "AWS::SNS::Subscription",
    "AWS::CloudWatch::Alarm",
];

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("creating {logical_id} ({kind}) failed: {detail}")]
    Aws {
        logical_id: String,
        kind: String,
        detail: String,
    },
    #[error("{logical_id}: {detail}")]
    Definition { logical_id: String, detail: String },
    #[error("resources depend on each other in a cycle, or on unprovisioned resources: {0:?}")]
    Stuck(Vec<String>),
}

/// Choices for one provisioning run.
#[derive(Debug, Clone, Default)]
pub struct ProvisionOptions {
    /// `AWS::StackName` for `!Sub` names. Use a unique one per test.
    pub stack_name: String,
    /// Parameter values that override the template defaults.
    pub parameters: BTreeMap<String, String>,
    /// Secret values by logical id, instead of generating them from `GenerateSecretString`.
    pub secret_values: BTreeMap<String, String>,
    /// Creates the template's CloudWatch alarms too: the kept stack and the alarm drills need
    /// them; a pipeline test does not, and 31 `PutMetricAlarm` calls per stack add up across
    /// the hundreds of stacks the crash-point gate and chaos runs make.
    pub alarms: bool,
    /// Creates the functions' configuration in moto's Lambda too (see [`crate::functions`]):
    /// what `ocrbridge audit` reads; the pipeline runs the handlers itself.
    pub functions: bool,
}

/// The provisioned stack: what each logical id became.
#[derive(Debug, Clone)]
pub struct LocalStack {
    pub scope: Scope,
    template: Template,
    /// Resources the local stack does not emulate, as (logical id, type).
    pub skipped: Vec<(String, String)>,
}

impl LocalStack {
    pub fn stack_name(&self) -> &str {
        &self.scope.stack_name
    }

    pub fn physical(&self, logical_id: &str) -> Option<&Physical> {
        self.scope.resources.get(logical_id)
    }

    /// The functions' shared environment (`Globals.Function.Environment.Variables`), resolved
    /// against this stack: exactly what Lambda would set.
    pub fn function_environment(&self) -> Result<BTreeMap<String, String>, TemplateError> {
        let mut out = BTreeMap::new();
        for (name, value) in self.template.global_function_environment() {
            if let Some(name) = name.as_str() {
                out.insert(name.to_owned(), self.scope.resolve_string(&value)?);
            }
        }
        Ok(out)
    }

    /// The `BatchSize` of `function`'s SQS event source, as the event source mapping uses it.
    pub fn event_batch_size(&self, function: &str) -> Option<u64> {
        let def = self
            .template
            .resources()
            .into_iter()
            .find(|r| r.logical_id == function)?;
        def.properties
            .get("Events")?
            .as_mapping()?
            .values()
            .find(|e| e.get("Type").and_then(Value::as_str) == Some("SQS"))?
            .get("Properties")?
            .get("BatchSize")?
            .as_u64()
    }

    /// A function's `MemorySize` in MB, resolved against this stack's conditions (`!If`), or
    /// `Globals.Function`'s: what Lambda bills its GB-seconds by.
    pub fn memory_mb(&self, function: &str) -> Option<u64> {
        let own = self
            .template
            .resources()
            .into_iter()
            .find(|r| r.logical_id == function)?
            .properties
            .get("MemorySize")
            .cloned();
        let value = own.or_else(|| self.template.global_function().get("MemorySize").cloned())?;
        self.scope.resolve_string(&value).ok()?.parse().ok()
    }

    /// A function's `ReservedConcurrentExecutions`: the most invocations it can have at once.
    pub fn reserved_concurrency(&self, function: &str) -> Option<u64> {
        self.template
            .resources()
            .into_iter()
            .find(|r| r.logical_id == function)?
            .properties
            .get("ReservedConcurrentExecutions")?
            .as_u64()
    }

    /// The `ScalingConfig.MaximumConcurrency` of an SQS event source: of a function's SQS event,
    /// or of an `AWS::Lambda::EventSourceMapping` resource by its logical id. `None`: the
    /// mapping's pollers invoke as much as the queue holds, and what the function's reserved
    /// concurrency cannot take is throttled.
    pub fn event_max_concurrency(&self, logical_id: &str) -> Option<u64> {
        let def = self
            .template
            .resources()
            .into_iter()
            .find(|r| r.logical_id == logical_id)?;
        let scaling = match def.properties.get("Events") {
            Some(events) => events
                .as_mapping()?
                .values()
                .find(|e| e.get("Type").and_then(Value::as_str) == Some("SQS"))?
                .get("Properties")?
                .get("ScalingConfig")?,
            None => def.properties.get("ScalingConfig")?,
        };
        scaling.get("MaximumConcurrency")?.as_u64()
    }

    /// `Globals.Function.Timeout`: a function's timeout when it sets none.
    pub fn global_function_timeout(&self) -> Option<i32> {
        self.template
            .global_function()
            .get("Timeout")
            .and_then(scalar_to_string)
            .and_then(|t| t.parse().ok())
    }

    /// The resources of `kind` in this stack (under a true condition), by logical id, with
    /// their properties resolved against it.
    pub fn resolved_of_kind(&self, kind: &str) -> Result<Vec<(String, Mapping)>, String> {
        let exists: Vec<&str> = self
            .skipped
            .iter()
            .filter(|(_, k)| k == kind)
            .map(|(id, _)| id.as_str())
            .collect();
        self.template
            .resources()
            .into_iter()
            .filter(|r| exists.contains(&r.logical_id.as_str()))
            .map(
                |r| match self.scope.resolve(&Value::Mapping(r.properties.clone())) {
                    Ok(Value::Mapping(props)) => Ok((r.logical_id, props)),
                    Ok(_) => Err(format!("{}: properties are not a mapping", r.logical_id)),
                    Err(e) => Err(format!("{}: {e}", r.logical_id)),
                },
            )
            .collect()
    }

    pub fn stack_config(&self) -> Result<StackConfig, ProvisionError> {
        let env = self.function_environment()?;
        StackConfig::from_lookup(|k| env.get(k).cloned()).map_err(|e| ProvisionError::Definition {
            logical_id: "Globals.Function.Environment".into(),
            detail: e.to_string(),
        })
    }
}

/// Provisions every emulated resource of `template` through `clients`.
pub async fn provision(
    clients: &AwsClients,
    template: &Template,
    options: &ProvisionOptions,
) -> Result<LocalStack, ProvisionError> {
    let mut parameters = template.parameter_defaults();
    parameters.extend(options.parameters.clone());
    let mut scope = Scope {
        stack_name: options.stack_name.clone(),
        region: LOCAL_REGION.into(),
        account_id: LOCAL_ACCOUNT_ID.into(),
        parameters,
        resources: BTreeMap::new(),
        conditions: BTreeMap::new(),
    };
    scope.evaluate_conditions(template)?;
    // Resources under a false condition do not exist in this stack at all.
    let (mut pending, skipped): (Vec<ResourceDef>, Vec<ResourceDef>) = template
        .resources()
        .into_iter()
        .filter(|r| scope.holds(r.condition.as_deref()))
        .partition(|r| {
            EMULATED.contains(&r.kind.as_str())
                && (options.alarms || r.kind != "AWS::CloudWatch::Alarm")
        });

    // Roles, functions, keys… are not emulated, but other resources and the functions'
    // environment name them: each gets the name and ARN it would have, so a Textract role can
    // be handed to the Textract twin and an alarm can name a function or a key.
    for other in &skipped {
        let name = format!("{}-{}", options.stack_name, other.logical_id);
        let service = other
            .kind
            .split("::")
            .nth(1)
            .unwrap_or("unknown")
            .to_ascii_lowercase();
        let arn = match service.as_str() {
            "iam" => format!("arn:aws:iam::{LOCAL_ACCOUNT_ID}:role/{name}"),
            "serverless" | "lambda" => {
                format!("arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:{name}")
            }
            _ => format!("arn:aws:{service}:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:{name}"),
        };
        scope.resources.insert(
            other.logical_id.clone(),
            Physical {
                ref_value: name,
                attributes: BTreeMap::from([("Arn".to_owned(), arn)]),
            },
        );
    }
    // Resolve in dependency order: a resource whose properties refer to a pending one waits.
    while !pending.is_empty() {
        let pending_ids: Vec<String> = pending.iter().map(|r| r.logical_id.clone()).collect();
        let mut deferred = Vec::new();
        let mut progressed = false;
        for resource in pending {
            match scope.resolve(&Value::Mapping(resource.properties.clone())) {
                Ok(Value::Mapping(props)) => {
                    let physical = create(clients, &resource, &props, options).await?;
                    scope
                        .resources
                        .insert(resource.logical_id.clone(), physical);
                    progressed = true;
                }
                Ok(_) => unreachable!("resolving a mapping yields a mapping"),
                Err(TemplateError::Unresolved(name)) if pending_ids.contains(&name) => {
                    deferred.push(resource)
                }
                Err(e) => return Err(e.into()),
            }
        }
        if !progressed {
            return Err(ProvisionError::Stuck(
                deferred.into_iter().map(|r| r.logical_id).collect(),
            ));
        }
        pending = deferred;
    }
    let stack = LocalStack {
        scope,
        template: template.clone(),
        skipped: skipped
            .into_iter()
            .map(|r| (r.logical_id, r.kind))
            .collect(),
    };
    if options.functions {
        crate::functions::create(clients, &stack)
            .await
            .map_err(|detail| ProvisionError::Aws {
                logical_id: "functions".into(),
                kind: "AWS::Serverless::Function".into(),
                detail,
            })?;
    }
    Ok(stack)
}

async fn create(
    clients: &AwsClients,
    resource: &ResourceDef,
    props: &Mapping,
    options: &ProvisionOptions,
) -> Result<Physical, ProvisionError> {
    let fail = |detail: String| ProvisionError::Aws {
        logical_id: resource.logical_id.clone(),
        kind: resource.kind.clone(),
        detail,
    };
    let def = Def {
        logical_id: &resource.logical_id,
        props,
    };
    match resource.kind.as_str() {
        "AWS::SQS::Queue" => create_queue(clients, &def).await.map_err(fail),
        "AWS::SNS::Topic" => create_topic(clients, &def).await.map_err(fail),
        "AWS::SNS::Subscription" => subscribe(clients, &def).await.map_err(fail),
        "AWS::DynamoDB::Table" => create_table(clients, &def).await.map_err(fail),
        "AWS::S3::Bucket" => create_bucket(clients, &def).await.map_err(fail),
        "AWS::CloudWatch::Alarm" => crate::alarms::put_alarm(clients, props)
            .await
            .map(|name| Physical {
                attributes: BTreeMap::from([(
                    "Arn".to_owned(),
                    format!("arn:aws:cloudwatch:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:alarm:{name}"),
                )]),
                ref_value: name,
            })
            .map_err(fail),
        "AWS::SecretsManager::Secret" => {
            let value = match options.secret_values.get(&resource.logical_id) {
                Some(v) => v.clone(),
                None => secret_value(&def)?,
            };
            create_secret(clients, &def, &value).await.map_err(fail)
        }
        other => unreachable!("{other} is not in EMULATED"),
    }
}

/// A resource's resolved properties, with typed accessors that name the resource on error.
struct Def<'a> {
    logical_id: &'a str,
    props: &'a Mapping,
}

impl Def<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.props.get(key)
    }

    fn string(&self, key: &str) -> Option<String> {
        self.get(key).and_then(scalar_to_string)
    }

    fn required(&self, key: &str) -> Result<String, ProvisionError> {
        self.string(key).ok_or_else(|| ProvisionError::Definition {
            logical_id: self.logical_id.to_owned(),
            detail: format!("{key} is required locally (names must come from the template)"),
        })
    }
}

fn sdk_error<E: std::error::Error + 'static, R: std::fmt::Debug>(
    err: aws_sdk_sqs::error::SdkError<E, R>,
) -> String {
    aws_sdk_sqs::error::DisplayErrorContext(err).to_string()
}

fn sns(clients: &AwsClients) -> aws_sdk_sns::Client {
    aws_sdk_sns::Client::new(&clients.sdk_config)
}

async fn create_topic(clients: &AwsClients, def: &Def<'_>) -> Result<Physical, String> {
    let name = def.required("TopicName").map_err(|e| e.to_string())?;
    let out = sns(clients)
        .create_topic()
        .name(&name)
        .send()
        .await
        .map_err(sdk_error)?;
    let arn = out.topic_arn().unwrap_or_default().to_owned();
    Ok(Physical {
        ref_value: arn.clone(),
        attributes: BTreeMap::from([("TopicArn".to_owned(), arn), ("TopicName".to_owned(), name)]),
    })
}

async fn subscribe(clients: &AwsClients, def: &Def<'_>) -> Result<Physical, String> {
    let topic = def.required("TopicArn").map_err(|e| e.to_string())?;
    let protocol = def.required("Protocol").map_err(|e| e.to_string())?;
    let endpoint = def.required("Endpoint").map_err(|e| e.to_string())?;
    let mut request = sns(clients)
        .subscribe()
        .topic_arn(topic)
        .protocol(protocol)
        .endpoint(endpoint)
        .return_subscription_arn(true);
    if def.string("RawMessageDelivery").as_deref() == Some("true") {
        request = request.attributes("RawMessageDelivery", "true");
    }
    let out = request.send().await.map_err(sdk_error)?;
    let arn = out.subscription_arn().unwrap_or_default().to_owned();
    Ok(Physical {
        ref_value: arn,
        attributes: BTreeMap::new(),
    })
}

async fn create_queue(clients: &AwsClients, def: &Def<'_>) -> Result<Physical, String> {
    let name = def.required("QueueName").map_err(|e| e.to_string())?;
    let mut request = clients.sqs.create_queue().queue_name(&name);
    for (prop, attribute) in [
        ("VisibilityTimeout", QueueAttributeName::VisibilityTimeout),
        (
            "MessageRetentionPeriod",
            QueueAttributeName::MessageRetentionPeriod,
        ),
        ("DelaySeconds", QueueAttributeName::DelaySeconds),
        (
            "ReceiveMessageWaitTimeSeconds",
            QueueAttributeName::ReceiveMessageWaitTimeSeconds,
        ),
        ("FifoQueue", QueueAttributeName::FifoQueue),
    ] {
        if let Some(value) = def.string(prop) {
            request = request.attributes(attribute, value);
        }
    }
    if let Some(Value::Mapping(redrive)) = def.get("RedrivePolicy") {
        let target = redrive
            .get("deadLetterTargetArn")
            .and_then(scalar_to_string)
            .ok_or("RedrivePolicy.deadLetterTargetArn is missing")?;
        let max: u32 = redrive
            .get("maxReceiveCount")
            .and_then(scalar_to_string)
            .and_then(|v| v.parse().ok())
            .ok_or("RedrivePolicy.maxReceiveCount is missing or not a number")?;
        let policy = serde_json::json!({ "deadLetterTargetArn": target, "maxReceiveCount": max });
        request = request.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
    }
    let url = request
        .send()
        .await
        .map_err(sdk_error)?
        .queue_url
        .ok_or("CreateQueue returned no URL")?;
    let arn = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(sdk_error)?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or("GetQueueAttributes returned no ARN")?;
    Ok(Physical {
        ref_value: url.clone(),
        attributes: BTreeMap::from([
            ("Arn".to_owned(), arn),
            ("QueueName".to_owned(), name),
            ("QueueUrl".to_owned(), url),
        ]),
    })
}

fn seq<'a>(def: &'a Def<'_>, key: &str) -> impl Iterator<Item = &'a Value> {
    def.get(key)
        .and_then(Value::as_sequence)
        .map(|s| s.iter())
        .into_iter()
        .flatten()
}

fn key_schema(items: Option<&Value>) -> Result<Vec<KeySchemaElement>, String> {
    items
        .and_then(Value::as_sequence)
        .ok_or("KeySchema is missing")?
        .iter()
        .map(|k| {
            let kind = match k.get("KeyType").and_then(Value::as_str) {
                Some("HASH") => KeyType::Hash,
                Some("RANGE") => KeyType::Range,
                other => return Err(format!("unknown KeyType {other:?}")),
            };
            KeySchemaElement::builder()
                .attribute_name(
                    k.get("AttributeName")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                )
                .key_type(kind)
                .build()
                .map_err(|e| e.to_string())
        })
        .collect()
}

async fn create_table(clients: &AwsClients, def: &Def<'_>) -> Result<Physical, String> {
    let name = def.required("TableName").map_err(|e| e.to_string())?;
    let mut request = clients
        .dynamodb
        .create_table()
        .table_name(&name)
        .set_key_schema(Some(key_schema(def.get("KeySchema"))?));
    for attribute in seq(def, "AttributeDefinitions") {
        let kind = match attribute.get("AttributeType").and_then(Value::as_str) {
            Some("S") => ScalarAttributeType::S,
            Some("N") => ScalarAttributeType::N,
            Some("B") => ScalarAttributeType::B,
            other => return Err(format!("unknown AttributeType {other:?}")),
        };
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(
                    attribute
                        .get("AttributeName")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                )
                .attribute_type(kind)
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    for index in seq(def, "GlobalSecondaryIndexes") {
        let projection = index.get("Projection");
        let projection_type = match projection
            .and_then(|p| p.get("ProjectionType"))
            .and_then(Value::as_str)
        {
            Some("KEYS_ONLY") => ProjectionType::KeysOnly,
            Some("INCLUDE") => ProjectionType::Include,
            _ => ProjectionType::All,
        };
        let non_key: Option<Vec<String>> = projection
            .and_then(|p| p.get("NonKeyAttributes"))
            .and_then(Value::as_sequence)
            .map(|attrs| attrs.iter().filter_map(scalar_to_string).collect());
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(
                    index
                        .get("IndexName")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                )
                .set_key_schema(Some(key_schema(index.get("KeySchema"))?))
                .projection(
                    Projection::builder()
                        .projection_type(projection_type)
                        .set_non_key_attributes(non_key)
                        .build(),
                )
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    if def.string("BillingMode").as_deref() == Some("PROVISIONED") {
        return Err("BillingMode PROVISIONED is not supported locally; use PAY_PER_REQUEST".into());
    }
    let out = request
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .map_err(sdk_error)?;
    let arn = out
        .table_description
        .and_then(|d| d.table_arn)
        .ok_or("CreateTable returned no ARN")?;
    if let Some(ttl) = def.get("TimeToLiveSpecification") {
        let enabled = ttl.get("Enabled").and_then(Value::as_bool).unwrap_or(false);
        if let (true, Some(attribute)) = (enabled, ttl.get("AttributeName").and_then(Value::as_str))
        {
            clients
                .dynamodb
                .update_time_to_live()
                .table_name(&name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name(attribute)
                        .enabled(true)
                        .build()
                        .map_err(|e| e.to_string())?,
                )
                .send()
                .await
                .map_err(sdk_error)?;
        }
    }
    Ok(Physical {
        ref_value: name,
        attributes: BTreeMap::from([("Arn".to_owned(), arn)]),
    })
}

async fn create_bucket(clients: &AwsClients, def: &Def<'_>) -> Result<Physical, String> {
    let name = def.required("BucketName").map_err(|e| e.to_string())?;
    clients
        .s3
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .map_err(sdk_error)?;
    let versioned = def
        .get("VersioningConfiguration")
        .and_then(|v| v.get("Status"))
        .and_then(Value::as_str)
        == Some("Enabled");
    if versioned {
        clients
            .s3
            .put_bucket_versioning()
            .bucket(&name)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .map_err(sdk_error)?;
    }
    let queue_configs = def
        .get("NotificationConfiguration")
        .and_then(|n| n.get("QueueConfigurations"))
        .and_then(Value::as_sequence);
    if let Some(configs) = queue_configs {
        let mut notification = NotificationConfiguration::builder();
        for config in configs {
            let queue_arn = config
                .get("Queue")
                .and_then(scalar_to_string)
                .ok_or("QueueConfigurations[].Queue is missing")?;
            let event = config
                .get("Event")
                .and_then(scalar_to_string)
                .ok_or("QueueConfigurations[].Event is missing")?;
            let mut queue_config = QueueConfiguration::builder()
                .queue_arn(queue_arn)
                .events(Event::from(event.as_str()));
            let rules = config
                .get("Filter")
                .and_then(|f| f.get("S3Key"))
                .and_then(|k| k.get("Rules"))
                .and_then(Value::as_sequence);
            if let Some(rules) = rules {
                let mut key_filter = S3KeyFilter::builder();
                for rule in rules {
                    let name = rule.get("Name").and_then(Value::as_str).unwrap_or_default();
                    key_filter = key_filter.filter_rules(
                        FilterRule::builder()
                            .name(FilterRuleName::from(name.to_ascii_lowercase().as_str()))
                            .value(
                                rule.get("Value")
                                    .and_then(scalar_to_string)
                                    .unwrap_or_default(),
                            )
                            .build(),
                    );
                }
                queue_config = queue_config.filter(
                    NotificationConfigurationFilter::builder()
                        .key(key_filter.build())
                        .build(),
                );
            }
            notification =
                notification.queue_configurations(queue_config.build().map_err(|e| e.to_string())?);
        }
        clients
            .s3
            .put_bucket_notification_configuration()
            .bucket(&name)
            .notification_configuration(notification.build())
            .send()
            .await
            .map_err(sdk_error)?;
    }
    Ok(Physical {
        ref_value: name.clone(),
        attributes: BTreeMap::from([
            ("Arn".to_owned(), format!("arn:aws:s3:::{name}")),
            ("DomainName".to_owned(), format!("{name}.s3.amazonaws.com")),
        ]),
    })
}

async fn create_secret(
    clients: &AwsClients,
    def: &Def<'_>,
    value: &str,
) -> Result<Physical, String> {
    let name = def.required("Name").map_err(|e| e.to_string())?;
    let out = clients
        .secrets()
        .create_secret()
        .name(&name)
        .set_description(def.string("Description"))
        .set_tags(Some(
            def.get("Tags")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
                .filter_map(|t| {
                    Some(
                        aws_sdk_secretsmanager::types::Tag::builder()
                            .key(scalar_to_string(t.get("Key")?)?)
                            .value(scalar_to_string(t.get("Value")?)?)
                            .build(),
                    )
                })
                .collect(),
        ))
        .secret_string(value)
        .send()
        .await
        .map_err(sdk_error)?;
    let arn = out.arn.ok_or("CreateSecret returned no ARN")?;
    Ok(Physical {
        ref_value: arn.clone(),
        attributes: BTreeMap::from([("Id".to_owned(), arn)]),
    })
}

/// A secret's initial value: `SecretString` as written, or generated the way Secrets Manager
/// would from `GenerateSecretString`.
fn secret_value(def: &Def<'_>) -> Result<String, ProvisionError> {
    if let Some(value) = def.string("SecretString") {
        return Ok(value);
    }
    let Some(spec) = def.get("GenerateSecretString") else {
        return Err(ProvisionError::Definition {
            logical_id: def.logical_id.to_owned(),
            detail: "neither SecretString nor GenerateSecretString is set".into(),
        });
    };
    let flag = |key: &str| spec.get(key).and_then(Value::as_bool).unwrap_or(false);
    let length = spec
        .get("PasswordLength")
        .and_then(Value::as_u64)
        .unwrap_or(32) as usize;
    let excluded = spec
        .get("ExcludeCharacters")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut alphabet = String::new();
    if !flag("ExcludeLowercase") {
        alphabet.push_str("abcdefghijklmnopqrstuvwxyz");
    }
    if !flag("ExcludeUppercase") {
        alphabet.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ");
    }
    if !flag("ExcludeNumbers") {
        alphabet.push_str("0123456789");
    }
    if !flag("ExcludePunctuation") {
        alphabet.push_str("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~");
    }
    if flag("IncludeSpace") {
        alphabet.push(' ');
    }
    let alphabet: Vec<char> = alphabet
        .chars()
        .filter(|c| !excluded.contains(*c))
        .collect();
    if alphabet.is_empty() || length == 0 {
        return Err(ProvisionError::Definition {
            logical_id: def.logical_id.to_owned(),
            detail: "GenerateSecretString leaves no characters to choose from".into(),
        });
    }
    let mut rng = rand::rng();
    Ok((0..length)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())])
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_follow_the_spec() {
        let props: Mapping = serde_yaml::from_str(
            "GenerateSecretString: { PasswordLength: 48, ExcludePunctuation: true, ExcludeCharacters: 'aA' }",
        )
        .unwrap();
        let def = Def {
            logical_id: "S",
            props: &props,
        };
        let value = secret_value(&def).unwrap();
        assert_eq!(value.len(), 48);
        assert!(value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() && c != 'a' && c != 'A'));
        assert_ne!(value, secret_value(&def).unwrap());
    }

    #[test]
    fn a_secret_without_a_value_rule_is_an_error() {
        let props = Mapping::new();
        let def = Def {
            logical_id: "S",
            props: &props,
        };
        assert!(secret_value(&def).is_err());
    }
}
