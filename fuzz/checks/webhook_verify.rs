//! Webhook verification on arbitrary headers and bodies, for both schemes, then each vendor's
//! delivery reader on the body: nothing panics, and nothing unsigned verifies.
//!
//! One check, run by the cargo-fuzz target of the same name (`make fuzz`) and by
//! `tests/fuzz_replay.rs` on every committed input (`make test`).

use ocrbridge::keyring::Secret;
use ocrbridge::signature::Scheme;
use ocrbridge::vendors::webhook::WebhookFormat;

pub fn check(data: &[u8]) {
    // Header lines up to a blank line, then the body.
    let split = data
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or(data.len());
    let (head, body) = data.split_at(split);
    let body = body.get(2..).unwrap_or_default();
    let headers: Vec<(String, String)> = String::from_utf8_lossy(head)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let keys = [Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")];
    for scheme in [
        Scheme::StandardWebhooks {
            tolerance_secs: 300,
        },
        Scheme::HexHmacBody {
            header: "x-signature",
        },
    ] {
        for now in [0, 1_700_000_000, i64::MAX, i64::MIN] {
            // A forger without the key cannot win (a collision would be a finding).
            assert!(scheme.verify(headers.as_slice(), body, &keys, now).is_err());
        }
    }
    if let Ok(payload) = serde_json::from_slice(body) {
        for format in [
            WebhookFormat::Sim {
                tolerance_secs: 300,
            },
            WebhookFormat::Mindee,
        ] {
            let _ = format.read(&payload);
        }
    }
}
