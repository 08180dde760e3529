//! Validating one object: type by magic bytes, limits, image headers, a streaming PDF scan, and
//! the content hash — all in bounded memory.

use ocrbridge::blob::{Blob, BlobError, ObjectRef, Opened, RangedObject};
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
    // The first bytes, hashed as they come unless S3 already has the hash. `first` can run past
    // HEAD_BYTES by part of a chunk.
    let mut content = match head.sha256 {
        Some(sha) => Content::FromS3(sha),
        None => Content::Reading(Sha256::new()),
    };
    let mut first = Vec::new();
    while first.len() < inspect::HEAD_BYTES {
        match opened.next_chunk().await? {
            Some(chunk) => {
                content.update(&chunk);
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
            read_rest(&mut opened, &mut content, None).await?;
            return Ok(Validated {
                content: content.finish(),
                inspection,
                verdict: Err(rejection),
            });
        }
    };

    if file_type == FileType::Pdf {
        // The whole body, scanned (and hashed, if S3 has no hash) in the same pass.
        let mut scanner = PdfScanner::new();
        scanner.feed(&first);
        read_rest(&mut opened, &mut content, Some(&mut scanner)).await?;
        let info = scanner.finish();
        inspection.pages = info.pages;
        inspection.text_layer = Some(info.text_layer());
        inspection.images = Some(info.has_images);
        inspection.dpi = info.scan_dpi();
        return Ok(Validated {
            content: content.finish(),
            verdict: limits.check_pdf(&info),
            inspection,
        });
    }

    read_rest(&mut opened, &mut content, None).await?;
    drop(opened);
    let source = RangedObject { blob, object };
    let dimensions = image::dimensions(file_type, &first, &source).await?;
    inspection.dpi = image::declared_dpi(file_type, &first);
    let verdict = limits.check_image(dimensions).map(|_| ());
    if verdict.is_ok() {
        inspection.pages = Some(1);
    }
    Ok(Validated {
        content: content.finish(),
        inspection,
        verdict,
    })
}

/// Where the content hash comes from: S3's own SHA-256 of the object, or one computed while
/// reading the whole body.
enum Content {
    FromS3(ContentHash),
    Reading(Sha256),
}

impl Content {
    fn update(&mut self, chunk: &[u8]) {
        if let Content::Reading(hasher) = self {
            hasher.update(chunk);
        }
    }

    fn finish(self) -> ContentHash {
        match self {
            Content::FromS3(sha) => sha,
            Content::Reading(hasher) => ContentHash::from_bytes(hasher.finalize().into()),
        }
    }
}

/// Reads the rest of the body if anything needs it — the hash being computed, or `scanner` —
/// giving each chunk to both; otherwise reads nothing more.
async fn read_rest(
    opened: &mut Opened,
    content: &mut Content,
    mut scanner: Option<&mut PdfScanner>,
) -> Result<(), BlobError> {
    if matches!(content, Content::FromS3(_)) && scanner.is_none() {
        return Ok(());
    }
    while let Some(chunk) = opened.next_chunk().await? {
        content.update(&chunk);
        if let Some(scanner) = scanner.as_deref_mut() {
            scanner.feed(&chunk);
        }
    }
    Ok(())
}
