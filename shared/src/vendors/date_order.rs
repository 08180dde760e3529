//! The last evidence for a numeric date's order: a default configured per source.
//!
//! A date like `03/04/2021` is read from the document's own evidence first (an impossible
//! reading, its country, its currency: [`super::normalize::read_date`]). What stays ambiguous
//! is settled by the order its source is known to write — a US scanner's feed, a European
//! mailbox — when the operator has said so (`DATE_ORDER_BY_SOURCE`). Without that, the date
//! keeps its lowered confidence and goes to review (`ambiguous_date`): never a silent guess.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::config::SettingError;
use crate::document::{Field, Fields};

use super::normalize::{AmbiguousDate, DateOrder, Normalized};

/// `DATE_ORDER_BY_SOURCE`: `email=day_first,us-scanner=month_first,*=day_first`. Sources are
/// the bounded channels of `segments::Sources` (`METRIC_SOURCES`' names, `direct`, `other`);
/// `*` is every source not named. Empty or unset: no default, ambiguity goes to review.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DateOrderBySource {
    by_source: BTreeMap<String, DateOrder>,
    otherwise: Option<DateOrder>,
}

const SETTING: &str = "DATE_ORDER_BY_SOURCE";
const EXPECTED: &str = "comma-separated source=day_first|month_first pairs (`*` for any other source), each source once";

impl DateOrderBySource {
    pub fn parse(text: &str) -> Result<Self, SettingError> {
        let bad = || SettingError {
            name: SETTING,
            value: text.to_owned(),
            expected: EXPECTED.to_owned(),
        };
        let mut parsed = DateOrderBySource::default();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (source, order) = pair.split_once('=').ok_or_else(bad)?;
            let order = match order.trim() {
                "day_first" => DateOrder::DayFirst,
                "month_first" => DateOrder::MonthFirst,
                _ => return Err(bad()),
            };
            let source = source.trim();
            if source.is_empty() {
                return Err(bad());
            }
            let earlier = if source == "*" {
                parsed.otherwise.replace(order)
            } else {
                parsed.by_source.insert(source.to_owned(), order)
            };
            if earlier.is_some() {
                return Err(bad());
            }
        }
        Ok(parsed)
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        DateOrderBySource::parse(&lookup(SETTING).unwrap_or_default())
    }

    /// The order configured for a job's source channel (`None`: jobs from before channels).
    pub fn for_source(&self, source: Option<&str>) -> Option<DateOrder> {
        source
            .and_then(|s| self.by_source.get(s).copied())
            .or(self.otherwise)
    }
}

impl Normalized {
    /// Reads every ambiguous date in `order`: the field takes that reading and the vendor's
    /// own confidence back, and the date is no longer a reason for review. Returns the dates
    /// settled, for the log.
    pub fn settle_dates(&mut self, order: DateOrder) -> Vec<AmbiguousDate> {
        let settled = std::mem::take(&mut self.ambiguous_dates);
        for date in &settled {
            if let Some(field) = date_field_mut(&mut self.document.fields, date.field) {
                field.value = match order {
                    DateOrder::DayFirst => date.day_first,
                    DateOrder::MonthFirst => date.month_first,
                };
                field.confidence = date.vendor_confidence;
            }
        }
        settled
    }
}

/// The typed date field an [`AmbiguousDate`] names.
fn date_field_mut<'a>(fields: &'a mut Fields, name: &str) -> Option<&'a mut Field<NaiveDate>> {
    match (fields, name) {
        (Fields::Receipt(r), "date") => r.date.as_mut(),
        (Fields::Invoice(i), "issue_date") => i.issue_date.as_mut(),
        (Fields::Invoice(i), "due_date") => i.due_date.as_mut(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Profile;
    use crate::vendors::normalize::AMBIGUOUS_DATE_CONFIDENCE;
    use serde_json::json;

    #[test]
    fn the_setting_names_an_order_per_source_and_refuses_what_it_cannot_read() {
        let orders =
            DateOrderBySource::parse("email=day_first, us-scanner=month_first,*=day_first")
                .unwrap();
        assert_eq!(
            orders.for_source(Some("us-scanner")),
            Some(DateOrder::MonthFirst)
        );
        assert_eq!(orders.for_source(Some("email")), Some(DateOrder::DayFirst));
        assert_eq!(orders.for_source(Some("other")), Some(DateOrder::DayFirst));
        assert_eq!(orders.for_source(None), Some(DateOrder::DayFirst));
        let only = DateOrderBySource::parse("us-scanner=month_first").unwrap();
        assert_eq!(only.for_source(Some("email")), None);
        assert_eq!(
            DateOrderBySource::parse("").unwrap(),
            DateOrderBySource::default()
        );
        for bad in [
            "email",
            "email=dmy",
            "=day_first",
            "email=day_first,email=month_first",
            "*=day_first,*=month_first",
        ] {
            let e = DateOrderBySource::parse(bad).unwrap_err();
            assert_eq!(e.name, SETTING, "{bad}");
        }
    }

    /// The simulator's shape: an invoice whose dates nothing in it settles (no currency).
    fn ambiguous_invoice() -> Normalized {
        let payload = json!({
            "id": "doc_1", "status": "succeeded", "profile": "invoice", "engine": "tesseract",
            "model_version": "sim-1", "completed_at": "x", "billing": {"pages": 1},
            "pages": [{"number": 1, "width": 400, "height": 800, "path": "image", "lines": []}],
            "fields": {
                "invoice_date": {"value": "03/04/2021", "confidence": 92.0, "page": 1},
                "due_date": {"value": "13/04/2021", "confidence": 90.0, "page": 1},
            }
        });
        crate::vendors::normalize::normalize_sim(
            &serde_json::to_vec(&payload).unwrap(),
            "job",
            "doc_1",
            &Profile::new("invoice").unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn a_sources_order_settles_what_the_document_could_not() {
        let mut n = ambiguous_invoice();
        assert_eq!(n.ambiguous_dates.len(), 1, "13/04 is settled by itself");
        let Fields::Invoice(f) = &n.document.fields else {
            panic!("invoice")
        };
        let issue = f.issue_date.clone().unwrap();
        assert_eq!(issue.value, NaiveDate::from_ymd_opt(2021, 4, 3).unwrap());
        assert_eq!(issue.confidence, Some(AMBIGUOUS_DATE_CONFIDENCE));

        let settled = n.settle_dates(DateOrder::MonthFirst);
        assert_eq!(settled.len(), 1);
        assert!(
            n.ambiguous_dates.is_empty(),
            "no longer a reason for review"
        );
        let Fields::Invoice(f) = &n.document.fields else {
            panic!("invoice")
        };
        let issue = f.issue_date.clone().unwrap();
        assert_eq!(issue.value, NaiveDate::from_ymd_opt(2021, 3, 4).unwrap());
        assert_eq!(issue.confidence, Some(0.92), "the vendor's confidence back");
        assert_eq!(
            issue.raw.as_deref(),
            Some("03/04/2021"),
            "as the vendor wrote it"
        );
        assert_eq!(
            f.due_date.as_ref().unwrap().value,
            NaiveDate::from_ymd_opt(2021, 4, 13).unwrap(),
            "a date the document settled is left alone"
        );
    }
}
