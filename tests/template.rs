//! template.yaml agrees with the code: metric names and dimensions, functions and binaries,
//! event sources and queue timeouts.

use std::collections::BTreeSet;

use ocrbridge::metrics::ALL;
use ocrbridge_local::template::{Physical, ResourceDef, Scope, Template};
use ocrbridge_local::template_path;
use regex::Regex;
use serde_yaml::Value;

fn template() -> Template {
    Template::load(&template_path()).unwrap()
}

fn untagged(v: &Value) -> &Value {
    match v {
        Value::Tagged(t) => &t.value,
        other => other,
    }
}

/// Our metrics' namespace as the template writes it: the prefix, then the environment.
const OUR_NAMESPACE: &str = "${MetricsNamespace}/${EnvironmentName}";

/// (metric name, dimension names) for every metric of ours the template refers to.
fn referenced_metrics(template: &Template) -> Vec<(String, BTreeSet<String>)> {
    let mut out = Vec::new();
    let search = Regex::new(
        r#"\{\$\{MetricsNamespace\}/\$\{EnvironmentName\},([^}]*)\} MetricName=\\?"(\w+)\\?""#,
    )
    .unwrap();
    for resource in template.resources() {
        match resource.kind.as_str() {
            "AWS::CloudWatch::Dashboard" => {
                let body = untagged(&resource.properties["DashboardBody"])
                    .as_str()
                    .unwrap()
                    .to_owned();
                for c in search.captures_iter(&body) {
                    out.push((
                        c[2].to_owned(),
                        c[1].split(',').map(str::to_owned).collect(),
                    ));
                }
                let json: serde_json::Value = serde_json::from_str(&body).unwrap();
                for widget in json["widgets"].as_array().unwrap() {
                    for metric in widget["properties"]["metrics"].as_array().unwrap() {
                        let parts = metric.as_array().unwrap();
                        if parts[0] == OUR_NAMESPACE {
                            let dims = parts[2..]
                                .iter()
                                .take_while(|p| p.is_string())
                                .step_by(2)
                                .map(|d| d.as_str().unwrap().to_owned())
                                .collect();
                            out.push((parts[1].as_str().unwrap().to_owned(), dims));
                        }
                    }
                }
            }
            "AWS::CloudWatch::Alarm" => {
                let mut metrics = vec![resource.properties.clone()];
                for m in resource
                    .properties
                    .get("Metrics")
                    .and_then(Value::as_sequence)
                    .into_iter()
                    .flatten()
                {
                    if let Some(metric) = m.get("MetricStat").and_then(|s| s.get("Metric")) {
                        metrics.push(metric.as_mapping().unwrap().clone());
                    }
                }
                for m in metrics {
                    let namespace = m.get("Namespace").map(untagged).and_then(Value::as_str);
                    if namespace != Some(OUR_NAMESPACE) {
                        continue; // AWS/SQS and friends
                    }
                    let dims = m["Dimensions"]
                        .as_sequence()
                        .unwrap()
                        .iter()
                        .map(|d| d["Name"].as_str().unwrap().to_owned())
                        .collect();
                    out.push((m["MetricName"].as_str().unwrap().to_owned(), dims));
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn every_metric_in_the_template_is_emitted_with_those_dimensions() {
    let referenced = referenced_metrics(&template());
    assert!(
        referenced.len() >= 25,
        "the dashboard and alarms refer to metrics: {referenced:?}"
    );
    for (name, dims) in &referenced {
        let def = ALL
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("template.yaml uses metric {name}, which no function emits"));
        let full: BTreeSet<String> = std::iter::once("Function")
            .chain(def.dimensions.iter().copied())
            .map(str::to_owned)
            .collect();
        let rollup: BTreeSet<String> = ["Function".to_owned()].into();
        let segmented: BTreeSet<String> = full
            .iter()
            .cloned()
            .chain(def.segments.iter().map(|s| (*s).to_owned()))
            .collect();
        assert!(
            *dims == full || *dims == rollup || (!def.segments.is_empty() && *dims == segmented),
            "{name}: template dimensions {dims:?}, emitted {full:?}, {segmented:?} and {rollup:?}"
        );
    }
}

#[test]
fn the_test_above_catches_a_renamed_metric() {
    let mut text = std::fs::read_to_string(template_path()).unwrap();
    text = text.replacen(
        "MetricName: VendorAuthFailures",
        "MetricName: VendorAuthFailure",
        1,
    );
    let broken = Template::parse(&text).unwrap();
    let referenced = referenced_metrics(&broken);
    assert!(referenced.iter().any(|(n, _)| n == "VendorAuthFailure"));
    assert!(!ALL.iter().any(|m| m.name == "VendorAuthFailure"));
}

fn functions(template: &Template) -> Vec<ResourceDef> {
    template
        .resources()
        .into_iter()
        .filter(|r| r.kind == "AWS::Serverless::Function")
        .collect()
}

/// A burst on a queue must never be throttled back onto it: every SQS event source caps its
/// invocations (`ScalingConfig.MaximumConcurrency`), and the caps of a function's sources add up
/// to no more than its reserved concurrency. Without that, Lambda throttles batches, their
/// receive counts rise with no handler having run, and the crash-loop guard parks them
/// (`tests/intake.rs` shows it with the cap removed).
#[test]
fn no_sqs_source_can_invoke_more_than_its_function_may_run() {
    let text = std::fs::read_to_string(template_path()).unwrap();
    let raw: Value = serde_yaml::from_str(&text).unwrap();
    let mut caps: std::collections::BTreeMap<String, u64> = Default::default();
    let function_of = |v: &Value| match v {
        Value::Tagged(t) => t.value.as_str().unwrap().to_owned(),
        other => panic!("{other:?}"),
    };
    for (id, resource) in raw["Resources"].as_mapping().unwrap() {
        let id = id.as_str().unwrap();
        let sources: Vec<(String, &Value)> = match resource["Type"].as_str() {
            Some("AWS::Serverless::Function") => resource["Properties"]["Events"]
                .as_mapping()
                .into_iter()
                .flatten()
                .filter(|(_, e)| e["Type"] == "SQS")
                .map(|(_, e)| (id.to_owned(), &e["Properties"]))
                .collect(),
            Some("AWS::Lambda::EventSourceMapping") => vec![(
                function_of(&resource["Properties"]["FunctionName"]),
                &resource["Properties"],
            )],
            _ => vec![],
        };
        for (function, props) in sources {
            let cap = props["ScalingConfig"]["MaximumConcurrency"]
                .as_u64()
                .unwrap_or_else(|| panic!("{id}: an SQS source without MaximumConcurrency"));
            assert!(cap >= 2, "{id}: Lambda's minimum MaximumConcurrency is 2");
            *caps.entry(function).or_default() += cap;
        }
    }
    assert_eq!(caps.len(), 3, "intake, submit and parse: {caps:?}");
    for (function, cap) in caps {
        let reserved = raw["Resources"][function.as_str()]["Properties"]
            ["ReservedConcurrentExecutions"]
            .as_u64()
            .unwrap_or_else(|| panic!("{function} has no reserved concurrency"));
        assert!(
            cap <= reserved,
            "{function}: its sources may invoke {cap} at once, but it may run {reserved}"
        );
    }
}

/// A streamed archive (a result too large to parse) is a multipart upload: parse may abort one
/// it gives up on, and the results bucket aborts any left behind by a dead invocation, whose
/// parts would otherwise be billed as storage and listed nowhere.
#[test]
fn incomplete_multipart_uploads_of_the_archive_do_not_linger() {
    let text = std::fs::read_to_string(template_path()).unwrap();
    let raw: Value = serde_yaml::from_str(&text).unwrap();
    let rules = &raw["Resources"]["ResultsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"];
    assert!(
        rules.as_sequence().into_iter().flatten().any(|r| {
            r["Status"] == "Enabled"
                && r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
                    .as_u64()
                    .is_some_and(|d| d <= 7)
        }),
        "{rules:?}"
    );
    let policies =
        serde_yaml::to_string(&raw["Resources"]["ParseFunction"]["Properties"]["Policies"])
            .unwrap();
    assert!(policies.contains("s3:AbortMultipartUpload"), "{policies}");
}

/// `RetentionDays` (0: kept) expires raw payloads, results and prepared copies, and their older
/// versions (the bucket is versioned: an expiration alone leaves the data as a noncurrent
/// version). The rules exist only where a retention is set.
#[test]
fn retention_days_expire_what_documents_said() {
    let text = std::fs::read_to_string(template_path()).unwrap();
    let raw: Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(raw["Parameters"]["RetentionDays"]["Default"], 0);
    let rules = raw["Resources"]["ResultsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
        .as_sequence()
        .unwrap();
    let mut expiring = Vec::new();
    for rule in rules {
        let Some(branches) = untagged(rule).as_sequence() else {
            continue;
        };
        assert_eq!(branches[0], "HasRetention", "{rule:?}");
        let rule = &branches[1];
        assert_eq!(
            serde_yaml::to_string(&rule["ExpirationInDays"])
                .unwrap()
                .trim(),
            "!Ref RetentionDays"
        );
        assert_eq!(rule["NoncurrentVersionExpiration"]["NoncurrentDays"], 1);
        expiring.push(rule["Prefix"].as_str().unwrap().to_owned());
    }
    assert_eq!(expiring, ["raw/", "results/", "prepared/"]);
    let condition = serde_yaml::to_string(&raw["Conditions"]["HasRetention"]).unwrap();
    assert!(condition.contains("RetentionDays"), "{condition}");
}

#[test]
fn every_function_builds_its_own_binary_and_sqs_sources_report_partial_failures() {
    let text = std::fs::read_to_string(template_path()).unwrap();
    let raw: Value = serde_yaml::from_str(&text).unwrap();
    let globals = &raw["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Handler"], "bootstrap");
    // Graviton in AWS by default; x86_64 only for local invokes of this machine's binaries.
    assert_eq!(
        serde_yaml::to_string(&globals["Architectures"][0])
            .unwrap()
            .trim(),
        "!Ref Architecture"
    );
    let architecture = &raw["Parameters"]["Architecture"];
    assert_eq!(architecture["Default"], "arm64");
    assert_eq!(
        architecture["AllowedValues"],
        serde_yaml::from_str::<Value>("[arm64, x86_64]").unwrap()
    );
    let template = template();
    let mut binaries = BTreeSet::new();
    for f in functions(&template) {
        let meta = &raw["Resources"][f.logical_id.as_str()]["Metadata"];
        assert_eq!(meta["BuildMethod"], "rust-cargolambda", "{}", f.logical_id);
        let binary = meta["BuildProperties"]["Binary"]
            .as_str()
            .unwrap()
            .to_owned();
        let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../functions/{binary}/Cargo.toml"));
        assert!(manifest.exists(), "{}: no functions/{binary}", f.logical_id);
        binaries.insert(binary);
        let timeout = f
            .properties
            .get("Timeout")
            .and_then(Value::as_u64)
            .unwrap_or(30);
        for (_, event) in f
            .properties
            .get("Events")
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
        {
            if event["Type"] != "SQS" {
                continue;
            }
            let props = &event["Properties"];
            assert_eq!(
                props["FunctionResponseTypes"][0], "ReportBatchItemFailures",
                "{}",
                f.logical_id
            );
            let queue = match &props["Queue"] {
                Value::Tagged(t) => t
                    .value
                    .as_str()
                    .unwrap()
                    .split('.')
                    .next()
                    .unwrap()
                    .to_owned(),
                other => panic!("{other:?}"),
            };
            let visibility = raw["Resources"][queue.as_str()]["Properties"]["VisibilityTimeout"]
                .as_u64()
                .unwrap();
            assert!(
                visibility >= 6 * timeout,
                "{queue}: visibility {visibility} < 6 x {timeout}"
            );
        }
    }
    assert_eq!(
        binaries,
        [
            "benchmark",
            "fetch",
            "intake",
            "parse",
            "reconcile",
            "rotate",
            "submit",
            "webhook"
        ]
        .map(String::from)
        .into()
    );
}

/// The stack's scope for `parameters` over the defaults, with a stand-in for every resource
/// (intrinsics resolve to `ref:<LogicalId>`), and the conditions evaluated.
fn scope(template: &Template, parameters: &[(&str, &str)]) -> Scope {
    let mut values = template.parameter_defaults();
    for (k, v) in parameters {
        values.insert((*k).to_owned(), (*v).to_owned());
    }
    let mut scope = Scope {
        stack_name: "ocrbridge-test".into(),
        region: "us-east-1".into(),
        account_id: "123456789012".into(),
        parameters: values,
        resources: template
            .resources()
            .into_iter()
            .map(|r| {
                let physical = Physical {
                    ref_value: format!("ref:{}", r.logical_id),
                    attributes: ["Arn", "QueueName", "TopicArn", "FunctionUrl"]
                        .into_iter()
                        .map(|a| (a.to_owned(), format!("{a}:{}", r.logical_id)))
                        .collect(),
                };
                (r.logical_id, physical)
            })
            .collect(),
        conditions: Default::default(),
    };
    scope.evaluate_conditions(template).unwrap();
    scope
}

fn alarms(template: &Template) -> Vec<ResourceDef> {
    template
        .resources()
        .into_iter()
        .filter(|r| r.kind == "AWS::CloudWatch::Alarm")
        .collect()
}

/// Alarms that go nowhere let operators down: every alarm, in every stack, sends ALARM and OK
/// to the topic given, else to the encrypted one the stack creates — which CloudWatch may
/// publish to and use the key of. And every name carries the environment.
#[test]
fn every_alarm_reaches_the_alarm_topic_in_every_stack() {
    let template = template();
    let given = "arn:aws:sns:us-east-1:123456789012:oncall";
    for (parameters, topic) in [
        (vec![], "ref:AlarmTopic"),
        (vec![("AlarmTopicArn", given)], given),
    ] {
        let scope = scope(&template, &parameters);
        assert_eq!(
            scope.holds(Some("CreatesAlarmTopic")),
            topic == "ref:AlarmTopic"
        );
        for alarm in alarms(&template) {
            let props = scope
                .resolve(&Value::Mapping(alarm.properties.clone()))
                .unwrap();
            for actions in ["AlarmActions", "OKActions"] {
                let got: Vec<&str> = props[actions]
                    .as_sequence()
                    .unwrap_or_else(|| panic!("{}: no {actions}", alarm.logical_id))
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                assert_eq!(got, [topic], "{} {actions}", alarm.logical_id);
            }
            let name = props["AlarmName"].as_str().unwrap_or_default();
            assert!(
                name.starts_with("ocrbridge-dev-"),
                "{}: {name:?}",
                alarm.logical_id
            );
        }
    }
    let resources = template.resources();
    let topic = resources
        .iter()
        .find(|r| r.logical_id == "AlarmTopic")
        .unwrap();
    assert_eq!(topic.condition.as_deref(), Some("CreatesAlarmTopic"));
    // Not the AWS-managed aws/sns key: CloudWatch cannot use it, and alarms would be dropped.
    assert_eq!(
        untagged(&topic.properties["KmsMasterKeyId"]).as_str(),
        Some("AlarmTopicKey")
    );
    let policy = resources
        .iter()
        .find(|r| r.logical_id == "AlarmTopicPolicy")
        .unwrap();
    let text = serde_yaml::to_string(&policy.properties).unwrap();
    assert!(
        text.contains("cloudwatch.amazonaws.com") && text.contains("sns:Publish"),
        "{text}"
    );
    let key = resources
        .iter()
        .find(|r| r.logical_id == "AlarmTopicKey")
        .unwrap();
    assert!(serde_yaml::to_string(&key.properties)
        .unwrap()
        .contains("cloudwatch.amazonaws.com"));
}

/// What deploy day needs watched has an alarm: failed jobs, each function's errors and
/// throttles, dead letters left waiting, webhook 5xx, a benchmark that stopped (missing data
/// breaching), rotation failures.
#[test]
fn the_failures_operators_must_hear_of_each_have_an_alarm() {
    let template = template();
    let ids: BTreeSet<String> = alarms(&template)
        .into_iter()
        .map(|a| a.logical_id)
        .collect();
    let mut wanted: Vec<String> = [
        "JobsFailedAlarm",
        "WebhookServerErrorsAlarm",
        "BenchmarkMissingAlarm",
        "RotationFailuresAlarm",
        "VendorKeyAgeAlarm",
        "VendorKeyRegenerationNeededAlarm",
        "VendorModelVersionChangedAlarm",
        "IntakeDLQAgeAlarm",
        "SubmitDLQAgeAlarm",
        "ResultsDLQAgeAlarm",
    ]
    .map(str::to_owned)
    .to_vec();
    for f in functions(&template) {
        wanted.push(format!("{}ErrorsAlarm", f.logical_id));
    }
    for w in &wanted {
        assert!(ids.contains(w), "no {w}");
    }
    let benchmark = alarms(&template)
        .into_iter()
        .find(|a| a.logical_id == "BenchmarkMissingAlarm")
        .unwrap();
    assert_eq!(
        benchmark.properties["TreatMissingData"].as_str(),
        Some("breaching")
    );
}

/// Rotation is scheduled only where it can succeed: the simulator takes keys and webhook
/// secrets by API; Azure's key rotates between its two keys, but it sends no webhooks; Textract
/// has no key, and Mindee's keys and secrets come from its console. Every vendor's key is
/// checked hourly (a no-op for Textract).
#[test]
fn rotation_is_scheduled_only_for_a_vendor_that_can_rotate() {
    let template = template();
    let schedule = |id: &str| {
        template
            .resources()
            .into_iter()
            .find(|r| r.logical_id == id && r.kind == "AWS::SecretsManager::RotationSchedule")
            .unwrap_or_else(|| panic!("no {id}"))
    };
    let (key, webhook) = (
        schedule("VendorApiKeyRotation"),
        schedule("WebhookSecretRotation"),
    );
    for (vendor, key_rotates, webhook_rotates) in [
        ("sim", true, true),
        ("textract", false, false),
        ("azure", true, false),
        ("mindee", false, false),
    ] {
        let scope = scope(&template, &[("VendorName", vendor)]);
        assert_eq!(
            scope.holds(key.condition.as_deref()),
            key_rotates,
            "{vendor}: the API key"
        );
        assert_eq!(
            scope.holds(webhook.condition.as_deref()),
            webhook_rotates,
            "{vendor}: the webhook secret"
        );
    }
    let rotate = template
        .resources()
        .into_iter()
        .find(|r| r.logical_id == "RotateFunction")
        .unwrap();
    let check = &rotate.properties["Events"]["KeyCheck"]["Properties"];
    assert_eq!(check["ScheduleExpression"].as_str(), Some("rate(1 hour)"));
    let input: serde_json::Value = serde_json::from_str(check["Input"].as_str().unwrap()).unwrap();
    assert!(matches!(
        rotate::Invocation::from_json(&input),
        Ok(rotate::Invocation::KeyCheck)
    ));
}

/// Two environments in one account never share metrics, alarms or secrets: the environment is
/// in the functions' namespace, every alarm's name and every secret's name.
#[test]
fn environments_do_not_share_metrics_alarms_or_secrets() {
    let template = template();
    let names = |environment: &str| {
        let scope = scope(&template, &[("EnvironmentName", environment)]);
        let mut out = BTreeSet::new();
        for r in template.resources() {
            let props = scope
                .resolve(&Value::Mapping(r.properties.clone()))
                .unwrap();
            for key in ["AlarmName", "Name", "Namespace"] {
                if let Some(v) = props.get(key).and_then(Value::as_str) {
                    if r.kind.starts_with("AWS::CloudWatch::Alarm")
                        || r.kind == "AWS::SecretsManager::Secret"
                    {
                        out.insert(format!("{key}={v}"));
                    }
                }
            }
        }
        let globals = template.global_function_environment();
        let namespace = scope.resolve_string(&globals["METRICS_NAMESPACE"]).unwrap();
        out.insert(format!("METRICS_NAMESPACE={namespace}"));
        out
    };
    let (dev, prod) = (names("dev"), names("prod"));
    assert!(dev.contains("METRICS_NAMESPACE=ocrbridge/dev"), "{dev:?}");
    let shared: Vec<&String> = dev
        .intersection(&prod)
        .filter(|n| !n.starts_with("Namespace=AWS/"))
        .collect();
    assert!(shared.is_empty(), "shared between dev and prod: {shared:?}");
    assert!(dev.iter().filter(|n| n.starts_with("AlarmName=")).count() >= 25);
}

/// Every `RUNBOOK.md#anchor` an alarm links to is a heading of RUNBOOK.md (GitHub's anchors:
/// lower case, spaces as hyphens). `#possible-second-charges` pointed nowhere until this test.
#[test]
fn every_runbook_link_in_the_template_lands_on_a_section() {
    let text = std::fs::read_to_string(template_path()).unwrap();
    let runbook = std::fs::read_to_string(template_path().with_file_name("RUNBOOK.md")).unwrap();
    let anchors: BTreeSet<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## ").or_else(|| l.strip_prefix("### ")))
        .map(|h| {
            h.to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-')
                .collect::<String>()
                .replace(' ', "-")
        })
        .collect();
    let links = Regex::new(r"RUNBOOK\.md#([a-z0-9-]+)").unwrap();
    let mut linked = 0;
    for c in links.captures_iter(&text) {
        linked += 1;
        assert!(
            anchors.contains(&c[1]),
            "RUNBOOK.md has no section #{}",
            &c[1]
        );
    }
    assert!(linked >= 25, "{linked}");
}
