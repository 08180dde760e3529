//! What a document costs at the vendor: a price table per vendor and model, the estimate made
//! at submission (pages from intake's inspection) and the actual made at parse (pages the vendor
//! returned), both kept on the job (`cost`) so that a cost report is a sum over jobs, not a
//! guess from one flat price.
//!
//! Money is `Decimal` (USD): sums of many small prices must come out exact.
//!
//! The defaults are the vendors' public list prices for the first volume tier, as published on
//! [`LIST_PRICES_AS_OF`]; contracts, commitment tiers and regions differ, so `VENDOR_PRICES`
//! overrides any of them:
//!
//! ```text
//! VENDOR_PRICES="textract:expense=0.008/page; azure:*=0.01/page; mindee:*=0.05/document"
//! ```

use std::collections::BTreeMap;
use std::str::FromStr;

pub use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::config::SettingError;

/// When the default list prices below were taken from the vendors' pricing pages. Not
/// re-checked since: say so wherever they are shown.
pub const LIST_PRICES_AS_OF: &str = "2025-06";

/// The setting that overrides list prices.
pub const PRICES_VARIABLE: &str = "VENDOR_PRICES";

/// What one vendor call costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Price {
    pub per_page: Decimal,
    pub per_document: Decimal,
}

impl Price {
    pub const fn per_page(per_page: Decimal) -> Self {
        Price {
            per_page,
            per_document: Decimal::ZERO,
        }
    }

    /// The charge for one document of `pages` pages.
    pub fn of(&self, pages: u32) -> Decimal {
        self.per_page * Decimal::from(pages) + self.per_document
    }
}

/// Prices by vendor and model; `*` is any model of that vendor.
#[derive(Debug, Clone, PartialEq)]
pub struct Prices {
    by_model: BTreeMap<(String, String), Price>,
}

/// The vendors' list prices (first tier, USD), by the model names `VENDOR_MODELS` uses.
fn list_prices() -> Vec<(&'static str, &'static str, Price)> {
    let page = |cents_per_1000: i64| Price::per_page(Decimal::new(cents_per_1000, 5));
    vec![
        // The simulator bills like the cheapest OCR: its billing counters are what tests
        // compare against.
        ("sim", "*", page(150)),
        // Textract: DetectDocumentText $1.50 / 1,000 pages; AnalyzeExpense $10 / 1,000;
        // AnalyzeDocument with FORMS ($50) and TABLES ($15) per 1,000; AnalyzeID $25 / 1,000
        // (the first 100,000 a month). The synchronous calls cost what the asynchronous do.
        // An `id` read as text (no synchronous call) is priced as text (`Vendor::model_of`).
        ("textract", "text", page(150)),
        ("textract", "expense", page(1_000)),
        ("textract", "analysis", page(6_500)),
        ("textract", "id", page(2_500)),
        // Azure Document Intelligence: Read $1.50 / 1,000 pages; prebuilt models (layout,
        // receipt, invoice, ID) $10 / 1,000.
        ("azure", "prebuilt-read", page(150)),
        ("azure", "*", page(1_000)),
        // Mindee sells plans, not a list price per page: $0.01 per page is a placeholder that
        // a deployment must replace with its plan's rate (the README says so).
        ("mindee", "*", page(1_000)),
    ]
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            by_model: list_prices()
                .into_iter()
                .map(|(v, m, p)| ((v.to_owned(), m.to_owned()), p))
                .collect(),
        }
    }
}

impl Prices {
    /// List prices with `VENDOR_PRICES` on top.
    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        let mut prices = Prices::default();
        if let Some(spec) = lookup(PRICES_VARIABLE).filter(|v| !v.trim().is_empty()) {
            for entry in spec.split([';', ',']).filter(|e| !e.trim().is_empty()) {
                let (key, price) = parse_entry(entry).map_err(|problem| SettingError {
                    name: PRICES_VARIABLE,
                    value: spec.clone(),
                    expected: format!(
                        "VENDOR:MODEL=AMOUNT/page or /document entries (`*` for any model): {problem}"
                    ),
                })?;
                prices.by_model.insert(key, price);
            }
        }
        Ok(prices)
    }

    /// The price of `model` at `vendor`: the model's own, else the vendor's `*`, else nothing
    /// known (zero, and the report says `unpriced`).
    pub fn price(&self, vendor: &str, model: &str) -> Option<Price> {
        self.by_model
            .get(&(vendor.to_owned(), model.to_owned()))
            .or_else(|| self.by_model.get(&(vendor.to_owned(), "*".to_owned())))
            .copied()
    }
}

fn parse_entry(entry: &str) -> Result<((String, String), Price), String> {
    let (key, amount) = entry
        .split_once('=')
        .ok_or_else(|| format!("{entry:?} has no `=`"))?;
    let (vendor, model) = key
        .trim()
        .split_once(':')
        .ok_or_else(|| format!("{key:?} is not VENDOR:MODEL"))?;
    let (number, unit) = amount
        .trim()
        .split_once('/')
        .unwrap_or((amount.trim(), "page"));
    let number = Decimal::from_str(number.trim())
        .ok()
        .filter(|n| !n.is_sign_negative())
        .ok_or_else(|| format!("{number:?} is not a non-negative amount"))?;
    let price = match unit.trim() {
        "page" => Price::per_page(number),
        "document" | "doc" => Price {
            per_page: Decimal::ZERO,
            per_document: number,
        },
        other => return Err(format!("unit {other:?} is neither page nor document")),
    };
    if vendor.trim().is_empty() || model.trim().is_empty() {
        return Err(format!("{key:?} names no vendor or no model"));
    }
    Ok(((vendor.trim().to_owned(), model.trim().to_owned()), price))
}

/// A job's cost, kept on the job: the estimate when it was submitted and, once parse has read
/// the vendor's answer, what the vendor processed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCost {
    pub vendor: String,
    pub model: String,
    /// The price used (so that a later price change does not rewrite history).
    pub price: Option<Price>,
    /// Pages as intake inspected them (an image is one page).
    pub pages_estimated: u32,
    pub estimate: Decimal,
    /// Pages in the vendor's answer: what it processed, hence billed.
    pub pages_billed: Option<u32>,
    pub actual: Option<Decimal>,
    /// The vendor ran the job but its answer could not be counted (unusable, too large, gone):
    /// the actual is the estimate's pages, and says so.
    #[serde(default)]
    pub billed_pages_estimated: bool,
    /// What earlier submissions of this job were billed (an operator retried it after a
    /// billed failure): kept when the new estimate replaces the old cost.
    #[serde(default)]
    pub earlier_attempts: Decimal,
}

impl JobCost {
    /// The estimate at submission.
    pub fn estimate(prices: &Prices, vendor: &str, model: &str, pages: u32) -> Self {
        let price = prices.price(vendor, model);
        JobCost {
            vendor: vendor.to_owned(),
            model: model.to_owned(),
            price,
            pages_estimated: pages,
            estimate: price.map(|p| p.of(pages)).unwrap_or_default(),
            pages_billed: None,
            actual: None,
            billed_pages_estimated: false,
            earlier_attempts: Decimal::ZERO,
        }
    }

    /// A new submission's estimate for a job that had a cost before: what the earlier attempts
    /// were billed is carried, never overwritten.
    pub fn after(mut self, earlier: Option<&JobCost>) -> Self {
        if let Some(earlier) = earlier {
            self.earlier_attempts = earlier.earlier_attempts + earlier.actual.unwrap_or_default();
        }
        self
    }

    /// The estimate for submitting `job` to `vendor`: the vendor's model for the job's profile,
    /// the pages it is sent (`Job::pages_sent`).
    pub fn estimate_for(
        prices: &Prices,
        vendor: &impl crate::vendors::Vendor,
        job: &crate::job::Job,
    ) -> Self {
        Self::estimate(
            prices,
            vendor.name(),
            &vendor.model_of(job),
            job.pages_sent(),
        )
    }

    /// The actual, from the pages the vendor returned, at the price of the estimate.
    pub fn with_billed_pages(mut self, pages: u32) -> Self {
        self.pages_billed = Some(pages);
        self.actual = Some(self.price.map(|p| p.of(pages)).unwrap_or_default());
        self
    }

    /// The vendor ran the job and billed it, but how many pages is not known from its answer:
    /// the estimate's pages, marked as such.
    pub fn with_billed_estimate(self) -> Self {
        let pages = self.pages_estimated;
        let mut cost = self.with_billed_pages(pages);
        cost.billed_pages_estimated = true;
        cost
    }

    /// What one more vendor job for the same document costs (a duplicate): the actual's
    /// pages when known, else the estimate's.
    pub fn one_more(&self) -> Decimal {
        let pages = self.pages_billed.unwrap_or(self.pages_estimated);
        self.price.map(|p| p.of(pages)).unwrap_or_default()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Lambda's list price per GB-second (first tier, us-east-1, as of [`LIST_PRICES_AS_OF`]):
/// x86_64 $0.0000166667, arm64 $0.0000133334.
pub fn lambda_gb_second(arch: &str) -> Decimal {
    match arch {
        "aarch64" | "arm64" => Decimal::new(133_334, 10),
        _ => Decimal::new(166_667, 10),
    }
}

/// Compute a function spent on one document (intake's preparation: preprocessing, blank-page
/// removal, splitting), priced when it was spent, so that a later price change does not
/// rewrite history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compute {
    pub ms: u64,
    /// The function's memory: Lambda bills GB-seconds of it.
    pub memory_mb: u32,
    pub arch: String,
    pub usd: Decimal,
}

impl Compute {
    /// `ms` of a function of `memory_mb` on `arch`, at Lambda's list price.
    pub fn lambda(ms: u64, memory_mb: u32, arch: &str) -> Self {
        let gb_seconds = Decimal::from(ms) * Decimal::from(memory_mb) / Decimal::from(1_024_000);
        Compute {
            ms,
            memory_mb,
            arch: arch.to_owned(),
            usd: (gb_seconds * lambda_gb_second(arch)).round_dp(12),
        }
    }

    /// This function's own compute of `ms`: its memory from the runtime
    /// (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`; `default_mb` off Lambda), its architecture from the
    /// binary.
    pub fn here(ms: u64, default_mb: u32) -> Self {
        let memory_mb = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
            .ok()
            .and_then(|m| m.parse().ok())
            .unwrap_or(default_mb);
        Self::lambda(ms, memory_mb, std::env::consts::ARCH)
    }

    /// One of `n` equal shares (a split document's compute, carried by each of its parts).
    pub fn share(&self, n: u32) -> Self {
        let n = n.max(1);
        Compute {
            ms: self.ms / u64::from(n),
            memory_mb: self.memory_mb,
            arch: self.arch.clone(),
            usd: (self.usd / Decimal::from(n)).round_dp(12),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// How a job's money is labelled in a report: never one average that hides failures and
/// duplicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Spend {
    /// A result was read: pages from the vendor's answer.
    Billed,
    /// The vendor ran the job and billed it, and the job failed after (result unusable, too
    /// large, expired): estimated pages.
    FailedBilled,
    /// Submitted, no answer read yet: the estimate, not yet spent for sure.
    InFlight,
    /// A second vendor job for the same document (an orphan): paid twice.
    Duplicate,
    /// Billed by earlier attempts of a job an operator retried.
    Retried,
    /// A quality benchmark run's document (see `quality`): paid for, kept out of the averages.
    Benchmark,
    /// A second vendor's reading of a result that would have gone to review
    /// (`second_opinion`): paid on top of the first, never in the per-document average.
    SecondPass,
    /// Intake's compute preparing documents (preprocessing, blank pages, splitting), at
    /// Lambda's price: AWS's money, not the vendor's, shown beside what it saved.
    Preparation,
}

impl Spend {
    pub const ALL: [Spend; 8] = [
        Spend::Billed,
        Spend::FailedBilled,
        Spend::InFlight,
        Spend::Duplicate,
        Spend::Retried,
        Spend::Benchmark,
        Spend::SecondPass,
        Spend::Preparation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Spend::Billed => "billed",
            Spend::FailedBilled => "failed_billed",
            Spend::InFlight => "in_flight",
            Spend::Duplicate => "duplicate",
            Spend::Retried => "retried",
            Spend::Benchmark => "benchmark",
            Spend::SecondPass => "second_pass",
            Spend::Preparation => "preparation",
        }
    }
}

/// One line of a cost report: a vendor, model and profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CostLine {
    /// Documents with a billed answer (`Spend::Billed`).
    pub documents: u64,
    /// Pages of those answers.
    pub pages: u64,
    /// Money by label; `Billed` alone is what a document costs when all goes well.
    pub spend: BTreeMap<&'static str, Decimal>,
    /// Vendor jobs paid for beyond one per document.
    pub duplicate_jobs: u64,
    /// Jobs with no price for their vendor and model.
    pub unpriced: u64,
    /// Pages the vendor was not sent (blank pages removed by preprocessing), and what they
    /// would have cost at each job's price: money not spent, so not in any total.
    pub pages_saved: u64,
    pub saved: Decimal,
}

impl CostLine {
    pub fn total(&self) -> Decimal {
        self.spend.values().copied().sum()
    }

    /// `Billed` spend per billed document and per billed page (None without any).
    pub fn per_document(&self) -> Option<Decimal> {
        let billed = self.spend.get(Spend::Billed.as_str())?;
        (self.documents > 0).then(|| billed / Decimal::from(self.documents))
    }

    pub fn per_page(&self) -> Option<Decimal> {
        let billed = self.spend.get(Spend::Billed.as_str())?;
        (self.pages > 0).then(|| billed / Decimal::from(self.pages))
    }

    fn add(&mut self, spend: Spend, amount: Decimal) {
        *self.spend.entry(spend.as_str()).or_default() += amount;
    }
}

/// Cost by (vendor, model, profile), summed over jobs.
pub fn report<'a>(
    jobs: impl IntoIterator<Item = &'a crate::job::Job>,
) -> BTreeMap<(String, String, String), CostLine> {
    report_keyed(jobs, |job, cost| {
        (
            cost.vendor.clone(),
            cost.model.clone(),
            job.profile.as_str().to_owned(),
        )
    })
}

/// What a cost report's lines are by (`ocrbridge cost --by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostBy {
    /// Vendor, model and profile: the default.
    Line,
    /// The upload's source channel (`segments`).
    Source,
    Profile,
    /// Vendor and model.
    Model,
    /// The UTC day the document arrived: cost per document by day, to see cost rising faster
    /// than volume.
    Day,
}

impl CostBy {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "line" => CostBy::Line,
            "source" => CostBy::Source,
            "profile" => CostBy::Profile,
            "model" => CostBy::Model,
            "day" => CostBy::Day,
            _ => return None,
        })
    }

    /// The key's columns.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            CostBy::Line => &["vendor", "model", "profile"],
            CostBy::Source => &["source"],
            CostBy::Profile => &["profile"],
            CostBy::Model => &["vendor", "model"],
            CostBy::Day => &["day"],
        }
    }

    fn key(self, job: &crate::job::Job, cost: &JobCost) -> Vec<String> {
        match self {
            CostBy::Line => vec![
                cost.vendor.clone(),
                cost.model.clone(),
                job.profile.as_str().to_owned(),
            ],
            CostBy::Source => vec![job.channel.clone().unwrap_or_else(|| "direct".into())],
            CostBy::Profile => vec![job.profile.as_str().to_owned()],
            CostBy::Model => vec![cost.vendor.clone(), cost.model.clone()],
            CostBy::Day => vec![chrono::DateTime::from_timestamp_millis(
                i64::try_from(job.created_at.0).unwrap_or(i64::MAX),
            )
            .map_or_else(|| "?".into(), |t| t.format("%Y-%m-%d").to_string())],
        }
    }
}

/// The jobs that arrived in `[since, until)` (unix milliseconds; `None`: unbounded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub since: Option<crate::time::UnixMillis>,
    pub until: Option<crate::time::UnixMillis>,
}

impl Window {
    pub fn contains(&self, job: &crate::job::Job) -> bool {
        self.since.is_none_or(|s| job.created_at >= s)
            && self.until.is_none_or(|u| job.created_at < u)
    }
}

/// Cost by `by`, over the jobs that arrived in `window`.
pub fn report_by<'a>(
    jobs: impl IntoIterator<Item = &'a crate::job::Job>,
    window: Window,
    by: CostBy,
) -> BTreeMap<Vec<String>, CostLine> {
    report_keyed(
        jobs.into_iter().filter(|j| window.contains(j)),
        |job, cost| by.key(job, cost),
    )
}

fn report_keyed<'a, K: Ord>(
    jobs: impl IntoIterator<Item = &'a crate::job::Job>,
    key: impl Fn(&crate::job::Job, &JobCost) -> K,
) -> BTreeMap<K, CostLine> {
    let mut lines: BTreeMap<K, CostLine> = BTreeMap::new();
    for job in jobs {
        let Some(cost) = &job.cost else { continue };
        let line = lines.entry(key(job, cost)).or_default();
        if let Some(compute) = &job.prep_compute {
            line.add(Spend::Preparation, compute.usd);
        }
        if let Some(map) = job.prepared.as_ref().and_then(|p| p.pages.as_ref()) {
            line.pages_saved += u64::from(map.removed());
            line.saved += cost
                .price
                .map(|p| p.per_page * Decimal::from(map.removed()))
                .unwrap_or_default();
        }
        if cost.price.is_none() {
            line.unpriced += 1;
        }
        match (cost.actual, cost.billed_pages_estimated) {
            // A quality benchmark's documents are paid for, and shown apart: never in the
            // per-document average of business traffic.
            (Some(actual), _) if job.benchmark_run.is_some() => line.add(Spend::Benchmark, actual),
            (Some(actual), _) if job.second_opinion_of.is_some() => {
                line.add(Spend::SecondPass, actual)
            }
            (Some(actual), false) => {
                line.documents += 1;
                line.pages += u64::from(cost.pages_billed.unwrap_or(0));
                line.add(Spend::Billed, actual);
            }
            (Some(actual), true) => line.add(Spend::FailedBilled, actual),
            // Only a job still waiting on the vendor may spend its estimate; a job the vendor
            // failed (not billed) or one never submitted spends nothing.
            (None, _) if job.vendor_job_id.is_some() && !job.state.is_settled() => {
                line.add(Spend::InFlight, cost.estimate)
            }
            (None, _) => {}
        }
        let orphans = job.orphan_vendor_jobs.len() as u64;
        if orphans > 0 {
            line.duplicate_jobs += orphans;
            line.add(Spend::Duplicate, cost.one_more() * Decimal::from(orphans));
        }
        if cost.earlier_attempts > Decimal::ZERO {
            line.add(Spend::Retried, cost.earlier_attempts);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(spec: &str) -> impl Fn(&str) -> Option<String> + '_ {
        move |k| (k == PRICES_VARIABLE).then(|| spec.to_owned())
    }

    #[test]
    fn list_prices_per_vendor_and_model() {
        let p = Prices::default();
        let d = |s: &str| Decimal::from_str(s).unwrap();
        assert_eq!(p.price("textract", "expense").unwrap().of(3), d("0.03"));
        assert_eq!(p.price("textract", "text").unwrap().of(2), d("0.003"));
        assert_eq!(p.price("textract", "analysis").unwrap().of(1), d("0.065"));
        assert_eq!(
            p.price("azure", "prebuilt-read").unwrap().of(1),
            d("0.0015")
        );
        assert_eq!(
            p.price("azure", "prebuilt-invoice").unwrap().of(1),
            d("0.01")
        );
        assert_eq!(p.price("sim", "receipt").unwrap().of(4), d("0.006"));
        assert_eq!(p.price("nobody", "x"), None);
    }

    #[test]
    fn overrides_replace_one_price_and_keep_the_rest() {
        let p = Prices::from_lookup(&lookup(
            "textract:expense=0.008/page; mindee:*=0.05/document",
        ))
        .unwrap();
        let d = |s: &str| Decimal::from_str(s).unwrap();
        assert_eq!(p.price("textract", "expense").unwrap().of(2), d("0.016"));
        assert_eq!(p.price("mindee", "m-123").unwrap().of(7), d("0.05"));
        assert_eq!(p.price("textract", "text").unwrap().of(1), d("0.0015"));
    }

    #[test]
    fn a_bad_price_names_the_setting_and_the_entry() {
        for bad in [
            "textract=0.01",
            "textract:expense=-1",
            "a:b=0.1/month",
            "a:b",
        ] {
            let e = Prices::from_lookup(&lookup(bad)).unwrap_err();
            assert_eq!(e.name, PRICES_VARIABLE, "{bad}");
            assert!(e.expected.contains("VENDOR:MODEL"), "{bad}: {e:?}");
        }
    }

    #[test]
    fn the_actual_uses_the_estimates_price_and_the_billed_pages() {
        let prices = Prices::default();
        let cost = JobCost::estimate(&prices, "azure", "prebuilt-receipt", 1).with_billed_pages(3);
        assert_eq!(cost.estimate, Decimal::from_str("0.01").unwrap());
        assert_eq!(cost.actual, Some(Decimal::from_str("0.03").unwrap()));
        assert_eq!(cost.one_more(), Decimal::from_str("0.03").unwrap());
        let back: JobCost = serde_json::from_str(&cost.to_json()).unwrap();
        assert_eq!(back, cost);
    }
}
