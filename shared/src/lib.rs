//! ocrbridge: the nouns every Lambda function of the pipeline shares.
//!
//! ```text
//! functions/intake     S3 event      → validate → ledger: create job       → submit queue
//! functions/submit     submit msg    → lease → vendor.submit               → ledger: Submitted
//! functions/webhook    HTTP request  → verify → dedupe                     → results queue
//! functions/parse      result msg    → vendor.fetch → archive → normalize → rules → ledger: Completed
//! functions/reconcile  schedule      → ledger: stuck jobs → vendor.status  → results/submit queue
//! functions/rotate     rotation step → keyring                             → vendor secret registration
//! ```

pub mod aws;
pub mod batch;
pub mod blob;
pub mod breaker;
pub mod completion;
pub mod config;
pub mod cost;
pub mod document;
pub mod failpoints;
pub mod function_url;
pub mod inspect;
pub mod job;
pub mod keyring;
pub mod language;
pub mod ledger;
pub mod metrics;
pub mod mrz;
pub mod parts;
pub mod pdf_write;
pub mod preprocess;
pub mod quality;
pub mod queue;
pub mod recovery;
pub mod retry;
pub mod rules;
pub mod second_opinion;
pub mod segments;
pub mod signature;
pub mod telemetry;
pub mod time;
pub mod tls;
pub mod trace_context;
pub mod url_fetch;
pub mod vendors;
