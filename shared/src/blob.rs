//! S3 objects: opening (metadata and body in one GET), ranged reads, tags, writes and presigned
//! URLs.

use std::time::Duration;

use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumMode, ChecksumType, Tag, Tagging};
use base64::Engine;

use crate::inspect::image::ByteSource;
use crate::job::ContentHash;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// An S3 call failed (network, throttling, permissions). Retry later; if it persists, check
    /// the bucket name and the function's IAM policy.
    #[error("S3 {operation} on s3://{bucket}/{key} failed: {detail}")]
    S3 {
        operation: &'static str,
        bucket: String,
        key: String,
        detail: String,
    },
    /// A streamed body could not be read to its end, or grew past its limit; nothing was stored.
    #[error("streaming into s3://{bucket}/{key} stopped: {detail}")]
    Source {
        bucket: String,
        key: String,
        detail: String,
    },
}

impl From<crate::failpoints::Injected> for BlobError {
    fn from(injected: crate::failpoints::Injected) -> Self {
        BlobError::S3 {
            operation: "failpoint",
            bucket: String::new(),
            key: String::new(),
            detail: injected.to_string(),
        }
    }
}

/// A body read chunk by chunk (`None` at its end).
pub trait Chunks {
    fn next_chunk(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<bytes::Bytes>, String>> + Send;
}

impl Chunks for reqwest::Response {
    async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, String> {
        // Without the URL: a vendor's may carry a token.
        self.chunk().await.map_err(|e| e.without_url().to_string())
    }
}

/// Parts of a streamed upload: S3 wants at least 5 MiB for all but the last; this much is all a
/// streamed upload holds in memory.
pub const STREAM_PART_BYTES: usize = 8 * 1024 * 1024;

impl BlobError {
    fn s3<E: std::error::Error + 'static, R: std::fmt::Debug>(
        operation: &'static str,
        object: &ObjectRef,
        err: SdkError<E, R>,
    ) -> Self {
        BlobError::S3 {
            operation,
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            detail: DisplayErrorContext(err).to_string(),
        }
    }
}

/// One object (version) in a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
}

impl ObjectRef {
    /// What the vendor reads of a job: its prepared copy when preprocessing made one, else the
    /// upload.
    pub fn sent_for(job: &crate::job::Job) -> ObjectRef {
        match &job.prepared {
            Some(copy) => ObjectRef {
                bucket: copy.bucket.clone(),
                key: copy.key.clone(),
                version_id: None,
            },
            None => ObjectRef::from(&job.source),
        }
    }
}

/// A job's document: the version of the upload its job was made from.
impl From<&crate::job::SourceObject> for ObjectRef {
    fn from(source: &crate::job::SourceObject) -> Self {
        ObjectRef {
            bucket: source.bucket.clone(),
            key: source.key.clone(),
            version_id: source.version_id.clone(),
        }
    }
}

/// What S3 says about an object (from the `GetObject` that opens it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    pub size: u64,
    pub content_type: Option<String>,
    pub version_id: Option<String>,
    /// S3's own SHA-256 of the whole object, when it has one. Composite checksums of multipart
    /// uploads (a hash of part hashes) are not content hashes and are left out.
    pub sha256: Option<ContentHash>,
    /// How many tags the object has (`x-amz-tagging-count`, which S3 sends with the object to a
    /// caller allowed to read its tags, and leaves out when there are none): 0 saves reading them.
    pub tag_count: u32,
    /// When the object (this version) was written, to the second.
    pub last_modified: Option<crate::time::UnixMillis>,
    /// `x-amz-meta-ocrbridge-benchmark-run`: the object is a quality benchmark's document, not
    /// business traffic (see `quality`).
    pub benchmark_run: Option<String>,
    /// `x-amz-meta-ocrbridge-source`: the uploader's channel (see `segments`).
    pub source: Option<String>,
    /// An archived synchronous answer's vendor request id (`vendors::answer`).
    pub vendor_request_id: Option<String>,
}

/// The user metadata key (`x-amz-meta-…`) that marks a benchmark run's upload.
pub const BENCHMARK_RUN_METADATA: &str = "ocrbridge-benchmark-run";

/// An object being read: its metadata, and its body chunk by chunk.
pub struct Opened {
    pub head: ObjectHead,
    body: ByteStream,
    object: ObjectRef,
}

impl Opened {
    /// The next chunk of the body; `None` at the end.
    pub async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, BlobError> {
        self.body
            .next()
            .await
            .transpose()
            .map_err(|e| BlobError::S3 {
                operation: "GetObject",
                bucket: self.object.bucket.clone(),
                key: self.object.key.clone(),
                detail: e.to_string(),
            })
    }
}

/// `bytes`, gzipped: how vendor payloads are archived (`raw/…`).
pub fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, bytes)?;
    encoder.finish()
}

#[derive(Debug, Clone)]
pub struct Blob {
    s3: aws_sdk_s3::Client,
}

impl Blob {
    pub fn new(s3: aws_sdk_s3::Client) -> Self {
        Blob { s3 }
    }

    /// Opens the object for reading with one `GetObject`, which also answers what `HeadObject`
    /// would (size, type, version, S3's SHA-256, tag count). `None` when the object does not
    /// exist. Dropping the [`Opened`] before the end stops the download.
    pub async fn open(&self, object: &ObjectRef) -> Result<Option<Opened>, BlobError> {
        let result = self
            .s3
            .get_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .set_version_id(object.version_id.clone())
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(err) if matches!(err.as_service_error(), Some(GetObjectError::NoSuchKey(_))) => {
                return Ok(None)
            }
            Err(err)
                if err
                    .raw_response()
                    .is_some_and(|r| r.status().as_u16() == 404) =>
            {
                return Ok(None)
            }
            Err(err) => return Err(BlobError::s3("GetObject", object, err)),
        };
        // A multipart upload's composite checksum is a hash of part hashes, not of the content.
        let composite = out.checksum_type() == Some(&ChecksumType::Composite);
        let sha256 = out
            .checksum_sha256()
            .filter(|c| !composite && !c.contains('-'))
            .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok())
            .and_then(|d| <[u8; 32]>::try_from(d).ok())
            .map(ContentHash::from_bytes);
        let head = ObjectHead {
            size: out.content_length().unwrap_or(0).max(0) as u64,
            content_type: out.content_type().map(str::to_owned),
            version_id: out.version_id().map(str::to_owned),
            sha256,
            tag_count: out.tag_count().unwrap_or(0).max(0) as u32,
            last_modified: out
                .last_modified()
                .and_then(|t| t.to_millis().ok())
                .and_then(|ms| u64::try_from(ms).ok())
                .map(crate::time::UnixMillis),
            benchmark_run: out
                .metadata()
                .and_then(|m| m.get(BENCHMARK_RUN_METADATA))
                .cloned(),
            source: out
                .metadata()
                .and_then(|m| m.get(crate::segments::SOURCE_METADATA))
                .cloned(),
            vendor_request_id: out
                .metadata()
                .and_then(|m| m.get(crate::vendors::answer::REQUEST_ID_METADATA))
                .filter(|r| !r.is_empty())
                .cloned(),
        };
        Ok(Some(Opened {
            head,
            body: out.body,
            object: object.clone(),
        }))
    }

    /// Up to `len` bytes from `offset`.
    pub async fn read_range(
        &self,
        object: &ObjectRef,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>, BlobError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let end = offset + len as u64 - 1;
        let out = self
            .s3
            .get_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .set_version_id(object.version_id.clone())
            .range(format!("bytes={offset}-{end}"))
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            // Asking past the end is not an error for a reader; there are just no bytes.
            Err(err)
                if err
                    .raw_response()
                    .is_some_and(|r| r.status().as_u16() == 416) =>
            {
                return Ok(Vec::new())
            }
            Err(err) => return Err(BlobError::s3("GetObject", object, err)),
        };
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| BlobError::S3 {
                operation: "GetObject",
                bucket: object.bucket.clone(),
                key: object.key.clone(),
                detail: e.to_string(),
            })?
            .into_bytes();
        Ok(bytes.to_vec())
    }

    /// Replaces the object's tags.
    pub async fn put_tags(
        &self,
        object: &ObjectRef,
        tags: &[(&str, &str)],
    ) -> Result<(), BlobError> {
        let tag_set = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(*k).value(tag_value(v)).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BlobError::S3 {
                operation: "PutObjectTagging",
                bucket: object.bucket.clone(),
                key: object.key.clone(),
                detail: e.to_string(),
            })?;
        let tagging = Tagging::builder()
            .set_tag_set(Some(tag_set))
            .build()
            .map_err(|e| BlobError::S3 {
                operation: "PutObjectTagging",
                bucket: object.bucket.clone(),
                key: object.key.clone(),
                detail: e.to_string(),
            })?;
        self.s3
            .put_object_tagging()
            .bucket(&object.bucket)
            .key(&object.key)
            .set_version_id(object.version_id.clone())
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| BlobError::s3("PutObjectTagging", object, e))?;
        Ok(())
    }

    pub async fn tags(&self, object: &ObjectRef) -> Result<Vec<(String, String)>, BlobError> {
        let out = self
            .s3
            .get_object_tagging()
            .bucket(&object.bucket)
            .key(&object.key)
            .set_version_id(object.version_id.clone())
            .send()
            .await
            .map_err(|e| BlobError::s3("GetObjectTagging", object, e))?;
        Ok(out
            .tag_set()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect())
    }

    /// An object, read whole (a small one: a stored result); `None` when it does not exist.
    pub async fn get(&self, object: &ObjectRef) -> Result<Option<Vec<u8>>, BlobError> {
        let Some(mut opened) = self.open(object).await? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        while let Some(chunk) = opened.next_chunk().await? {
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some(bytes))
    }

    /// A gzipped object, read whole and decompressed (an archived vendor payload); `None` when
    /// it does not exist. A body that is not gzip is an error, never passed on as the payload.
    pub async fn get_gunzipped(&self, object: &ObjectRef) -> Result<Option<Vec<u8>>, BlobError> {
        let Some(compressed) = self.get(object).await? else {
            return Ok(None);
        };
        let mut raw = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(compressed.as_slice()),
            &mut raw,
        )
        .map_err(|e| BlobError::Source {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            detail: format!("not gzip: {e}"),
        })?;
        Ok(Some(raw))
    }

    pub async fn put(
        &self,
        object: &ObjectRef,
        body: Vec<u8>,
        content_type: &str,
        content_encoding: Option<&str>,
    ) -> Result<(), BlobError> {
        self.put_with_metadata(object, body, content_type, content_encoding, &[])
            .await
    }

    /// [`Self::put`] with user metadata (`x-amz-meta-<name>`), as an uploader sets it.
    pub async fn put_with_metadata(
        &self,
        object: &ObjectRef,
        body: Vec<u8>,
        content_type: &str,
        content_encoding: Option<&str>,
        metadata: &[(&str, &str)],
    ) -> Result<(), BlobError> {
        let metadata = (!metadata.is_empty()).then(|| {
            metadata
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        });
        self.s3
            .put_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .content_type(content_type)
            .set_content_encoding(content_encoding.map(str::to_owned))
            .set_metadata(metadata)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| BlobError::s3("PutObject", object, e))?;
        Ok(())
    }

    /// Gzips a body as it arrives into `object` with a multipart upload, holding at most one part
    /// in memory: for results too large to read whole. `next` yields the body's chunks; more than
    /// `limit` raw bytes, or a chunk that fails, aborts the upload and stores nothing. Returns the
    /// raw bytes stored.
    pub async fn put_gzip_stream(
        &self,
        object: &ObjectRef,
        body: &mut impl Chunks,
        limit: u64,
    ) -> Result<u64, BlobError> {
        use std::io::Write;
        let source = |detail: String| BlobError::Source {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            detail,
        };
        let upload = self
            .s3
            .create_multipart_upload()
            .bucket(&object.bucket)
            .key(&object.key)
            .content_type("application/json")
            .content_encoding("gzip")
            .send()
            .await
            .map_err(|e| BlobError::s3("CreateMultipartUpload", object, e))?;
        let upload_id = upload.upload_id().unwrap_or_default().to_owned();
        let mut parts = Vec::new();
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut raw: u64 = 0;
        let outcome: Result<(), BlobError> = async {
            loop {
                let chunk = body.next_chunk().await.map_err(&source)?;
                let finished = chunk.is_none();
                if let Some(chunk) = chunk {
                    raw += chunk.len() as u64;
                    if raw > limit {
                        return Err(source(format!("the body is larger than {limit} bytes")));
                    }
                    encoder
                        .write_all(&chunk)
                        .map_err(|e| source(e.to_string()))?;
                }
                let full = encoder.get_ref().len() >= STREAM_PART_BYTES;
                if full || finished {
                    let body = if finished {
                        std::mem::replace(
                            &mut encoder,
                            flate2::write::GzEncoder::new(
                                Vec::new(),
                                flate2::Compression::default(),
                            ),
                        )
                        .finish()
                        .map_err(|e| source(e.to_string()))?
                    } else {
                        std::mem::take(encoder.get_mut())
                    };
                    let number = parts.len() as i32 + 1;
                    let part = self
                        .s3
                        .upload_part()
                        .bucket(&object.bucket)
                        .key(&object.key)
                        .upload_id(&upload_id)
                        .part_number(number)
                        .body(ByteStream::from(body))
                        .send()
                        .await
                        .map_err(|e| BlobError::s3("UploadPart", object, e))?;
                    parts.push(
                        aws_sdk_s3::types::CompletedPart::builder()
                            .part_number(number)
                            .set_e_tag(part.e_tag().map(str::to_owned))
                            .build(),
                    );
                }
                if finished {
                    return Ok(());
                }
            }
        }
        .await;
        if let Err(e) = outcome {
            let _ = self
                .s3
                .abort_multipart_upload()
                .bucket(&object.bucket)
                .key(&object.key)
                .upload_id(&upload_id)
                .send()
                .await;
            return Err(e);
        }
        self.s3
            .complete_multipart_upload()
            .bucket(&object.bucket)
            .key(&object.key)
            .upload_id(&upload_id)
            .multipart_upload(
                aws_sdk_s3::types::CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| BlobError::s3("CompleteMultipartUpload", object, e))?;
        Ok(raw)
    }

    /// A presigned GET URL valid for `expires_in`.
    pub async fn presign_get(
        &self,
        object: &ObjectRef,
        expires_in: Duration,
    ) -> Result<String, BlobError> {
        let config = PresigningConfig::expires_in(expires_in).map_err(|e| BlobError::S3 {
            operation: "presign GetObject",
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            detail: e.to_string(),
        })?;
        let request = self
            .s3
            .get_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .set_version_id(object.version_id.clone())
            .presigned(config)
            .await
            .map_err(|e| BlobError::s3("presign GetObject", object, e))?;
        Ok(request.uri().to_owned())
    }
}

/// S3 tag values allow letters, digits, spaces and `+ - = . _ : / @`, up to 256 characters.
fn tag_value(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " +-=._:/@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(256)
        .collect()
}

/// An object as a [`ByteSource`], for header parsers that follow offsets.
pub struct RangedObject<'a> {
    pub blob: &'a Blob,
    pub object: &'a ObjectRef,
}

impl ByteSource for RangedObject<'_> {
    type Error = BlobError;
    async fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>, BlobError> {
        self.blob.read_range(self.object, offset, len).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tag_values_are_sanitized() {
        assert_eq!(super::tag_value("pdf_encrypted"), "pdf_encrypted");
        assert_eq!(super::tag_value("a,b;c"), "a_b_c");
        assert_eq!(super::tag_value(&"x".repeat(300)).len(), 256);
    }
}
