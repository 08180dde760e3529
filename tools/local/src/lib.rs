//! The local stack: moto server, and the AWS resources of `template.yaml` provisioned into it.

pub mod alarms;
pub mod aws_prices;
pub mod bench;
pub mod cli;
pub mod degrade;
pub mod demo;
pub mod emf;
pub mod functions;
pub mod moto;
pub mod pdf_bench;
pub mod pipeline;
pub mod provision;
pub mod quality;
pub mod rie;
pub mod sam_lambda;
pub mod second_opinion;
pub mod template;

use std::path::{Path, PathBuf};

/// `template.yaml` at the workspace root, found from this crate's manifest directory so tests and
/// tools work from any current directory.
pub fn template_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml")
}
