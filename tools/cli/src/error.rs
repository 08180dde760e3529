//! What can go wrong for an operator, each with its exit code.

/// An error the CLI reports on stderr, exiting with [`CliError::exit_code`].
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line itself is wrong (clap's own errors exit 2 too).
    #[error("{0}")]
    Usage(String),
    /// A job id that is not in the jobs table.
    #[error("no job {0} in this stack's jobs table; `ocrbridge jobs list` shows what there is")]
    UnknownJob(String),
    /// The stack (or the local stack's environment file) is not there.
    #[error("stack {name} not found: {detail}")]
    UnknownStack { name: String, detail: String },
    /// No AWS credentials were found by the usual chain.
    #[error("no AWS credentials: {0} (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; --local uses the local stack's)")]
    NoCredentials(String),
    /// What was asked is not allowed: a retry of a job whose reason is final, an approval of a
    /// job that is not in review.
    #[error("{0}")]
    Refused(String),
    /// An AWS call failed.
    #[error("{0}")]
    Aws(String),
}

impl CliError {
    /// 1 an AWS call failed, 2 usage, 3 not found, 4 refused, 5 no credentials.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Aws(_) => 1,
            CliError::Usage(_) => 2,
            CliError::UnknownJob(_) | CliError::UnknownStack { .. } => 3,
            CliError::Refused(_) => 4,
            CliError::NoCredentials(_) => 5,
        }
    }

    /// An AWS error, told apart when it is about credentials.
    pub fn aws(detail: impl std::fmt::Display) -> Self {
        let detail = detail.to_string();
        let lower = detail.to_ascii_lowercase();
        if lower.contains("no credentials")
            || lower.contains("credentials must be set")
            || lower.contains("credentials provider")
            || lower.contains("failed to load credentials")
            || lower.contains("loading credentials")
        {
            // The SDK appends its whole debug dump; the first clause says it.
            let short = detail
                .split(" (DispatchFailure")
                .next()
                .unwrap_or(&detail)
                .to_owned();
            CliError::NoCredentials(short)
        } else {
            CliError::Aws(detail)
        }
    }
}

impl From<ocrbridge::ledger::LedgerError> for CliError {
    fn from(e: ocrbridge::ledger::LedgerError) -> Self {
        CliError::aws(e)
    }
}

impl From<ocrbridge::queue::QueueError> for CliError {
    fn from(e: ocrbridge::queue::QueueError) -> Self {
        CliError::aws(e)
    }
}
