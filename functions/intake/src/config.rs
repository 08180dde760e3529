//! Intake's own configuration, read once from the environment.

use ocrbridge::inspect::{FileType, Limits};
use ocrbridge::job::Profile;

#[derive(Debug, thiserror::Error)]
#[error("invalid {variable}: {detail}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct IntakeConfig {
    /// `PROFILE_PREFIXES`: `receipts/=receipt,invoices/=invoice,ids/=id` (the default). The longest
    /// matching prefix wins.
    pub prefixes: ocrbridge::config::ProfilePrefixes,
    /// `DEFAULT_PROFILE`: the profile for keys under no prefix (default `generic`); empty means
    /// such uploads are rejected with `no_profile`.
    pub default_profile: Option<Profile>,
    /// `RESERVED_PREFIXES`: where ocrbridge writes its own objects (default `raw/,results/`).
    /// Uploads there are ignored, so outputs never loop back into intake.
    pub reserved_prefixes: Vec<String>,
    /// `MAX_IMAGE_BYTES`, `MAX_PDF_BYTES`, `MAX_PDF_PAGES`, `MAX_IMAGE_PIXELS`,
    /// `MIN_IMAGE_SIDE`, `ACCEPTED_TYPES` (comma-separated: pdf,png,jpeg,tiff,webp,gif,bmp,heic).
    pub limits: Limits,
    /// `METRIC_SOURCES`: the source channels metrics name; any other is `other`.
    pub sources: ocrbridge::segments::Sources,
    /// `TAG_SOURCE_OBJECTS` (`off`, the default, or `on`): tag each upload with its job id,
    /// status and rejection reason (`ocrbridge-job-id`, `ocrbridge-status`, `ocrbridge-reason`),
    /// so whoever finds the object in S3 sees what became of it. Nothing in ocrbridge reads the
    /// tags, and each costs a PutObjectTagging per document (and a GetObjectTagging where the
    /// uploader set tags of their own), so they are off unless asked for (issue #33); the ledger
    /// keeps the same facts either way (`Ledger::job_for_upload`, `ocrbridge jobs`).
    pub tag_objects: bool,
    /// `INPUT_QUALITY_POLICY` (`PROFILE:ISSUE=ACTION;…`, default empty: every issue flagged):
    /// which input quality issues refuse a profile's documents (`inspect::QualityPolicy`).
    pub quality: ocrbridge::inspect::QualityPolicy,
    /// `PREPROCESS` (`off`, the default; `on`; `deskew,crop`; or per profile
    /// `receipt=on;id=off`), `PREPROCESS_MAX_SIDE`, `PREPROCESS_MAX_PIXELS`: the copy of an
    /// accepted image prepared for the vendor (`ocrbridge::preprocess`).
    pub preprocess: ocrbridge::preprocess::Settings,
    /// `PDF_PART_PAGES` (0, the default: never): a PDF with more pages is split into parts of
    /// this many, each sent as a job of its own and merged into one result (`ocrbridge::parts`).
    pub part_pages: Option<u32>,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        let profile = |p: &str| Profile::new(p).expect("static profile name");
        IntakeConfig {
            prefixes: ocrbridge::config::ProfilePrefixes::default(),
            default_profile: Some(profile("generic")),
            reserved_prefixes: vec!["raw/".into(), "results/".into()],
            limits: Limits::default(),
            sources: ocrbridge::segments::Sources::default(),
            tag_objects: false,
            quality: ocrbridge::inspect::QualityPolicy::default(),
            preprocess: ocrbridge::preprocess::Settings::default(),
            part_pages: None,
        }
    }
}

impl IntakeConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = IntakeConfig::default();
        let err = |variable, detail: String| ConfigError { variable, detail };
        config.prefixes = ocrbridge::config::ProfilePrefixes::from_lookup(&lookup)
            .map_err(|e| err("PROFILE_PREFIXES", e))?;
        if let Some(p) = lookup("DEFAULT_PROFILE") {
            config.default_profile = if p.trim().is_empty() {
                None
            } else {
                Some(Profile::new(p.trim()).map_err(|e| err("DEFAULT_PROFILE", e.to_string()))?)
            };
        }
        if let Some(spec) = lookup("RESERVED_PREFIXES") {
            config.reserved_prefixes = spec
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect();
        }
        let number = |variable: &'static str| -> Result<Option<u64>, ConfigError> {
            lookup(variable)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|e| err(variable, format!("{v:?} is not a whole number ({e})")))
                })
                .transpose()
        };
        let limits = &mut config.limits;
        if let Some(v) = number("MAX_IMAGE_BYTES")? {
            limits.max_image_bytes = v;
        }
        if let Some(v) = number("MAX_PDF_BYTES")? {
            limits.max_pdf_bytes = v;
        }
        if let Some(v) = number("MAX_PDF_PAGES")? {
            limits.max_pdf_pages =
                u32::try_from(v).map_err(|e| err("MAX_PDF_PAGES", e.to_string()))?;
        }
        if let Some(v) = number("MAX_IMAGE_PIXELS")? {
            limits.max_image_pixels = v;
        }
        if let Some(v) = number("MIN_IMAGE_SIDE")? {
            limits.min_image_side =
                u32::try_from(v).map_err(|e| err("MIN_IMAGE_SIDE", e.to_string()))?;
        }
        if let Some(spec) = lookup("ACCEPTED_TYPES") {
            limits.accepted_types = spec
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| {
                    FileType::parse(t)
                        .ok_or_else(|| err("ACCEPTED_TYPES", format!("unknown type {t:?}")))
                })
                .collect::<Result<_, _>>()?;
        }
        config.sources = ocrbridge::segments::Sources::from_lookup(&lookup)
            .map_err(|e| err("METRIC_SOURCES", e.to_string()))?;
        config.tag_objects =
            ocrbridge::config::switch_setting(&lookup, "TAG_SOURCE_OBJECTS", false)
                .map_err(|e| err(e.name, format!("{:?} is not {}", e.value, e.expected)))?;
        if let Some(spec) = lookup("INPUT_QUALITY_POLICY") {
            config.quality = ocrbridge::inspect::QualityPolicy::parse(&spec)
                .map_err(|e| err("INPUT_QUALITY_POLICY", e))?;
        }
        config.preprocess = ocrbridge::preprocess::Settings::from_lookup(&lookup)
            .map_err(|e| err(e.name, format!("{:?}: {}", e.value, e.expected)))?;
        config.part_pages = ocrbridge::parts::part_pages_from_lookup(&lookup)
            .map_err(|e| err(e.name, format!("{:?}: {}", e.value, e.expected)))?;
        Ok(config)
    }

    /// The profile for `key`: the longest matching prefix, else the default.
    /// The validation limits for a profile's documents: a type the profile's preprocessing
    /// converts (`convert`: HEIC, TIFF) is accepted whatever `ACCEPTED_TYPES` says, since the
    /// vendor is sent the converted copy.
    pub fn limits_for(&self, profile: Option<&Profile>) -> std::borrow::Cow<'_, Limits> {
        let converts = profile.is_some_and(|p| {
            self.preprocess
                .actions_for(p)
                .contains(&ocrbridge::preprocess::Action::Convert)
        });
        if !converts {
            return std::borrow::Cow::Borrowed(&self.limits);
        }
        let mut limits = self.limits.clone();
        for t in ocrbridge::inspect::FileType::ALL {
            if ocrbridge::preprocess::convert::converts(t) && !limits.accepted_types.contains(&t) {
                limits.accepted_types.push(t);
            }
        }
        std::borrow::Cow::Owned(limits)
    }

    pub fn profile_for(&self, key: &str) -> Option<Profile> {
        self.prefixes
            .profile_for(key)
            .cloned()
            .or_else(|| self.default_profile.clone())
    }

    pub fn is_reserved(&self, key: &str) -> bool {
        self.reserved_prefixes
            .iter()
            .any(|p| key.starts_with(p.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn maps_prefixes_to_profiles() {
        let env = HashMap::from([
            (
                "PROFILE_PREFIXES",
                "receipts/=receipt, receipts/hotel/=invoice".to_owned(),
            ),
            ("DEFAULT_PROFILE", "".to_owned()),
            ("ACCEPTED_TYPES", "pdf,png".to_owned()),
            ("MAX_PDF_PAGES", "10".to_owned()),
        ]);
        let config = IntakeConfig::from_lookup(|k| env.get(k).cloned()).unwrap();
        assert_eq!(
            config.profile_for("receipts/a.jpg").unwrap().as_str(),
            "receipt"
        );
        assert_eq!(
            config.profile_for("receipts/hotel/a.pdf").unwrap().as_str(),
            "invoice"
        );
        assert_eq!(config.profile_for("misc/a.pdf"), None);
        assert_eq!(
            config.limits.accepted_types,
            vec![FileType::Pdf, FileType::Png]
        );
        assert_eq!(config.limits.max_pdf_pages, 10);
        assert!(config.is_reserved("results/doc-1.json"));
    }

    #[test]
    fn reports_the_bad_variable() {
        let env = HashMap::from([("MAX_PDF_BYTES", "lots".to_owned())]);
        assert_eq!(
            IntakeConfig::from_lookup(|k| env.get(k).cloned())
                .unwrap_err()
                .variable,
            "MAX_PDF_BYTES"
        );
        let env = HashMap::from([("PROFILE_PREFIXES", "receipts".to_owned())]);
        assert_eq!(
            IntakeConfig::from_lookup(|k| env.get(k).cloned())
                .unwrap_err()
                .variable,
            "PROFILE_PREFIXES"
        );
    }
}
