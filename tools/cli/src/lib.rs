//! `ocrbridge`: the operator's command line. Every command resolves the stack it works on
//! ([`target`]), does one thing with the same library the functions use (the ledger's guarded
//! writes, the queues, the recovery rules), and prints a table — or JSON with `--json`.
//! Exit codes: 0 done, 1 an AWS call failed, 2 usage, 3 not found, 4 refused, 5 no credentials.

pub mod commands;
pub mod console;
pub mod error;
pub mod output;
pub mod target;
#[cfg(test)]
mod testing;
pub mod weekly;

pub use error::CliError;
pub use target::Target;
