//! Extraction quality: a fixed benchmark pack, run through the real pipeline, scored against its
//! truth, and compared with a pinned baseline run so a vendor that silently reads a field worse
//! is caught — a `200` response says nothing about whether the total is right.
//!
//! - [`pack`]: a pack is a folder (or S3 prefix) of documents under their profile prefix
//!   (`receipts/`, `invoices/`), each with a `<name>.truth.json` beside it;
//! - [`normalize`]: how an expected value and an extracted one are made comparable;
//! - [`score`]: one run's scores per document and per profile and field (exact match, null rate,
//!   CER/WER, confidence calibration, high-confidence wrong values, review rules, latency, cost);
//! - [`items`]: line items, paired by optimal assignment, then recall, precision and per-column
//!   accuracy;
//! - [`compare`]: a run against its baseline, document by document (a paired test);
//! - [`report`]: the self-contained HTML page and the terminal table;
//! - [`store`] and [`runner`]: where runs are kept (S3 and DynamoDB) and how a run is started
//!   and scored against a stack (the scheduled `benchmark` function and `make bench-quality`).

pub mod compare;
pub mod items;
pub mod normalize;
pub mod pack;
pub mod report;
pub mod runner;
pub mod score;
pub mod store;

pub use compare::{compare, Comparison, FieldComparison, Flip, RegressionPolicy};
pub use pack::{Pack, PackDocument, Truth};
pub use score::{DocumentScore, FieldScore, RunRecord, Scores};
