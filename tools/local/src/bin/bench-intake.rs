//! Intake validation benchmark against the local stack (moto): throughput and peak memory.
//!
//! ```text
//! bench-intake prepare --bucket B            # uploads the generated objects (streamed)
//! bench-intake run --bucket B --key K        # validates one object, prints a JSON line
//! ```
//! `scripts/bench-intake.sh` runs both, one process per object, so each peak RSS (VmHWM) is
//! that object's alone. The objects:
//! - `bench/blob-1g.bin`: 1 GiB of pseudo-random bytes (no known type): rejected, but hashed
//!   end to end, which is the worst case for a stream;
//! - `bench/big.pdf`: a 1,500-page PDF of ~400 MB with one image stream per page;
//! - `bench/big.png`: a 9 MB PNG declaring 8000x8000 pixels.

use std::time::Instant;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use intake::validate::validate;
use ocrbridge::aws::{local_sdk_config, AwsClients};
use ocrbridge::blob::{Blob, ObjectRef};
use ocrbridge::inspect::{Declared, Limits};
use ocrbridge_local::bench::Flags;
use ocrbridge_local::moto;

const PART: usize = 8 * 1024 * 1024;

/// Streams `parts` into one object with a multipart upload; only one part is in memory.
async fn upload(
    clients: &AwsClients,
    bucket: &str,
    key: &str,
    mut parts: impl FnMut(usize) -> Option<Vec<u8>>,
) {
    let s3 = &clients.s3;
    let id = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let mut done = Vec::new();
    let mut n = 0;
    while let Some(bytes) = parts(n) {
        n += 1;
        let out = s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(&id)
            .part_number(n as i32)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .unwrap();
        done.push(
            CompletedPart::builder()
                .part_number(n as i32)
                .set_e_tag(out.e_tag)
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap();
    eprintln!("uploaded s3://{bucket}/{key} in {n} parts");
}

/// xorshift: fast, deterministic filler.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The PDF, as a sequence of byte blocks (header, pages with image streams, trailer).
fn pdf_blocks(pages: usize, image_bytes: usize) -> impl Iterator<Item = Vec<u8>> {
    let header = {
        let kids: Vec<String> = (0..pages).map(|i| format!("{} 0 R", 10 + 2 * i)).collect();
        format!(
            "%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [{}] /Count {pages} >>\nendobj\n",
            kids.join(" ")
        )
        .into_bytes()
    };
    let body = (0..pages).map(move |i| {
        let mut page = format!(
            "{} 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /XObject << /Im0 {} 0 R >> >> >>\nendobj\n{} 0 obj\n<< /Type /XObject /Subtype /Image /Width 1000 /Height 1000 /BitsPerComponent 8 /ColorSpace /DeviceGray /Length {image_bytes} >>\nstream\n",
            10 + 2 * i,
            11 + 2 * i,
            11 + 2 * i
        )
        .into_bytes();
        page.extend(noise(i as u64, image_bytes));
        page.extend_from_slice(b"\nendstream\nendobj\n");
        page
    });
    std::iter::once(header).chain(body).chain(std::iter::once(
        b"trailer\n<< /Root 1 0 R >>\n%%EOF\n".to_vec(),
    ))
}

/// Regroups blocks into parts of at least `PART` bytes (S3's minimum is 5 MiB but the last).
fn parts_of(blocks: impl Iterator<Item = Vec<u8>>) -> impl FnMut(usize) -> Option<Vec<u8>> {
    let mut blocks = blocks.peekable();
    move |_| {
        let mut part = Vec::new();
        while part.len() < PART {
            match blocks.next() {
                Some(b) => part.extend(b),
                None => break,
            }
        }
        (!part.is_empty()).then_some(part)
    }
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() {
    let flags = Flags::from_env();
    let flag = |name: &str| flags.get(name);
    let endpoint = flag("--endpoint").unwrap_or_else(moto::endpoint_from_env);
    let bucket = flag("--bucket").expect("--bucket B");
    let clients = AwsClients::from_sdk_config(&local_sdk_config(&endpoint));
    match flags.command() {
        Some("prepare") => {
            let gib = 1024 * 1024 * 1024usize;
            let mut sent = 0usize;
            upload(&clients, &bucket, "bench/blob-1g.bin", move |n| {
                (sent < gib).then(|| {
                    let len = PART.min(gib - sent);
                    sent += len;
                    noise(n as u64 + 7, len)
                })
            })
            .await;
            upload(
                &clients,
                &bucket,
                "bench/big.pdf",
                parts_of(pdf_blocks(1_500, 270_000)),
            )
            .await;
            let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
            png.extend_from_slice(&8000u32.to_be_bytes());
            png.extend_from_slice(&8000u32.to_be_bytes());
            png.extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, 0, 0]);
            png.extend(noise(3, 9 * 1024 * 1024));
            clients
                .s3
                .put_object()
                .bucket(&bucket)
                .key("bench/big.png")
                .body(ByteStream::from(png))
                .send()
                .await
                .unwrap();
            eprintln!("uploaded s3://{bucket}/bench/big.png");
        }
        Some("run") => {
            let key = flag("--key").expect("--key K");
            let blob = Blob::new(clients.s3.clone());
            let object = ObjectRef {
                bucket,
                key: key.clone(),
                version_id: None,
            };
            let started = Instant::now();
            let opened = blob.open(&object).await.unwrap().expect("object exists");
            let head = opened.head.clone();
            let validated = validate(
                &blob,
                &object,
                opened,
                &Declared::default(),
                &Limits {
                    max_image_bytes: 2 * 1024 * 1024 * 1024,
                    max_pdf_bytes: 2 * 1024 * 1024 * 1024,
                    ..Limits::default()
                },
            )
            .await
            .unwrap();
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{}",
                serde_json::json!({
                    "key": key,
                    "bytes": head.size,
                    "verdict": match &validated.verdict { Ok(()) => "accepted".to_owned(), Err(r) => r.code.to_string() },
                    "pages": validated.inspection.pages,
                    "seconds": (secs * 1000.0).round() / 1000.0,
                    "mb_per_s": ((head.size as f64 / 1e6 / secs) * 10.0).round() / 10.0,
                    "peak_rss_mb": (peak_rss_mb() * 10.0).round() / 10.0,
                })
            );
        }
        _ => eprintln!("usage: bench-intake prepare|run --bucket B [--key K] [--endpoint URL]"),
    }
}
