//! The certificate authorities our own HTTPS clients trust: the vendors' APIs and documents
//! fetched by URL (`reqwest`).
//!
//! By default ([`Roots::Bundled`]) they are Mozilla's roots compiled into the binary
//! (`webpki-roots`) as trust anchors already parsed, so building a client reads and parses
//! nothing. The system store ([`Roots::System`], `TLS_ROOTS=system`) is read from disk and every
//! certificate in it parsed whenever a client is built: under callgrind that was 19 M of the
//! 47 M instructions submit ran before asking for its first event, on a Debian store of ~300
//! files (issue #33), and the URL fetcher paid it again for every hop. Choose `system` for a
//! vendor or a document server whose certificate chains to a private CA.
//!
//! The AWS SDK's clients ([`Roots::aws_http_client`]) keep the SDK's own HTTP client (its pool,
//! timeouts and retry classification), told to trust only the five roots of Amazon Trust
//! Services (`shared/certs/amazon-trust-services.pem`), the authority every AWS service
//! endpoint's certificate chains to. That client takes roots only as PEM, which it parses: five
//! certificates cost little, while its default, the system store, was 18 M of intake's 28 M
//! instructions before its first event. `TLS_ROOTS=system` gives them the system store too,
//! for an endpoint (`AWS_ENDPOINT_URL`) behind a private CA.

use std::sync::{Arc, LazyLock};

use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// Which roots our HTTPS clients trust (`TLS_ROOTS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Roots {
    /// Mozilla's roots, compiled in (`bundled`, the default).
    #[default]
    Bundled,
    /// The system's store, read when a client is built (`system`).
    System,
}

/// The variable that chooses [`Roots`].
pub const ROOTS_VARIABLE: &str = "TLS_ROOTS";

impl Roots {
    /// `TLS_ROOTS` from `lookup`: `bundled` (or unset) or `system`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Roots, String> {
        match lookup(ROOTS_VARIABLE).as_deref().map(str::trim) {
            None | Some("") | Some("bundled") => Ok(Roots::Bundled),
            Some("system") => Ok(Roots::System),
            Some(other) => Err(format!(
                "{ROOTS_VARIABLE}={other:?}: expected bundled (Mozilla's roots, compiled in) or system (the system's store)"
            )),
        }
    }

    /// `builder` trusting these roots.
    pub fn apply(self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        match self {
            // reqwest's own configuration: rustls with the platform's verifier and store.
            Roots::System => builder,
            Roots::Bundled => builder.tls_backend_preconfigured((*BUNDLED).clone()),
        }
    }

    /// The HTTP client for the AWS SDK's clients: with [`Roots::Bundled`], the SDK's own client
    /// trusting Amazon Trust Services' roots only; with [`Roots::System`], `None`, which leaves
    /// the SDK's default (the system store, loaded once per process).
    pub fn aws_http_client(self) -> Option<SharedHttpClient> {
        match self {
            Roots::System => None,
            Roots::Bundled => Some(sdk_client_trusting(AMAZON_TRUST_SERVICES)),
        }
    }
}

/// Amazon Root CA 1-4 and Starfield Services Root G2, which cross-signs them: whatever chain an
/// AWS endpoint sends, it ends at one of these (<https://www.amazontrust.com/repository/>).
const AMAZON_TRUST_SERVICES: &[u8] = include_bytes!("../certs/amazon-trust-services.pem");

/// The SDK's HTTP client (rustls with aws-lc, as `default-https-client` builds it) trusting the
/// certificates in `pem` and no others.
fn sdk_client_trusting(pem: &[u8]) -> SharedHttpClient {
    let context = TlsContext::builder()
        .with_trust_store(TrustStore::empty().with_pem_certificate(pem))
        .build()
        // The builder only moves its fields. The PEM is parsed when the SDK builds its
        // connector (as each client is built), and `the_aws_roots_are_amazon_trust_services_five`
        // parses ours.
        .unwrap_or_else(|e| unreachable!("a TLS context from a trust store: {e}"));
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https()
}

/// One configuration per process: cloning it shares its parts.
static BUNDLED: LazyLock<rustls::ClientConfig> = LazyLock::new(|| {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    // The provider's own suites and versions: they always agree.
    .unwrap_or_else(|e| unreachable!("aws-lc-rs supports rustls' safe defaults: {e}"))
    .with_root_certificates(roots)
    .with_no_client_auth();
    // What reqwest offers with its own configuration: HTTP/2 where the server speaks it.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
});

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn roots_are_bundled_unless_system_is_asked_for() {
        let lookup = |value: Option<&'static str>| {
            move |name: &str| {
                assert_eq!(name, ROOTS_VARIABLE);
                value.map(str::to_owned)
            }
        };
        assert_eq!(Roots::from_lookup(lookup(None)), Ok(Roots::Bundled));
        assert_eq!(
            Roots::from_lookup(lookup(Some("bundled"))),
            Ok(Roots::Bundled)
        );
        assert_eq!(
            Roots::from_lookup(lookup(Some(" system "))),
            Ok(Roots::System)
        );
        let refused = Roots::from_lookup(lookup(Some("native"))).expect_err("unknown");
        assert!(refused.contains("TLS_ROOTS=\"native\""), "{refused}");
    }

    #[test]
    fn the_bundled_roots_hold_the_public_authorities_our_vendors_use() {
        assert!(BUNDLED.alpn_protocols.contains(&b"h2".to_vec()));
        // Amazon Root CA 1 (Textract, S3 presigned URLs), DigiCert Global Root G2 (Azure),
        // ISRG Root X1 (Let's Encrypt), GTS Root R1 (Google): each by its subject's CN.
        for name in [
            "Amazon Root CA 1",
            "DigiCert Global Root G2",
            "ISRG Root X1",
            "GTS Root R1",
        ] {
            assert!(
                webpki_roots::TLS_SERVER_ROOTS
                    .iter()
                    .any(|anchor| contains(anchor.subject.as_ref(), name.as_bytes())),
                "{name} is not among the bundled roots"
            );
        }
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    const TEST_CA: &[u8] = include_bytes!("../../tests/fixtures/tls/test-ca.pem");
    const LOCALHOST_CERT: &[u8] = include_bytes!("../../tests/fixtures/tls/localhost.pem");
    const LOCALHOST_KEY: &[u8] = include_bytes!("../../tests/fixtures/tls/localhost.key");

    /// An HTTPS server on loopback for `localhost`, its chain issued by a CA trusted nowhere
    /// (`tests/fixtures/tls/`), answering every connection `200 ok`; with the count of
    /// handshakes it completed.
    async fn https_server() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let chain = vec![CertificateDer::from_pem_slice(LOCALHOST_CERT).expect("cert")];
        let key = PrivateKeyDer::from_pem_slice(LOCALHOST_KEY).expect("key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handshakes = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&handshakes);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let counted = Arc::clone(&counted);
                tokio::spawn(async move {
                    // A refused handshake ends here: that is what one test wants.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    counted.fetch_add(1, Ordering::SeqCst);
                    let mut request = [0u8; 1024];
                    let _ = tls.read(&mut request).await;
                    let _ = tls
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        (addr, handshakes)
    }

    #[tokio::test]
    async fn the_bundled_roots_refuse_a_chain_they_do_not_hold_and_the_server_is_otherwise_reached()
    {
        let (addr, _) = https_server().await;
        let url = format!("https://localhost:{}/", addr.port());
        let client = |builder: reqwest::ClientBuilder| {
            builder
                .resolve("localhost", addr)
                .no_proxy()
                .build()
                .expect("client")
        };
        // The control: a client that trusts the test CA reads the server's answer, so a refusal
        // below is the roots' doing, not the server's.
        let trusting = client(
            reqwest::Client::builder()
                .tls_certs_only([reqwest::Certificate::from_pem(TEST_CA).expect("test CA")]),
        );
        let answer = trusting
            .get(&url)
            .send()
            .await
            .expect("the control reaches the server");
        assert_eq!(answer.text().await.expect("body"), "ok");

        let bundled = client(Roots::Bundled.apply(reqwest::Client::builder()));
        let refused = bundled
            .get(&url)
            .send()
            .await
            .expect_err("a chain to an unknown CA is refused");
        let chain: Vec<String> =
            std::iter::successors(Some(&refused as &(dyn std::error::Error + 'static)), |e| {
                e.source()
            })
            .map(|e| e.to_string())
            .collect();
        assert!(
            chain.iter().any(|e| e.contains("UnknownIssuer")),
            "refused for another reason: {chain:?}"
        );
    }

    #[test]
    fn the_aws_roots_are_amazon_trust_services_five() {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        use sha2::{Digest, Sha256};
        let certificates = CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES)
            .collect::<Result<Vec<_>, _>>()
            .expect("the PEM parses, as the SDK's client will parse it");
        let fingerprints: Vec<String> = certificates
            .iter()
            .map(|der| hex::encode(Sha256::digest(der)))
            .collect();
        // As Amazon publishes them (amazontrust.com/repository) and Debian ships them.
        assert_eq!(
            fingerprints,
            [
                "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e", // Root CA 1
                "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4", // Root CA 2
                "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4", // Root CA 3
                "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092", // Root CA 4
                "568d6905a2c88708a4b3025190edcfedb1974a606a13c6e5290fcb2ae63edab5", // Starfield G2
            ]
        );
        let mut store = rustls::RootCertStore::empty();
        for der in certificates {
            store.add(der).expect("each is a usable trust anchor");
        }
        assert_eq!(store.len(), 5);
    }

    /// The AWS clients as a function builds them (`AwsClients::from_env`), each set of
    /// variables in a process of its own (the SDK reads the system store once per process),
    /// against a server whose CA is, for this test, the whole system store (`SSL_CERT_FILE`).
    /// `TLS_ROOTS=system` reaches it; the default does not, because it trusts Amazon's roots
    /// only; an unknown value stops the function before its first event.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_aws_clients_trust_amazons_roots_unless_the_system_store_is_asked_for() {
        let (addr, handshakes) = https_server().await;
        let endpoint = format!("https://localhost:{}", addr.port());
        let run = |roots: &'static str| {
            let endpoint = endpoint.clone();
            tokio::task::spawn_blocking(move || {
                let test_ca = concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../tests/fixtures/tls/test-ca.pem"
                );
                let exe = std::env::current_exe().expect("this test binary");
                let out = std::process::Command::new(exe)
                    .args([
                        "tls::tests::aws_clients_in_a_process_of_their_own",
                        "--exact",
                        "--ignored",
                        "--nocapture",
                    ])
                    .env("SSL_CERT_FILE", test_ca)
                    .env("SSL_CERT_DIR", "")
                    .env(ROOTS_VARIABLE, roots)
                    .env("AWS_ENDPOINT_URL", endpoint)
                    .env("AWS_REGION", "us-east-1")
                    .env("AWS_ACCESS_KEY_ID", "testing")
                    .env("AWS_SECRET_ACCESS_KEY", "testing")
                    .env("AWS_MAX_ATTEMPTS", "1")
                    .env("AWS_EC2_METADATA_DISABLED", "true")
                    .env("AWS_CONFIG_FILE", "/nonexistent")
                    .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
                    .env_remove("AWS_PROFILE")
                    .env_remove("AWS_SESSION_TOKEN")
                    .env_remove(crate::aws::LOCAL_ENDPOINT_VARIABLE)
                    .output()
                    .expect("run the child");
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                (out.status.success(), text)
            })
        };

        let (ok, text) = run("system").await.expect("join");
        assert!(ok, "{text}");
        assert_eq!(
            handshakes.load(Ordering::SeqCst),
            1,
            "with the system store the SDK reaches the server: {text}"
        );

        let (ok, text) = run("bundled").await.expect("join");
        assert!(ok, "{text}");
        assert!(
            text.contains("UnknownIssuer"),
            "refused for another reason: {text}"
        );
        assert_eq!(handshakes.load(Ordering::SeqCst), 1, "{text}");

        let (ok, text) = run("native").await.expect("join");
        assert!(!ok, "an unknown TLS_ROOTS builds no clients: {text}");
        assert!(text.contains("TLS_ROOTS=\"native\""), "{text}");
    }

    /// Run by the test above, in a process of its own.
    #[tokio::test]
    #[ignore = "run in its own process by the_aws_clients_trust_amazons_roots_unless_the_system_store_is_asked_for"]
    async fn aws_clients_in_a_process_of_their_own() {
        let clients = crate::aws::AwsClients::from_env()
            .await
            .unwrap_or_else(|e| panic!("no clients: {e}"));
        // The server answers `ok`, which is no S3 answer: an error either way; what matters is
        // whether the handshake was made, which the server counts, and why not, printed here.
        let outcome = clients.s3.list_buckets().send().await;
        println!(
            "outcome: {:?}",
            outcome.map_err(|e| aws_sdk_s3::error::DisplayErrorContext(e).to_string())
        );
    }
}
