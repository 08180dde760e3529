//! Validating one object: type by magic bytes, limits, image headers, a streaming PDF scan, and
//! the content hash — all in bounded memory.

use ocrbridge::blob::{Blob, BlobError, ObjectHead, ObjectRef, RangedObject};
use ocrbridge::inspect::pdf::PdfScanner;
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
    let first = blob
        .read_range(object, 0, inspect::HEAD_BYTES.min(head.size as usize))
        .await?;
    let detected = inspect::detect(&first);
    inspection.file_type = detected;
    inspection.type_mismatch = detected.and_then(|t| declared.mismatch(t));

    let file_type = match limits.check_type_and_size(detected, head.size) {
        Ok(t) => t,
        Err(rejection) => {
            return Ok(Validated {
                content: content_hash(blob, object, head).await?,
                inspection,
                verdict: Err(rejection),
            })
        }
    };

    if file_type == FileType::Pdf {
        // One pass: hash and scan together.
        let mut hasher = Sha256::new();
        let mut scanner = PdfScanner::new();
        blob.stream(object, |chunk| {
            hasher.update(chunk);
            scanner.feed(chunk);
        })
        .await?;
        let info = scanner.finish();
        inspection.pages = info.pages;
        inspection.text_layer = Some(info.text_layer());
        let content = head
            .sha256
            .unwrap_or_else(|| ContentHash::from_bytes(hasher.finalize().into()));
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
        content: content_hash(blob, object, head).await?,
        inspection,
        verdict,
    })
}

/// S3's full-object SHA-256 when it has one, else a streaming hash of the content.
async fn content_hash(
    blob: &Blob,
    object: &ObjectRef,
    head: &ObjectHead,
) -> Result<ContentHash, BlobError> {
    if let Some(sha) = head.sha256 {
        return Ok(sha);
    }
    let mut hasher = Sha256::new();
    blob.stream(object, |chunk| hasher.update(chunk)).await?;
    Ok(ContentHash::from_bytes(hasher.finalize().into()))
}
