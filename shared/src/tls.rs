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
//! The AWS SDK's clients are not configured here: their HTTP client takes extra roots only as
//! PEM, which it parses, and loads the system store once per process.

use std::sync::{Arc, LazyLock};

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
    /// (`tests/fixtures/tls/`), answering every connection `200 ok`.
    async fn https_server() -> std::net::SocketAddr {
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
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A refused handshake ends here: that is what one test wants.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
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
        addr
    }

    #[tokio::test]
    async fn the_bundled_roots_refuse_a_chain_they_do_not_hold_and_the_server_is_otherwise_reached()
    {
        let addr = https_server().await;
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
}
