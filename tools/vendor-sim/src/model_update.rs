//! The "model update" fault: the vendor silently ships a model that reads one field worse.
//!
//! Every response stays a `200` with the same shape and the same `model_version`; only the value
//! of one field changes, on a fixed share of documents. Which documents is a function of their
//! bytes (and the fault seed), not of the dice: the same document is affected on every run, as a
//! real model regression is, so a benchmark run before and after sees the same documents flip.
//!
//! `--model-update total:0.5` or `"model_update": {"field": "total", "share": 0.5}` in
//! `PUT /admin/faults`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::fields::Field;

/// Which field the updated model reads worse, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdatedField {
    /// Totals with the decimal point one place to the right (`9.00` → `90.0`): the
    /// high-confidence wrong value a reviewer never sees coming.
    Total,
    /// Day and month swapped (`25/12/2018` → `12/25/2018`).
    Date,
    /// The merchant (receipts) or vendor name (invoices) is no longer returned.
    Merchant,
}

impl UpdatedField {
    /// The simulator's own field names this touches, for every profile.
    fn names(self) -> &'static [&'static str] {
        match self {
            UpdatedField::Total => &["total"],
            UpdatedField::Date => &["date", "invoice_date"],
            UpdatedField::Merchant => &["company", "vendor_name"],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelUpdate {
    /// Only documents of this profile (`invoice`, `receipt`…); `None`: every profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    pub field: UpdatedField,
    /// The share of documents affected, `0.0..=1.0`.
    pub share: f64,
}

#[derive(Debug, thiserror::Error)]
#[error("model update {0:?} is not [PROFILE.]FIELD:SHARE with FIELD total, date or merchant and SHARE in 0..=1")]
pub struct ModelUpdateSpecError(String);

impl ModelUpdate {
    /// Parses `total:0.5` or `invoice.total:0.5` (the `--model-update` flag).
    pub fn parse(spec: &str) -> Result<Self, ModelUpdateSpecError> {
        let error = || ModelUpdateSpecError(spec.to_owned());
        let (field, share) = spec.split_once(':').ok_or_else(error)?;
        let (profile, field) = match field.split_once('.') {
            Some((profile, field)) if !profile.is_empty() => (Some(profile.to_owned()), field),
            Some(_) => return Err(error()),
            None => (None, field),
        };
        let field: UpdatedField =
            serde_json::from_value(serde_json::Value::String(field.trim().into()))
                .map_err(|_| error())?;
        let share: f64 = share
            .trim()
            .parse()
            .ok()
            .filter(|s| (0.0..=1.0).contains(s))
            .ok_or_else(error)?;
        Ok(ModelUpdate {
            profile,
            field,
            share,
        })
    }

    /// Whether a document of `profile` is among the affected share: a stable hash of its bytes
    /// and `seed`.
    pub fn affects(&self, profile: &str, document: &[u8], seed: u64) -> bool {
        if self.profile.as_deref().is_some_and(|p| p != profile) {
            return false;
        }
        // FNV-1a: stable across runs and platforms, unlike the std hasher.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
        for byte in document {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // SplitMix64's finalizer: FNV alone spreads short inputs poorly.
        hash ^= hash >> 30;
        hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        hash ^= hash >> 27;
        hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
        hash ^= hash >> 31;
        ((hash >> 11) as f64 / (1u64 << 53) as f64) < self.share
    }

    /// Changes the affected field in `fields`. Returns whether anything changed.
    pub fn apply(&self, fields: &mut BTreeMap<String, Field>) -> bool {
        let mut changed = false;
        for name in self.field.names() {
            match self.field {
                UpdatedField::Merchant => changed |= fields.remove(*name).is_some(),
                UpdatedField::Total => {
                    if let Some(f) = fields.get_mut(*name) {
                        if let Some(value) = misplace_decimal(&f.value) {
                            f.value = value;
                            changed = true;
                        }
                    }
                }
                UpdatedField::Date => {
                    if let Some(f) = fields.get_mut(*name) {
                        if let Some(value) = swap_day_month(&f.value) {
                            f.value = value;
                            changed = true;
                        }
                    }
                }
            }
        }
        changed
    }
}

/// `9.00` → `90.0`, `1,320.00` → `13200.0`: the decimal point one digit to the right.
fn misplace_decimal(value: &str) -> Option<String> {
    let digits: String = value
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let (whole, fraction) = digits.split_once('.')?;
    let mut fraction = fraction.chars();
    let moved = fraction.next()?;
    let rest: String = fraction.collect();
    let rest = if rest.is_empty() { "0".into() } else { rest };
    Some(format!("{whole}{moved}.{rest}"))
}

/// `25/12/2018` → `12/25/2018`; ISO `2026-11-02` → `2026-02-11`.
fn swap_day_month(value: &str) -> Option<String> {
    let separator = value.chars().find(|c| matches!(c, '/' | '-' | '.'))?;
    let parts: Vec<&str> = value.split(separator).collect();
    match parts.as_slice() {
        [year, month, day] if year.len() == 4 => {
            Some(format!("{year}{separator}{day}{separator}{month}"))
        }
        [day, month, year] => Some(format!("{month}{separator}{day}{separator}{year}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::BBox;

    fn field(value: &str) -> Field {
        Field {
            value: value.into(),
            confidence: 95.0,
            page: 1,
            bbox: BBox {
                left: 0,
                top: 0,
                width: 1,
                height: 1,
            },
        }
    }

    #[test]
    fn each_update_changes_only_its_field() {
        let fields = BTreeMap::from([
            ("total".to_owned(), field("9.00")),
            ("date".to_owned(), field("25/12/2018")),
            ("company".to_owned(), field("BOOK TA .K SDN BHD")),
        ]);
        let mut total = fields.clone();
        assert!(ModelUpdate::parse("total:1").unwrap().apply(&mut total));
        assert_eq!(total["total"].value, "90.0");
        assert_eq!(total["date"], fields["date"]);
        let mut date = fields.clone();
        assert!(ModelUpdate::parse("date:1").unwrap().apply(&mut date));
        assert_eq!(date["date"].value, "12/25/2018");
        let mut merchant = fields.clone();
        assert!(ModelUpdate::parse("merchant:1")
            .unwrap()
            .apply(&mut merchant));
        assert!(!merchant.contains_key("company"));
        assert_eq!(merchant["total"], fields["total"]);
        assert_eq!(swap_day_month("2026-11-02").as_deref(), Some("2026-02-11"));
        assert_eq!(misplace_decimal("$1,320.00").as_deref(), Some("13200.0"));
    }

    #[test]
    fn the_affected_share_is_stable_and_about_right() {
        let update = ModelUpdate::parse("date:0.3").unwrap();
        let docs: Vec<Vec<u8>> = (0..2_000u32).map(|i| i.to_le_bytes().to_vec()).collect();
        let hit: Vec<bool> = docs
            .iter()
            .map(|d| update.affects("receipt", d, 7))
            .collect();
        assert_eq!(
            hit,
            docs.iter()
                .map(|d| update.affects("receipt", d, 7))
                .collect::<Vec<_>>()
        );
        let share = hit.iter().filter(|h| **h).count() as f64 / docs.len() as f64;
        assert!((0.25..0.35).contains(&share), "share {share}");
        assert!(!ModelUpdate::parse("date:0")
            .unwrap()
            .affects("receipt", &docs[0], 7));
        let invoices_only = ModelUpdate::parse("invoice.date:1").unwrap();
        assert!(invoices_only.affects("invoice", &docs[0], 7));
        assert!(!invoices_only.affects("receipt", &docs[0], 7));
        assert!(ModelUpdate::parse("nope:0.1").is_err());
        assert!(ModelUpdate::parse("total:1.5").is_err());
    }
}
