//! Validating one object: type by magic bytes, limits, image headers, a streaming PDF scan, and
//! the content hash — all in bounded memory.

use ocrbridge::blob::{Blob, BlobError, ObjectHead, ObjectRef, Opened, RangedObject};
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

/// Validates an opened object, reading its body once and no further than needed: the first
/// [`inspect::HEAD_BYTES`] always; the whole body when S3 has no SHA-256 of it (to hash it) or it
/// is a PDF (to scan it). An image S3 already hashed is read no further than its header (rare
/// image layouts ask for more through ranged reads).
pub async fn validate(
    blob: &Blob,
    object: &ObjectRef,
    mut opened: Opened,
    declared: &Declared,
    limits: &Limits,
) -> Result<Validated, BlobError> {
    let head = opened.head.clone();
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
    // The first bytes, hashed as they come. `first` can run past HEAD_BYTES by part of a chunk.
    let mut hasher = Sha256::new();
    let mut first = Vec::new();
    while first.len() < inspect::HEAD_BYTES {
        match opened.next_chunk().await? {
            Some(chunk) => {
                hasher.update(&chunk);
                first.extend_from_slice(&chunk);
            }
            None => break,
        }
    }
    let detected = inspect::detect(&first);
    inspection.file_type = detected;
    inspection.type_mismatch = detected.and_then(|t| declared.mismatch(t));

    let file_type = match limits.check_type_and_size(detected, head.size) {
        Ok(t) => t,
        Err(rejection) => {
            return Ok(Validated {
                content: finish(&head, &mut opened, hasher).await?,
                inspection,
                verdict: Err(rejection),
            })
        }
    };

    if file_type == FileType::Pdf {
        let mut scanner = PdfScanner::new();
        scanner.feed(&first);
        // The whole body, hashed and scanned in the same pass.
        let mut hasher = hasher;
        while let Some(chunk) = opened.next_chunk().await? {
            hasher.update(&chunk);
            scanner.feed(&chunk);
        }
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

    let content = finish(&head, &mut opened, hasher).await?;
    drop(opened);
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

/// The content hash: S3's SHA-256 if it has one (the rest of the body is then not read), or
/// the rest of the body read into `hasher`.
async fn finish(
    head: &ObjectHead,
    opened: &mut Opened,
    mut hasher: Sha256,
) -> Result<ContentHash, BlobError> {
    if let Some(sha) = head.sha256 {
        return Ok(sha);
    }
    while let Some(chunk) = opened.next_chunk().await? {
        hasher.update(&chunk);
    }
    Ok(ContentHash::from_bytes(hasher.finalize().into()))
}
