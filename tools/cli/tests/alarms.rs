//! `ocrbridge alarms test` on the local stack: an alarm's route is proven by a delivery, and a
//! route that delivers nothing, or an alarm with no route, fails the command.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ocrbridge_tests::stack_with_alarms;
use support::{env_file, json, ocrbridge};

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_reaches_its_subscriber_and_a_broken_route_fails_the_drill() {
    // An environment of its own: alarms are named for it, and other tests' stacks share moto.
    let environment = format!("alarms{}", std::process::id() % 100_000);
    let s = stack_with_alarms(&[
        ("EnvironmentName", environment.as_str()),
        ("AlarmEmail", "oncall@example.com"),
    ])
    .await;
    let env = env_file(&s);
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&s.clients.sdk_config);
    let name = format!("ocrbridge-{environment}-JobsFailed");

    // CloudWatch's delivery of alarm actions, which moto does not perform.
    let stop = Arc::new(AtomicBool::new(false));
    let relay = tokio::spawn(ocrbridge_local::alarms::deliver_actions(
        s.clients.clone(),
        Duration::from_millis(200),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Test queues other runs left in this moto (a killed run cannot clean up).
    let test_queues = || async {
        s.clients
            .sqs
            .list_queues()
            .queue_name_prefix("ocrbridge-alarms-test-")
            .send()
            .await
            .unwrap()
            .queue_urls()
            .to_vec()
    };
    let before = test_queues().await;
    let out = ocrbridge(&env, &["alarms", "test", "JobsFailed", "--timeout", "20s"]).await;
    let said = text(&out);
    println!("$ ocrbridge alarms test …\n{said}");
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!("ok   {name}: ALARM reached")),
        "{said}"
    );
    assert!(said.contains("OK in"), "the OK route too: {said}");
    assert!(said.contains("email oncall@example.com"), "{said}");
    // Put back, and nothing left behind.
    let state = cloudwatch
        .describe_alarms()
        .alarm_names(&name)
        .send()
        .await
        .unwrap()
        .metric_alarms()[0]
        .state_value()
        .cloned();
    assert_eq!(state, Some(aws_sdk_cloudwatch::types::StateValue::Ok));
    assert_eq!(test_queues().await, before, "the test queue is removed");

    // For scripts: one record per alarm.
    let out = ocrbridge(
        &env,
        &["--json", "alarms", "test", "JobsFailed", "--timeout", "20s"],
    )
    .await;
    let records = json(&out);
    assert_eq!(records[0]["alarm"], name.as_str());
    assert_eq!(records[0]["ok"], true, "{records}");

    // Every alarm of the environment: all on one route, so one drill and the rest on paper.
    let out = ocrbridge(&env, &["alarms", "test", "--timeout", "20s"]).await;
    let said = text(&out);
    println!("$ ocrbridge alarms test …\n{said}");
    assert!(out.status.success(), "{said}");
    assert_eq!(said.matches("ALARM reached").count(), 1, "{said}");
    assert!(
        said.lines().filter(|l| l.starts_with("ok   ")).count() >= 25,
        "{said}"
    );

    // An alarm with no route is named, and fails the command.
    cloudwatch
        .put_metric_alarm()
        .alarm_name(format!("ocrbridge-{environment}-Unrouted"))
        .namespace("ocrbridge/x")
        .metric_name("JobsFailed")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
        .period(300)
        .evaluation_periods(1)
        .threshold(0.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .unwrap();
    let out = ocrbridge(&env, &["alarms", "test", "--timeout", "20s"]).await;
    let said = text(&out);
    println!("$ ocrbridge alarms test …\n{said}");
    assert_eq!(out.status.code(), Some(4), "{said}");
    assert!(
        said.contains(&format!(
            "FAIL ocrbridge-{environment}-Unrouted: it has no SNS topic among its AlarmActions"
        )),
        "{said}"
    );

    // A route that delivers nothing — what a topic policy or KMS key that refuses CloudWatch
    // looks like from outside — fails the drill instead of passing on paper.
    stop.store(true, Ordering::Relaxed);
    relay.await.unwrap();
    let out = ocrbridge(&env, &["alarms", "test", "JobsFailed", "--timeout", "3s"]).await;
    let said = text(&out);
    println!("$ ocrbridge alarms test …\n{said}");
    assert_eq!(out.status.code(), Some(4), "{said}");
    assert!(said.contains("no ALARM notification"), "{said}");
}

/// Two environments in one account and region: each stack's alarms are its own, watch its own
/// namespace, and report to its own topic; `alarms test` on one never touches the other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_environments_in_one_account_keep_their_own_alarms_and_metrics() {
    let tag = std::process::id() % 100_000;
    let (dev, prod) = (format!("dev{tag}"), format!("prod{tag}"));
    let a = stack_with_alarms(&[("EnvironmentName", dev.as_str())]).await;
    let b = stack_with_alarms(&[("EnvironmentName", prod.as_str())]).await;
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&a.clients.sdk_config);
    let of = |environment: String| {
        let cloudwatch = cloudwatch.clone();
        async move {
            let alarms = cloudwatch
                .describe_alarms()
                .alarm_name_prefix(format!("ocrbridge-{environment}-"))
                .max_records(100)
                .send()
                .await
                .unwrap()
                .metric_alarms()
                .to_vec();
            let mut namespaces = std::collections::BTreeSet::new();
            let mut topics = std::collections::BTreeSet::new();
            for alarm in &alarms {
                namespaces.extend(alarm.namespace().map(str::to_owned));
                for q in alarm.metrics() {
                    namespaces.extend(
                        q.metric_stat()
                            .and_then(|s| s.metric())
                            .and_then(|m| m.namespace())
                            .map(str::to_owned),
                    );
                }
                topics.extend(alarm.alarm_actions().iter().cloned());
            }
            (alarms.len(), namespaces, topics)
        }
    };
    let (dev_alarms, dev_namespaces, dev_topics) = of(dev.clone()).await;
    let (prod_alarms, prod_namespaces, prod_topics) = of(prod.clone()).await;
    assert_eq!(dev_alarms, prod_alarms);
    assert!(dev_alarms >= 25, "{dev_alarms}");
    let ours = |ns: &std::collections::BTreeSet<String>| {
        ns.iter()
            .filter(|n| !n.starts_with("AWS/"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(ours(&dev_namespaces), [format!("ocrbridge/{dev}")]);
    assert_eq!(ours(&prod_namespaces), [format!("ocrbridge/{prod}")]);
    assert!(
        dev_topics.is_disjoint(&prod_topics),
        "{dev_topics:?} {prod_topics:?}"
    );
    // The functions of each emit into their own namespace.
    for (s, environment) in [(&a, &dev), (&b, &prod)] {
        let env = s.stack.function_environment().unwrap();
        assert_eq!(env["METRICS_NAMESPACE"], format!("ocrbridge/{environment}"));
    }
}
