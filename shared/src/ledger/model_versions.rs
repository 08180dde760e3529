//! The vendor model versions seen so far: how a silent model update becomes visible.
//!
//! Vendors change their models under the same API (Textract's `*ModelVersion`, Azure's
//! `apiVersion` of a prebuilt model, the simulator's `model_version`), and a change can move
//! every extraction at once. Each result's version is added to one item per vendor and model in
//! the dedupe table (`model-versions#<vendor>#<model>`, a string set grown with an atomic
//! `ADD`), and the set as it was before says whether this version is new. A container asks only
//! once per version it has not seen itself, so the steady state costs no request.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use tracing::instrument;

use super::item::{attr, n, s};
use super::{Ledger, LedgerError};
use crate::time::UnixMillis;

/// What recording a model version found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSighting {
    /// The first version recorded for this vendor and model: nothing to compare with.
    First,
    /// Seen before (by this container, or recorded by another).
    Known,
    /// A version not seen before, beside the ones that were: the vendor changed its model.
    New { before: BTreeSet<String> },
}

/// Versions this container has recorded, so that it asks DynamoDB once per version.
#[derive(Debug, Clone, Default)]
pub(super) struct Seen(Arc<Mutex<HashSet<String>>>);

const VERSIONS: &str = "versions";
/// The version most recently recorded for the first time by some container: the one answering
/// now, once a model update has reached every container.
const LATEST: &str = "latest";

/// The versions a vendor's model has answered as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelVersions {
    pub versions: BTreeSet<String>,
    pub latest: Option<String>,
    pub last_seen_at: Option<UnixMillis>,
}

impl Ledger {
    /// Records that `vendor`'s `model` answered as `version`.
    #[instrument(skip_all, fields(vendor = vendor, model = model, version = version))]
    pub async fn record_model_version(
        &self,
        vendor: &str,
        model: &str,
        version: &str,
        now: UnixMillis,
    ) -> Result<VersionSighting, LedgerError> {
        let key = format!("model-versions#{vendor}#{model}");
        let cached = format!("{key}#{version}");
        let known = |seen: &Seen| {
            seen.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&cached)
        };
        if known(&self.model_versions_seen) {
            return Ok(VersionSighting::Known);
        }
        let out = self
            .client
            .update_item()
            .table_name(&self.tables.dedupe)
            .key(attr::DEDUPE_KEY, s(&key))
            .update_expression("ADD #v :v SET #at = :now, #latest = :version")
            .expression_attribute_names("#v", VERSIONS)
            .expression_attribute_names("#at", "last_seen_at")
            .expression_attribute_names("#latest", LATEST)
            .expression_attribute_values(":v", AttributeValue::Ss(vec![version.to_owned()]))
            .expression_attribute_values(":version", s(version))
            .expression_attribute_values(":now", n(now.0))
            // The whole item as it was: an `ADD` that changes nothing is not "updated" to every
            // implementation (moto returns no UPDATED_OLD for it).
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| LedgerError::dynamo("UpdateItem", &e))?;
        self.model_versions_seen
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(cached);
        let before: BTreeSet<String> = match out.attributes().and_then(|a| a.get(VERSIONS)) {
            Some(AttributeValue::Ss(v)) => v.iter().cloned().collect(),
            _ => BTreeSet::new(),
        };
        Ok(if before.is_empty() {
            VersionSighting::First
        } else if before.contains(version) {
            VersionSighting::Known
        } else {
            VersionSighting::New { before }
        })
    }

    /// The versions recorded for `vendor`'s `model`, if it ever answered with one.
    pub async fn model_versions(
        &self,
        vendor: &str,
        model: &str,
    ) -> Result<Option<ModelVersions>, LedgerError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.tables.dedupe)
            .key(
                attr::DEDUPE_KEY,
                s(format!("model-versions#{vendor}#{model}")),
            )
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| LedgerError::dynamo("GetItem", &e))?
            .item;
        Ok(item.map(|item| ModelVersions {
            versions: match item.get(VERSIONS) {
                Some(AttributeValue::Ss(v)) => v.iter().cloned().collect(),
                _ => BTreeSet::new(),
            },
            latest: item.get(LATEST).and_then(|v| v.as_s().ok()).cloned(),
            last_seen_at: item
                .get("last_seen_at")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok())
                .map(UnixMillis),
        }))
    }
}
