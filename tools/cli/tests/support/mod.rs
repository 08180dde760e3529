// Each test binary uses some of these helpers.
#![allow(dead_code)]

//! What every CLI test does: write the stack's environment file and run the `ocrbridge` binary
//! against it, as an operator would.

use std::path::PathBuf;
use std::process::Output;

use ocrbridge_tests::TestStack;
use serde_json::Value;

/// The stack's environment file, as `ocrbridge local provision --env-out` writes it.
pub fn env_file(s: &TestStack) -> PathBuf {
    let text = ocrbridge_local::cli::env_lines(&s.endpoint, &s.stack).unwrap();
    let path = std::env::temp_dir().join(format!("{}.env", s.stack.stack_name()));
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `ocrbridge --env-file ENV ARGS…`.
pub async fn ocrbridge(env: &PathBuf, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ocrbridge"));
    command.arg("--env-file").arg(env).args(args);
    command.output().await.unwrap()
}

/// The command's `--json` output, or the test's failure with what it printed.
pub fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
