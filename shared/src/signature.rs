//! Webhook signature schemes, verified over the exact raw body bytes.
//!
//! Rules every scheme follows (ANCHORS.md §3, and the bugs it lists):
//! - verify **before** parsing; the body is bytes, never re-serialized, never required to be
//!   UTF-8 (the caller base64-decodes `isBase64Encoded` bodies first);
//! - compare MACs in constant time (`Mac::verify_slice`);
//! - timestamps are checked in **both** directions against a configurable tolerance;
//! - any one of several signatures and any one of several keys may match (rotation);
//! - rejections carry a reason for metrics but say nothing useful to the sender.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::keyring::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Why a delivery was refused. The names are metric dimension values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// A required header is absent.
    Missing,
    /// A header is present but unparseable.
    Malformed,
    /// The timestamp is older than the tolerance.
    Stale,
    /// The timestamp is further in the future than the tolerance.
    Future,
    /// No signature matches any key.
    Signature,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Missing => "missing",
            Rejection::Malformed => "malformed",
            Rejection::Stale => "stale",
            Rejection::Future => "future",
            Rejection::Signature => "signature",
        }
    }
}

/// What a verified delivery says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The sender's delivery id, for deduplication (a body hash when the scheme has none).
    pub event_id: String,
    /// The signed timestamp (unix seconds), when the scheme has one.
    pub timestamp: Option<i64>,
}

/// Header access, case-insensitive (HTTP header names are).
pub trait Headers {
    fn get(&self, name: &str) -> Option<&str>;
}

impl Headers for [(String, String)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Headers for http::HeaderMap {
    fn get(&self, name: &str) -> Option<&str> {
        http::HeaderMap::get(self, name).and_then(|v| v.to_str().ok())
    }
}

/// A signature scheme, chosen per vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature` with
    /// space-separated `v1,<base64>`; signed content `{id}.{timestamp}.{body}`; `whsec_` secrets.
    StandardWebhooks { tolerance_secs: i64 },
    /// A hex HMAC-SHA256 of the body in one header (Mindee v2's `X-Signature`), keyed with the
    /// secret's bytes, over the body **with CR and LF removed** — what Mindee's SDKs hash, and
    /// checked against Mindee's published signed example. Removing them changes nothing a JSON
    /// reader sees (a raw line break cannot occur inside a JSON string), so it opens no forgery.
    /// No timestamp: replays are caught by deduplication only (by the vendor's event id).
    HexHmacBody { header: &'static str },
}

/// The Standard Webhooks default tolerance: 5 minutes.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// Decodes a Standard Webhooks secret (`whsec_` + base64); a secret without the prefix is taken
/// as base64 too, as the reference libraries do.
pub fn standard_key(secret: &Secret) -> Option<Vec<u8>> {
    let encoded = secret
        .expose()
        .strip_prefix("whsec_")
        .unwrap_or(secret.expose());
    B64.decode(encoded).ok().filter(|k| !k.is_empty())
}

impl Scheme {
    /// Verifies `body` against `headers` with any of `keys`, as of `now` (unix seconds).
    pub fn verify(
        &self,
        headers: &(impl Headers + ?Sized),
        body: &[u8],
        keys: &[Secret],
        now: i64,
    ) -> Result<Verified, Rejection> {
        match *self {
            Scheme::StandardWebhooks { tolerance_secs } => {
                let id = headers.get("webhook-id").ok_or(Rejection::Missing)?;
                let timestamp_text = headers.get("webhook-timestamp").ok_or(Rejection::Missing)?;
                let signatures = headers.get("webhook-signature").ok_or(Rejection::Missing)?;
                if id.is_empty() || id.len() > 256 {
                    return Err(Rejection::Malformed);
                }
                let timestamp: i64 = timestamp_text
                    .trim()
                    .parse()
                    .map_err(|_| Rejection::Malformed)?;
                // The timestamp is the sender's: checked arithmetic, so an extreme one is a
                // rejection and never an overflow.
                if now
                    .checked_sub(timestamp)
                    .is_none_or(|age| age > tolerance_secs)
                    && timestamp <= now
                {
                    return Err(Rejection::Stale);
                }
                if timestamp
                    .checked_sub(now)
                    .is_none_or(|ahead| ahead > tolerance_secs)
                    && timestamp > now
                {
                    return Err(Rejection::Future);
                }
                let candidates: Vec<Vec<u8>> = signatures
                    .split(' ')
                    .filter_map(|entry| entry.strip_prefix("v1,"))
                    .filter_map(|sig| B64.decode(sig).ok())
                    .collect();
                if candidates.is_empty() {
                    return Err(Rejection::Malformed);
                }
                for key in keys.iter().filter_map(standard_key) {
                    let mut mac =
                        HmacSha256::new_from_slice(&key).map_err(|_| Rejection::Signature)?;
                    mac.update(id.as_bytes());
                    mac.update(b".");
                    mac.update(timestamp_text.trim().as_bytes());
                    mac.update(b".");
                    mac.update(body);
                    for candidate in &candidates {
                        if mac.clone().verify_slice(candidate).is_ok() {
                            return Ok(Verified {
                                event_id: id.to_owned(),
                                timestamp: Some(timestamp),
                            });
                        }
                    }
                }
                Err(Rejection::Signature)
            }
            Scheme::HexHmacBody { header } => {
                let given = headers.get(header).ok_or(Rejection::Missing)?;
                let given = hex::decode(given.trim()).map_err(|_| Rejection::Malformed)?;
                for key in keys {
                    let mac = hex_body_mac(key, body).ok_or(Rejection::Signature)?;
                    if mac.verify_slice(&given).is_ok() {
                        return Ok(Verified {
                            event_id: format!("sha256:{}", hex::encode(Sha256::digest(body))),
                            timestamp: None,
                        });
                    }
                }
                Err(Rejection::Signature)
            }
        }
    }
}

/// Signs like Mindee: the hex HMAC-SHA256 of the body without CR and LF, with the secret's
/// text as the key. For `ocrbridge audit`'s live check and tests; production never signs.
pub fn sign_hex_body(secret: &Secret, body: &[u8]) -> Option<String> {
    Some(hex::encode(
        hex_body_mac(secret, body)?.finalize().into_bytes(),
    ))
}

/// Mindee's MAC: HMAC-SHA256 keyed with the secret's text over the body without CR and LF (its
/// SDKs strip them, so a body re-wrapped on the way still verifies).
fn hex_body_mac(secret: &Secret, body: &[u8]) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes()).ok()?;
    for line in body.split(|b| *b == b'\r' || *b == b'\n') {
        mac.update(line);
    }
    Some(mac)
}

/// Signs like a Standard Webhooks sender. Used by rotation's `testSecret` to prove the pending
/// secret verifies, and by tests; production never signs.
pub fn sign_standard(secret: &Secret, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = standard_key(secret)?;
    let mut mac = HmacSha256::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Some(format!("v1,{}", B64.encode(mac.finalize().into_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn secret(byte: u8) -> Secret {
        Secret::new(format!("whsec_{}", B64.encode([byte; 32])))
    }

    fn headers(id: &str, ts: i64, sig: &str) -> Vec<(String, String)> {
        vec![
            ("Webhook-Id".into(), id.into()),
            ("webhook-timestamp".into(), ts.to_string()),
            ("webhook-signature".into(), sig.into()),
        ]
    }

    const STD: Scheme = Scheme::StandardWebhooks {
        tolerance_secs: DEFAULT_TOLERANCE_SECS,
    };

    #[test]
    fn accepts_a_valid_signature_with_any_key_and_any_entry() {
        let body = br#"{"type":"document.status_changed"}"#;
        let good = sign_standard(&secret(1), "msg_1", NOW, body).unwrap();
        let other = sign_standard(&secret(2), "msg_1", NOW, body).unwrap();
        let multi = format!("v1,bm90IGEgc2ln {other} {good}");
        let verified = STD
            .verify(
                headers("msg_1", NOW, &multi).as_slice(),
                body,
                &[secret(3), secret(1)],
                NOW,
            )
            .unwrap();
        assert_eq!(verified.event_id, "msg_1");
        assert_eq!(verified.timestamp, Some(NOW));
    }

    #[test]
    fn every_rejection_reason() {
        let body = b"{}";
        let sig = sign_standard(&secret(1), "msg_1", NOW, body).unwrap();
        let keys = [secret(1)];
        let h = headers("msg_1", NOW, &sig);
        let missing: Vec<(String, String)> = h[1..].to_vec();
        assert_eq!(
            STD.verify(missing.as_slice(), body, &keys, NOW),
            Err(Rejection::Missing)
        );
        assert_eq!(
            STD.verify(headers("msg_1", NOW, "v2,abc").as_slice(), body, &keys, NOW),
            Err(Rejection::Malformed)
        );
        let mut bad_ts = h.clone();
        bad_ts[1].1 = "yesterday".into();
        assert_eq!(
            STD.verify(bad_ts.as_slice(), body, &keys, NOW),
            Err(Rejection::Malformed)
        );
        assert_eq!(
            STD.verify(h.as_slice(), body, &keys, NOW + 301),
            Err(Rejection::Stale)
        );
        assert_eq!(
            STD.verify(h.as_slice(), body, &keys, NOW - 301),
            Err(Rejection::Future)
        );
        assert!(
            STD.verify(h.as_slice(), body, &keys, NOW + 300).is_ok(),
            "the window is inclusive"
        );
        assert_eq!(
            STD.verify(h.as_slice(), b"{ }", &keys, NOW),
            Err(Rejection::Signature),
            "body changed"
        );
        assert_eq!(
            STD.verify(h.as_slice(), body, &[secret(9)], NOW),
            Err(Rejection::Signature)
        );
        let mut other_id = h.clone();
        other_id[0].1 = "msg_2".into();
        assert_eq!(
            STD.verify(other_id.as_slice(), body, &keys, NOW),
            Err(Rejection::Signature)
        );
    }

    #[test]
    fn binary_bodies_are_verified_as_bytes() {
        // 0xff never occurs in UTF-8.
        let body: &[u8] = &[0xff, 0x00, 0xfe, b'{', 0x80];
        let sig = sign_standard(&secret(4), "msg_b", NOW, body).unwrap();
        assert!(STD
            .verify(
                headers("msg_b", NOW, &sig).as_slice(),
                body,
                &[secret(4)],
                NOW
            )
            .is_ok());
    }

    /// The Standard Webhooks specification's published test vector.
    #[test]
    fn matches_the_specification_vector() {
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = br#"{"test": 2432232314}"#;
        let sig = sign_standard(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn hex_hmac_of_the_body() {
        let scheme = Scheme::HexHmacBody {
            header: "x-signature",
        };
        let key = Secret::new("mindee-webhook-secret");
        let body = br#"{"job":{"id":"j1"}}"#;
        let mut mac = HmacSha256::new_from_slice(b"mindee-webhook-secret").unwrap();
        mac.update(body);
        let sig = hex::encode(mac.finalize().into_bytes());
        assert_eq!(sign_hex_body(&key, body).as_deref(), Some(sig.as_str()));
        let h = vec![("X-Signature".to_owned(), sig.clone())];
        let verified = scheme
            .verify(h.as_slice(), body, std::slice::from_ref(&key), NOW)
            .unwrap();
        assert!(verified.event_id.starts_with("sha256:"));
        assert_eq!(
            scheme.verify(h.as_slice(), b"{}", std::slice::from_ref(&key), NOW),
            Err(Rejection::Signature)
        );
        let bad = vec![("x-signature".to_owned(), "zz".to_owned())];
        assert_eq!(
            scheme.verify(bad.as_slice(), body, &[key], NOW),
            Err(Rejection::Malformed)
        );
    }

    /// Mindee's SDKs hash the body without CR and LF: a delivery whose body gained line breaks on
    /// the way (a proxy, a pretty-printer) still verifies; any other change does not.
    #[test]
    fn hex_hmac_covers_the_body_without_line_breaks() {
        let scheme = Scheme::HexHmacBody {
            header: "x-signature",
        };
        let key = Secret::new("ogNjY44MhvKPGTtVsI8zG82JqWQa68woYQH");
        let compact = br#"{"inference":{"id":"i1","file":{"alias":"doc-1"}}}"#;
        let mut mac = HmacSha256::new_from_slice(key.expose().as_bytes()).unwrap();
        mac.update(compact);
        let h = vec![(
            "x-signature".to_owned(),
            hex::encode(mac.finalize().into_bytes()),
        )];
        let keys = std::slice::from_ref(&key);
        assert!(scheme.verify(h.as_slice(), compact, keys, NOW).is_ok());
        let with_breaks = b"{\"inference\":{\"id\":\"i1\",\r\n\"file\":{\"alias\":\"doc-1\"}}}\n";
        assert!(scheme.verify(h.as_slice(), with_breaks, keys, NOW).is_ok());
        let altered = br#"{"inference":{"id":"i2","file":{"alias":"doc-1"}}}"#;
        assert_eq!(
            scheme.verify(h.as_slice(), altered, keys, NOW),
            Err(Rejection::Signature)
        );
        let spaced = br#"{"inference": {"id":"i1","file":{"alias":"doc-1"}}}"#;
        assert_eq!(
            scheme.verify(h.as_slice(), spaced, keys, NOW),
            Err(Rejection::Signature),
            "only CR and LF are removed"
        );
    }

    /// Timestamps anywhere in i64 are rejected, never an arithmetic overflow (a panic in debug
    /// builds, a wrapped comparison in release).
    #[test]
    fn extreme_timestamps_are_rejected_not_overflowed() {
        let body = b"{}";
        for (timestamp, expected) in [
            (i64::MIN, Rejection::Stale),
            (i64::MIN + 1, Rejection::Stale),
            (i64::MAX, Rejection::Future),
            (-1, Rejection::Stale),
        ] {
            let h = headers("msg_x", timestamp, "v1,AAAA");
            assert_eq!(
                STD.verify(h.as_slice(), body, &[secret(1)], NOW),
                Err(expected),
                "{timestamp}"
            );
            // And from the other side: a clock at an extreme.
            let h = headers("msg_x", 0, "v1,AAAA");
            assert!(STD
                .verify(h.as_slice(), body, &[secret(1)], i64::MIN)
                .is_err());
            assert!(STD
                .verify(h.as_slice(), body, &[secret(1)], i64::MAX)
                .is_err());
        }
    }
}
