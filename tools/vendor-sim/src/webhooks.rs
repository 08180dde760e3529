//! Outgoing webhooks, signed per Standard Webhooks, delivered with retries.
//!
//! Headers: `webhook-id` (stable across retries), `webhook-timestamp` (unix seconds of the attempt)
//! and `webhook-signature`: a space-separated list of `v1,<base64 HMAC-SHA256>` over
//! `{id}.{timestamp}.{body}`, one entry per active secret, so receivers keep verifying while the
//! secret rotates. Secrets are `whsec_` + base64 of the key bytes.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("webhook secrets must look like whsec_<base64 of 24 to 64 bytes>")]
    Malformed,
}

/// Decodes `whsec_<base64>` into key bytes.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, SecretError> {
    let encoded = secret
        .strip_prefix("whsec_")
        .ok_or(SecretError::Malformed)?;
    let key = B64.decode(encoded).map_err(|_| SecretError::Malformed)?;
    if (24..=64).contains(&key.len()) {
        Ok(key)
    } else {
        Err(SecretError::Malformed)
    }
}

/// A fresh random secret.
pub fn generate_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!("whsec_{}", B64.encode(key))
}

/// One `v1,<base64>` signature entry.
pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header value for every key.
pub fn signature_header(keys: &[Vec<u8>], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| sign(k, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a delivery was sent; counted in `/admin/stats` under `webhooks.sent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryKind {
    /// The one real delivery of an event.
    Genuine,
    /// A second copy of a genuine delivery (same `webhook-id`).
    Duplicate,
    /// A held-back `processing` event, sent after the final status.
    OutOfOrder,
    /// A genuine delivery sent late.
    Delayed,
    /// A delivery with a signature no secret produced.
    Forged,
    /// An old delivery replayed with its original, stale timestamp.
    Replay,
}

impl DeliveryKind {
    /// Attackers and replays do not retry; real deliveries do.
    pub fn retries(self) -> bool {
        !matches!(self, DeliveryKind::Forged | DeliveryKind::Replay)
    }
}

/// One delivery to make.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The subject of the job it is about (see [`crate::Sim::release_delayed`]).
    pub subject: String,
    pub msg_id: String,
    pub body: Bytes,
    pub kind: DeliveryKind,
    /// Sent after this long.
    pub delay: Duration,
    /// Sign as of this many seconds ago (replays); 0 = now.
    pub backdate_secs: i64,
    /// The job whose final status this delivers, if it does: its acknowledgement is recorded
    /// (`SimJob::completion_acked`).
    pub completes: Option<String>,
}

/// The default retry schedule after a failed attempt (first attempt immediate).
pub fn default_retry_schedule() -> Vec<Duration> {
    [1, 5, 30, 120, 600]
        .into_iter()
        .map(Duration::from_secs)
        .collect()
}

/// Parses `0,1000,5000` (milliseconds between attempts).
pub fn parse_retry_schedule(spec: &str) -> Result<Vec<Duration>, String> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| format!("retry schedule entry {s:?} is not milliseconds"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_and_are_validated() {
        let secret = generate_secret();
        assert!(secret.starts_with("whsec_"));
        assert_eq!(decode_secret(&secret).unwrap().len(), 32);
        assert!(
            decode_secret("whsec_c2hvcnQ=").is_err(),
            "5 bytes is too short"
        );
        assert!(decode_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
    }

    #[test]
    fn multiple_keys_give_space_separated_signatures() {
        let header = signature_header(&[vec![1; 32], vec![2; 32]], "msg_1", 1_700_000_000, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        assert_ne!(parts[0], parts[1]);
    }

    #[test]
    fn parses_retry_schedules() {
        assert_eq!(
            parse_retry_schedule("0, 50,200").unwrap(),
            vec![
                Duration::ZERO,
                Duration::from_millis(50),
                Duration::from_millis(200)
            ]
        );
        assert!(parse_retry_schedule("1s").is_err());
    }
}
