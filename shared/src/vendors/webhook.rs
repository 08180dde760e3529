//! What a vendor's webhook says, per vendor: how it is signed ([`Scheme`]) and, once verified,
//! which vendor job it is about, its status, the reference of ours it carries, and the id to
//! deduplicate it by. The webhook function reads deliveries through this, so a vendor's wire
//! format lives next to its adapter, not in the function.
//!
//! | vendor | signature | event id (dedupe) | our reference |
//! |---|---|---|---|
//! | sim | Standard Webhooks (`webhook-id`, timestamp, `v1,` base64 HMAC) | `webhook-id` | `data.external_ref` |
//! | mindee | `X-Signature`: hex HMAC-SHA256 of the body without CR/LF, **no timestamp** | the inference id (`mindee-inference:…`), or the failed job's (`mindee-job:…:failed`) | `inference.file.alias` / `job.alias` |
//!
//! Mindee's scheme is weaker than Standard Webhooks: with no signed timestamp, a captured
//! delivery verifies for ever. The only replay protection is the dedupe claim on the inference
//! id, which lasts as long as the claim's TTL (a day); after it, a replayed delivery reaches
//! parse, which finds the job already settled and changes nothing.

use serde_json::Value;

use super::select::VendorKind;
use crate::signature::Scheme;

/// How a vendor's webhooks look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// The simulator: Standard Webhooks, `{type, data: {id, status, external_ref}}`.
    Sim { tolerance_secs: i64 },
    /// Mindee v2: the inference as the body (or the failed job), hex HMAC in `X-Signature`.
    Mindee,
}

/// A verified delivery, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub vendor_job_id: String,
    /// `succeeded`, `failed`, `processing`…, in the simulator's words (parse asks the vendor
    /// anyway; this decides only whether the delivery is worth a notice).
    pub status: String,
    /// Our job id as we sent it, if the delivery carries one.
    pub reference: Option<String>,
    /// The vendor's own id for this event, when its payload has a better one than the
    /// signature scheme's.
    pub event_id: Option<String>,
}

impl WebhookFormat {
    /// The format of `vendor`'s webhooks; `None` for a vendor that sends none (Textract's
    /// completions come through SNS, Azure is polled).
    pub fn for_vendor(vendor: VendorKind, tolerance_secs: i64) -> Option<Self> {
        match vendor {
            VendorKind::Sim => Some(WebhookFormat::Sim { tolerance_secs }),
            VendorKind::Mindee => Some(WebhookFormat::Mindee),
            VendorKind::Textract | VendorKind::Azure => None,
        }
    }

    pub fn scheme(self) -> Scheme {
        match self {
            WebhookFormat::Sim { tolerance_secs } => Scheme::StandardWebhooks { tolerance_secs },
            WebhookFormat::Mindee => Scheme::HexHmacBody {
                header: "x-signature",
            },
        }
    }

    /// Reads a verified payload; `Err` names what is missing.
    pub fn read(self, payload: &Value) -> Result<Delivery, &'static str> {
        match self {
            WebhookFormat::Sim { .. } => {
                let data = &payload["data"];
                Ok(Delivery {
                    vendor_job_id: data["id"].as_str().ok_or("data.id")?.to_owned(),
                    status: data["status"].as_str().ok_or("data.status")?.to_owned(),
                    reference: data["external_ref"].as_str().map(str::to_owned),
                    event_id: None,
                })
            }
            WebhookFormat::Mindee => {
                let inference = &payload["inference"];
                if inference.is_object() {
                    let id = inference["id"].as_str().ok_or("inference.id")?;
                    return Ok(Delivery {
                        vendor_job_id: inference["job"]["id"]
                            .as_str()
                            .ok_or("inference.job.id")?
                            .to_owned(),
                        status: "succeeded".into(),
                        reference: inference["file"]["alias"].as_str().map(str::to_owned),
                        event_id: Some(format!("mindee-inference:{id}")),
                    });
                }
                let job = &payload["job"];
                let id = job["id"].as_str().ok_or("inference or job")?;
                let status = match job["status"].as_str().ok_or("job.status")? {
                    "Failed" => "failed",
                    "Processing" => "processing",
                    "Processed" => "succeeded",
                    _ => "unknown",
                };
                Ok(Delivery {
                    vendor_job_id: id.to_owned(),
                    status: status.into(),
                    reference: job["alias"].as_str().map(str::to_owned),
                    event_id: Some(format!("mindee-job:{id}:{status}")),
                })
            }
        }
    }

    /// How long a dedupe claim must last: past the window in which a replay could pass the
    /// timestamp check; a day for a scheme with no timestamp, where the claim is the only guard.
    /// The largest body accepted by default (`WEBHOOK_MAX_BODY_BYTES` overrides it): a small
    /// notice from the simulator, but the **whole inference** from Mindee, which grows with
    /// the document — so up to Lambda's own 6 MB request limit (a body past that is refused by
    /// Lambda before the function runs, and reconcile polls the job instead).
    pub fn default_max_body_bytes(self) -> usize {
        match self {
            WebhookFormat::Sim { .. } => 256 * 1024,
            WebhookFormat::Mindee => 6 * 1024 * 1024,
        }
    }

    pub fn dedupe_ttl(self) -> std::time::Duration {
        let window = match self {
            WebhookFormat::Sim { tolerance_secs } => tolerance_secs.max(0) as u64,
            WebhookFormat::Mindee => 86_400,
        };
        std::time::Duration::from_secs(2 * window + 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_each_vendors_deliveries() {
        let sim = WebhookFormat::Sim {
            tolerance_secs: 300,
        };
        let d = sim
            .read(&json!({"type": "document.succeeded", "data": {"id": "doc_1", "status": "succeeded", "external_ref": "doc-abc"}}))
            .unwrap();
        assert_eq!(
            (
                d.vendor_job_id.as_str(),
                d.status.as_str(),
                d.reference.as_deref()
            ),
            ("doc_1", "succeeded", Some("doc-abc"))
        );
        assert_eq!(sim.read(&json!({"data": {}})), Err("data.id"));

        let mindee = WebhookFormat::Mindee;
        let d = mindee
            .read(&json!({"inference": {"id": "inf-1", "job": {"id": "job-1"}, "file": {"alias": "doc-abc"}}}))
            .unwrap();
        assert_eq!(d.vendor_job_id, "job-1");
        assert_eq!(d.status, "succeeded");
        assert_eq!(d.reference.as_deref(), Some("doc-abc"));
        assert_eq!(d.event_id.as_deref(), Some("mindee-inference:inf-1"));
        let failed = mindee
            .read(&json!({"job": {"id": "job-2", "status": "Failed", "alias": "doc-x"}}))
            .unwrap();
        assert_eq!(failed.status, "failed");
        assert_eq!(failed.event_id.as_deref(), Some("mindee-job:job-2:failed"));
        assert!(mindee.read(&json!({"something": 1})).is_err());
        assert!(WebhookFormat::for_vendor(VendorKind::Azure, 300).is_none());
        assert_eq!(
            WebhookFormat::Mindee.dedupe_ttl(),
            std::time::Duration::from_secs(172_860)
        );
    }
}
