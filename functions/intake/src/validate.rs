//! Validating one object: type by magic bytes, limits, image headers, a streaming PDF scan, and
//! the content hash — all in bounded memory.

use ocrbridge::blob::{Blob, BlobError, ObjectHead, ObjectRef, RangedObject};
use ocrbridge::inspect::pdf::{PdfInfo, PdfScanner};
use ocrbridge::inspect::{self, image, Declared, FileType, Limits, Rejection};
use ocrbridge::job::{ContentHash, Inspection};
use sha2::{Digest, Sha256};

/// The outcome of validation. The content hash is computed for rejected documents too: the job
/// that records the rejection is keyed by it, like every job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    pub content: ContentHash,
    pub inspection: Inspection,
    pub verdict: Result<(), Rejection>,
}

pub async fn validate(
    blob: &Blob,
    object: &ObjectRef,
    head: &ObjectHead,
    declared: &Declared,
    limits: &Limits,
) -> Result<Validated, BlobError> {
    let mut inspection = Inspection {
        size_bytes: head.size,
        ..Inspection::default()
    };
    if head.size == 0 {
        return Ok(Validated {
            content: ContentHash::of(b""),
            verdict: limits.check_type_and_size(None, 0).map(|_| ()),
            inspection,
        });
    }
    // Without S3's SHA-256 the whole object is read to hash it anyway: read it once, and take the
    // first bytes and the PDF scan from that same pass (one GET, not a ranged GET and a stream).
    let (content, pass) = match head.sha256 {
        Some(sha) => (sha, None),
        None => {
            let pass = read_once(blob, object).await?;
            (pass.sha256, Some(pass))
        }
    };
    let first = match &pass {
        Some(pass) => pass.first.clone(),
        None => {
            blob.read_range(object, 0, inspect::HEAD_BYTES.min(head.size as usize))
                .await?
        }
    };
    let detected = inspect::detect(&first);
    inspection.file_type = detected;
    inspection.type_mismatch = detected.and_then(|t| declared.mismatch(t));

    let file_type = match limits.check_type_and_size(detected, head.size) {
        Ok(t) => t,
        Err(rejection) => {
            return Ok(Validated {
                content,
                inspection,
                verdict: Err(rejection),
            })
        }
    };

    if file_type == FileType::Pdf {
        let info = match pass.and_then(|p| p.pdf) {
            Some(info) => info,
            None => {
                let mut scanner = PdfScanner::new();
                blob.stream(object, |chunk| scanner.feed(chunk)).await?;
                scanner.finish()
            }
        };
        inspection.pages = info.pages;
        inspection.text_layer = Some(info.text_layer());
        return Ok(Validated {
            content,
            verdict: limits.check_pdf(&info),
            inspection,
        });
    }

    let source = RangedObject { blob, object };
    let dimensions = image::dimensions(file_type, &first, &source).await?;
    let verdict = limits.check_image(dimensions).map(|_| ());
    if verdict.is_ok() {
        inspection.pages = Some(1);
    }
    Ok(Validated {
        content,
        inspection,
        verdict,
    })
}

/// One streaming read of the whole object: its hash, its first [`inspect::HEAD_BYTES`], and the
/// PDF scan if those bytes say it is a PDF. Memory: the first bytes plus one chunk.
struct OnePass {
    first: Vec<u8>,
    sha256: ContentHash,
    pdf: Option<PdfInfo>,
}

async fn read_once(blob: &Blob, object: &ObjectRef) -> Result<OnePass, BlobError> {
    let mut hasher = Sha256::new();
    let mut first = Vec::new();
    let mut scanner: Option<PdfScanner> = None;
    let mut deciding = true;
    let decide = |first: &[u8]| {
        (inspect::detect(first) == Some(FileType::Pdf)).then(|| {
            let mut scanner = PdfScanner::new();
            scanner.feed(first);
            scanner
        })
    };
    blob.stream(object, |chunk| {
        hasher.update(chunk);
        if let Some(scanner) = scanner.as_mut() {
            scanner.feed(chunk);
        } else if deciding {
            first.extend_from_slice(chunk);
            if first.len() >= inspect::HEAD_BYTES {
                deciding = false;
                scanner = decide(&first);
            }
        }
    })
    .await?;
    if deciding {
        // The whole object was shorter than the head.
        scanner = decide(&first);
    }
    first.truncate(inspect::HEAD_BYTES);
    Ok(OnePass {
        first,
        sha256: ContentHash::from_bytes(hasher.finalize().into()),
        pdf: scanner.map(PdfScanner::finish),
    })
}
