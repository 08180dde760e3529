//! What the benchmark binaries share: their flags, and a fresh stack from the template.

use std::str::FromStr;
use std::time::Duration;

use ocrbridge::aws::AwsClients;
use ocrbridge::time::UnixMillis;

use crate::provision::{provision, LocalStack, ProvisionOptions};
use crate::template::Template;
use crate::{moto, template_path};

/// `--name value` flags.
pub struct Flags(Vec<String>);

impl Flags {
    pub fn from_env() -> Self {
        Flags(std::env::args().skip(1).collect())
    }

    /// The first argument, for binaries with subcommands.
    pub fn command(&self) -> Option<&str> {
        self.0.first().map(String::as_str)
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.0.get(i + 1))
            .cloned()
    }

    /// The flag parsed, or `default` when absent or unparsable.
    pub fn parse<T: FromStr>(&self, name: &str, default: T) -> T {
        self.get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }
}

/// Waits for moto at `endpoint`, then provisions the template under `<prefix>-<unix secs>`.
pub async fn fresh_stack(
    clients: &AwsClients,
    endpoint: &str,
    prefix: &str,
) -> Result<LocalStack, String> {
    moto::wait_healthy(endpoint, Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())?;
    let template = Template::load(&template_path()).map_err(|e| e.to_string())?;
    provision(
        clients,
        &template,
        &ProvisionOptions {
            stack_name: format!("{prefix}-{}", UnixMillis::now().0 / 1000),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| e.to_string())
}
