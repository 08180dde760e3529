//! Webhook verification throughput against raw HMAC-SHA256 of the same bytes.
//!
//! `cargo bench -p ocrbridge --bench verify` — prints, for 1 KB and 100 KB bodies, deliveries
//! verified per second by `Scheme::StandardWebhooks` (header parsing, timestamp check, base64,
//! constant-time compare, three keys as during a rotation with the match last) and by a bare
//! HMAC over `{id}.{ts}.{body}` with one key, and the ratio.

use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use ocrbridge::keyring::Secret;
use ocrbridge::signature::{sign_standard, Scheme};
use sha2::Sha256;

fn per_second(mut f: impl FnMut()) -> f64 {
    // Warm up, then run for a fixed time.
    for _ in 0..200 {
        f();
    }
    let window = Duration::from_millis(1500);
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < window {
        for _ in 0..100 {
            f();
        }
        n += 100;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let b64 = base64::engine::general_purpose::STANDARD;
    let keys: Vec<Secret> = (1u8..=3)
        .map(|b| Secret::new(format!("whsec_{}", b64.encode([b; 32]))))
        .collect();
    let scheme = Scheme::StandardWebhooks {
        tolerance_secs: 300,
    };
    let now = 1_700_000_000i64;
    println!(
        "{:>8} {:>14} {:>14} {:>7}",
        "body", "verify/s", "raw hmac/s", "ratio"
    );
    for size in [1024usize, 100 * 1024] {
        let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let sig = sign_standard(&keys[2], "msg_bench", now, &body).unwrap();
        let headers = vec![
            ("webhook-id".to_owned(), "msg_bench".to_owned()),
            ("webhook-timestamp".to_owned(), now.to_string()),
            ("webhook-signature".to_owned(), sig),
        ];
        let verify = per_second(|| {
            black_box(
                scheme
                    .verify(headers.as_slice(), black_box(&body), &keys, now)
                    .unwrap(),
            );
        });
        let key = [3u8; 32];
        let raw = per_second(|| {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
            mac.update(b"msg_bench.1700000000.");
            mac.update(black_box(&body));
            black_box(mac.finalize());
        });
        println!(
            "{:>7}B {:>14.0} {:>14.0} {:>7.2}",
            size,
            verify,
            raw,
            raw / verify
        );
    }
}
