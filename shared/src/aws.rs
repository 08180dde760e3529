//! Building the AWS SDK clients, once per container.
//!
//! In AWS, credentials and region come from the Lambda environment. Locally and in tests the same
//! clients talk to moto server: set `AWS_ENDPOINT_URL` (honoured by `aws-config`) or call
//! [`local_sdk_config`]. S3 then needs path-style addressing, because `bucket.127.0.0.1` does not
//! resolve.

use std::sync::{Arc, OnceLock};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;

/// The SDK clients ocrbridge uses. Clone freely: clients share their connection pools.
#[derive(Debug, Clone)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// The configuration the clients were built from, for the clients built on demand and for
    /// tools that need another client.
    pub sdk_config: SdkConfig,
    /// Where [`AwsClients::textract`] sends its calls instead of the configuration's endpoint.
    textract_endpoint: Option<String>,
    /// The clients built on demand, once, and shared by every clone: a client built afresh
    /// from a configuration without an HTTP client gets its own (its own pool, its roots
    /// parsed again).
    secrets: Arc<OnceLock<aws_sdk_secretsmanager::Client>>,
    textract: Arc<OnceLock<aws_sdk_textract::Client>>,
}

impl AwsClients {
    /// Clients from the environment (the Lambda runtime, or `AWS_ENDPOINT_URL` for moto).
    /// The normal AWS configuration chain; `OCRBRIDGE_LOCAL_ENDPOINT`, when set and not empty
    /// (`sam local invoke` against moto: the template declares it empty), sends every client
    /// there instead. `TLS_ROOTS` chooses the roots they trust ([`crate::tls::Roots`]).
    pub async fn from_env() -> Result<Self, AwsSetupError> {
        let roots = crate::tls::Roots::from_lookup(|name| std::env::var(name).ok())
            .map_err(AwsSetupError::Roots)?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        // Set before `load`: the credential providers it builds (web identity's STS client)
        // take the same HTTP client, so no client of this process reads the system store.
        if let Some(http_client) = roots.aws_http_client() {
            loader = loader.http_client(http_client);
        }
        if let Some(endpoint) = std::env::var(LOCAL_ENDPOINT_VARIABLE)
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            loader = loader.endpoint_url(endpoint);
        }
        Ok(Self::from_sdk_config(&loader.load().await))
    }

    pub fn from_sdk_config(config: &SdkConfig) -> Self {
        let s3_config = aws_sdk_s3::config::Builder::from(config)
            // Only an emulator endpoint needs path style; real S3 keeps virtual-hosted addressing.
            .force_path_style(config.endpoint_url().is_some())
            .build();
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            sqs: aws_sdk_sqs::Client::new(config),
            sdk_config: config.clone(),
            textract_endpoint: None,
            secrets: Arc::default(),
            textract: Arc::default(),
        }
    }

    /// The same clients, with Textract's calls sent to `endpoint` (the local stack's twin).
    pub fn with_textract_endpoint(self, endpoint: impl Into<String>) -> Self {
        AwsClients {
            textract_endpoint: Some(endpoint.into()),
            textract: Arc::default(),
            ..self
        }
    }

    // Built on first use, not with the others: intake never reads a secret and only
    // `VENDOR=textract` calls Textract, and building a client is ~1.2 M instructions of a cold
    // start (issue #33). Later calls return a clone of the same client, as the fields did.

    /// A Secrets Manager client (webhook keys, vendor credentials, rotation).
    pub fn secrets(&self) -> aws_sdk_secretsmanager::Client {
        self.secrets
            .get_or_init(|| aws_sdk_secretsmanager::Client::new(&self.sdk_config))
            .clone()
    }

    /// A Textract client, for `VENDOR=textract`; `AWS_ENDPOINT_URL_TEXTRACT` points it elsewhere.
    pub fn textract(&self) -> aws_sdk_textract::Client {
        self.textract
            .get_or_init(|| {
                let mut config = aws_sdk_textract::config::Builder::from(&self.sdk_config);
                if let Some(endpoint) = &self.textract_endpoint {
                    config = config.endpoint_url(endpoint);
                }
                aws_sdk_textract::Client::from_conf(config.build())
            })
            .clone()
    }
}

/// Why a function could not build its AWS clients.
#[derive(Debug, thiserror::Error)]
pub enum AwsSetupError {
    /// `TLS_ROOTS` holds a value that names no roots; the message says which it accepts.
    #[error("{0}")]
    Roots(String),
}

/// Where a function's AWS clients go instead of AWS, when set (see [`AwsClients::from_env`]).
pub const LOCAL_ENDPOINT_VARIABLE: &str = "OCRBRIDGE_LOCAL_ENDPOINT";

/// The region moto answers for unless told otherwise.
pub const LOCAL_REGION: &str = "us-east-1";

/// An SDK configuration for a local emulator at `endpoint`, with dummy static credentials, so no
/// credential provider chain is consulted and nothing can reach a real account.
pub fn local_sdk_config(endpoint: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(LOCAL_REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            Credentials::new("testing", "testing", None, None, "ocrbridge-local"),
        ))
        .build()
}
