//! S3 notifications, parsed leniently: real S3 and moto differ in what they include.
//!
//! Only the fields intake needs are read (event name, bucket, key, size, version). moto omits
//! `userIdentity`, `requestParameters` and `sequencer`, and encodes `/` in keys as `%2F`; S3
//! encodes spaces as `+`. Keys are therefore form-decoded (`+` → space, then `%XX`).

use percent_encoding::percent_decode_str;
use serde_json::Value;

/// One object-created record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectCreated {
    pub event_name: String,
    pub bucket: String,
    pub key: String,
    pub size: Option<u64>,
    pub version_id: Option<String>,
}

/// What an S3 notification body holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// `s3:TestEvent`, sent when the notification is configured. Nothing to do.
    Test,
    Records(Vec<ObjectCreated>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not an S3 notification: {0}")]
pub struct NotS3(pub String);

/// Form-decodes an S3 event key.
pub fn decode_key(raw: &str) -> String {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

pub fn parse(body: &Value) -> Result<Notification, NotS3> {
    if body.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Notification::Test);
    }
    let records = body
        .get("Records")
        .and_then(Value::as_array)
        .ok_or_else(|| NotS3("no Records array".into()))?;
    let mut out = Vec::new();
    for record in records {
        let source = record.get("eventSource").and_then(Value::as_str);
        if source.is_some_and(|s| s != "aws:s3") {
            return Err(NotS3(format!("record from {}", source.unwrap_or_default())));
        }
        let event_name = record
            .get("eventName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if !event_name.starts_with("ObjectCreated") {
            // ObjectRemoved and friends are not ours to handle.
            continue;
        }
        let s3 = record
            .get("s3")
            .ok_or_else(|| NotS3("record without s3".into()))?;
        let bucket = s3
            .pointer("/bucket/name")
            .and_then(Value::as_str)
            .ok_or_else(|| NotS3("record without bucket name".into()))?;
        let key = s3
            .pointer("/object/key")
            .and_then(Value::as_str)
            .ok_or_else(|| NotS3("record without object key".into()))?;
        out.push(ObjectCreated {
            event_name,
            bucket: bucket.to_owned(),
            key: decode_key(key),
            size: s3.pointer("/object/size").and_then(Value::as_u64),
            version_id: s3
                .pointer("/object/versionId")
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty() && *v != "null")
                .map(str::to_owned),
        });
    }
    Ok(Notification::Records(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_keys_like_s3_and_moto_encode_them() {
        assert_eq!(
            decode_key("receipts%2F2024%2Fa+b.jpg"),
            "receipts/2024/a b.jpg"
        );
        assert_eq!(
            decode_key("receipts/caf%C3%A9+%2B1.png"),
            "receipts/café +1.png"
        );
        assert_eq!(decode_key("plain.pdf"), "plain.pdf");
    }

    #[test]
    fn parses_moto_records_without_optional_fields() {
        let body = json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2026-01-01T00:00:00.000Z", "eventName": "ObjectCreated:Put",
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "x",
                   "bucket": {"name": "b", "arn": "arn:aws:s3:::b"},
                   "object": {"key": "receipts%2Fa.jpg", "size": 10, "eTag": "e", "versionId": "v1"}}
        }]});
        assert_eq!(
            parse(&body).unwrap(),
            Notification::Records(vec![ObjectCreated {
                event_name: "ObjectCreated:Put".into(),
                bucket: "b".into(),
                key: "receipts/a.jpg".into(),
                size: Some(10),
                version_id: Some("v1".into()),
            }])
        );
    }

    #[test]
    fn skips_test_events_and_other_event_kinds() {
        assert_eq!(
            parse(&json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}))
                .unwrap(),
            Notification::Test
        );
        let removed = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete",
            "s3": {"bucket": {"name": "b"}, "object": {"key": "k"}}}]});
        assert_eq!(parse(&removed).unwrap(), Notification::Records(vec![]));
    }

    #[test]
    fn refuses_what_is_not_s3() {
        assert!(parse(&json!({"job_id": "x"})).is_err());
        assert!(parse(&json!({"Records": [{"eventSource": "aws:sqs"}]})).is_err());
        assert!(parse(
            &json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}]})
        )
        .is_err());
    }
}
