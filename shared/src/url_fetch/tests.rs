//! The usual SSRF tricks, each against a real HTTP server on this machine, so that a guard
//! removed turns its refusal into a fetched document (the server answers every one of them).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::StreamExt;

use super::*;

/// A PNG header: enough for `inspect::detect`.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\x02\x80\0\0\x01\xe0 a receipt";

/// Names only this table knows: a fetch that used the system's resolver instead of ours (and
/// its check) would not find them.
struct Table(HashMap<&'static str, Vec<IpAddr>>);

impl Resolve for Table {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> Resolving<'a> {
        let found = self.0.get(host).map(|ips| {
            ips.iter()
                .map(|ip| SocketAddr::new(*ip, port))
                .collect::<Vec<_>>()
        });
        Box::pin(async move {
            found.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such name"))
        })
    }
}

fn table() -> Table {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    Table(HashMap::from([
        // The document server: the test allows 127.0.0.1 as an operator allows a VPC network.
        ("docs.test", vec![ip("127.0.0.1")]),
        // Loopback too, but not the allowed address.
        ("inside.test", vec![ip("127.0.0.2")]),
        // One allowed answer and one inside: a retry, or a client that resolves again, could
        // get either.
        ("split.test", vec![ip("127.0.0.1"), ip("127.0.0.2")]),
    ]))
}

/// Serves every trick on all of loopback (bound to 0.0.0.0, so `127.0.0.2` and the literal
/// forms of `127.0.0.1` reach it too); returns its port.
async fn server() -> u16 {
    async fn png() -> Response {
        ([(header::CONTENT_TYPE, "image/png")], PNG).into_response()
    }
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let redirect = |to: String| {
        move || {
            let to = to.clone();
            async move { (StatusCode::FOUND, [(header::LOCATION, to)]).into_response() }
        }
    };
    let app = Router::new()
        .route("/receipt.png", get(png))
        .route(
            "/to-inside",
            get(redirect(format!("http://127.0.0.2:{port}/receipt.png"))),
        )
        .route(
            "/to-inside-name",
            get(redirect(format!("http://inside.test:{port}/receipt.png"))),
        )
        .route("/hop1", get(redirect("/hop2".into())))
        .route("/hop2", get(redirect("/receipt.png".into())))
        .route("/loop", get(redirect("/loop".into())))
        .route(
            "/endless",
            get(|| async {
                let chunk = bytes::Bytes::from(PNG.repeat(1000));
                let body =
                    futures::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
                (
                    [(header::CONTENT_TYPE, "image/png")],
                    Body::from_stream(body),
                )
            }),
        )
        .route(
            "/trickle",
            get(|| async {
                let body = futures::stream::iter(PNG.iter().copied()).then(|b| async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b]))
                });
                (
                    [(header::CONTENT_TYPE, "image/png")],
                    Body::from_stream(body),
                )
            }),
        )
        .route(
            "/lies",
            get(|| async { ([(header::CONTENT_TYPE, "application/pdf")], PNG) }),
        )
        .route(
            "/page",
            get(|| async { ([(header::CONTENT_TYPE, "text/html")], "<html></html>") }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

fn policy() -> FetchPolicy {
    FetchPolicy {
        allow_http: true,
        allowed_networks: vec!["127.0.0.1/32".parse().unwrap()],
        max_bytes: 64 * 1024,
        total_time: Duration::from_secs(3),
        ..FetchPolicy::default()
    }
}

async fn fetch(policy: FetchPolicy, url: &str) -> Result<Fetched, Refusal> {
    Fetcher::new(policy, table()).fetch(url).await
}

#[tokio::test]
async fn a_document_on_an_allowed_server_is_fetched_through_checked_redirects() {
    let port = server().await;
    let got = fetch(policy(), &format!("http://docs.test:{port}/receipt.png"))
        .await
        .unwrap();
    assert_eq!((got.bytes.as_slice(), got.file_type), (PNG, FileType::Png));
    let hopped = fetch(policy(), &format!("http://docs.test:{port}/hop1"))
        .await
        .unwrap();
    assert_eq!((hopped.bytes.as_slice(), hopped.redirects), (PNG, 2));
}

#[tokio::test]
async fn loopback_and_metadata_addresses_are_refused_in_every_spelling() {
    let port = server().await;
    // The default policy: nothing allowed but public addresses.
    let strict = FetchPolicy {
        allowed_networks: Vec::new(),
        ..policy()
    };
    for host in [
        "127.0.0.1",
        "2130706433", // decimal
        "0177.0.0.1", // octal
        "0x7f.0.0.1", // hex
        "127.1",      // short form
        "[::1]",
        "[::ffff:127.0.0.1]",
        "0.0.0.0",
        "docs.test", // a name that resolves to one
    ] {
        let url = format!("http://{host}:{port}/receipt.png");
        let refused = fetch(strict.clone(), &url).await;
        assert!(
            matches!(refused, Err(Refusal::NotPublic { .. })),
            "{url}: {refused:?}"
        );
    }
    // The metadata service: refused before any connection is tried (nothing listens here).
    let metadata = fetch(strict, "http://169.254.169.254/latest/meta-data/").await;
    assert!(
        matches!(
            metadata,
            Err(Refusal::NotPublic {
                kind: AddressKind::LinkLocal,
                ..
            })
        ),
        "{metadata:?}"
    );
}

#[tokio::test]
async fn every_redirect_is_checked_again() {
    let port = server().await;
    for path in ["to-inside", "to-inside-name"] {
        let refused = fetch(policy(), &format!("http://docs.test:{port}/{path}")).await;
        assert!(
            matches!(
                refused,
                Err(Refusal::NotPublic {
                    kind: AddressKind::Loopback,
                    ..
                })
            ),
            "{path}: {refused:?}"
        );
    }
    let looping = fetch(policy(), &format!("http://docs.test:{port}/loop")).await;
    assert_eq!(looping.unwrap_err(), Refusal::TooManyRedirects { max: 3 });
}

#[tokio::test]
async fn a_name_with_any_inside_address_is_refused() {
    let port = server().await;
    let refused = fetch(policy(), &format!("http://split.test:{port}/receipt.png")).await;
    assert!(
        matches!(refused, Err(Refusal::NotPublic { .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn http_needs_the_local_flag_and_credentials_are_refused() {
    let port = server().await;
    let https_only = FetchPolicy {
        allow_http: false,
        ..policy()
    };
    let url = format!("http://docs.test:{port}/receipt.png");
    assert_eq!(
        fetch(https_only, &url).await.unwrap_err(),
        Refusal::Scheme {
            scheme: "http".into()
        }
    );
    let with_password = format!("http://me:secret@docs.test:{port}/receipt.png");
    let refused = fetch(policy(), &with_password).await.unwrap_err();
    assert_eq!(refused, Refusal::Credentials);
    assert!(!refused.to_string().contains("secret"));
    for scheme in [
        "file:///etc/passwd",
        "gopher://docs.test/",
        "ftp://docs.test/x.pdf",
    ] {
        assert_eq!(
            fetch(policy(), scheme).await.unwrap_err().code(),
            "scheme_not_allowed",
            "{scheme}"
        );
    }
}

#[tokio::test]
async fn an_endless_body_and_a_slow_trickle_end_in_refusals() {
    let port = server().await;
    let endless = fetch(policy(), &format!("http://docs.test:{port}/endless")).await;
    assert_eq!(endless.unwrap_err(), Refusal::TooLarge { limit: 64 * 1024 });
    let trickle = fetch(policy(), &format!("http://docs.test:{port}/trickle")).await;
    assert_eq!(
        trickle.unwrap_err(),
        Refusal::TooSlow {
            limit: Duration::from_secs(3)
        }
    );
}

#[tokio::test]
async fn the_bytes_must_be_a_document_of_the_declared_type() {
    let port = server().await;
    let lies = fetch(policy(), &format!("http://docs.test:{port}/lies")).await;
    assert_eq!(lies.unwrap_err().code(), "type_mismatch");
    let page = fetch(policy(), &format!("http://docs.test:{port}/page")).await;
    assert_eq!(page.unwrap_err(), Refusal::NotADocument);
}

#[test]
fn a_redacted_url_keeps_no_query_or_credentials() {
    assert_eq!(
        redacted("https://me:pw@docs.example.com:8443/a/b.pdf?X-Amz-Signature=abc#p"),
        "https://docs.example.com:8443/a/b.pdf"
    );
}

#[test]
fn networks_parse_and_contain() {
    let n: Network = "10.20.0.0/16".parse().unwrap();
    assert!(n.contains("10.20.255.1".parse().unwrap()));
    assert!(!n.contains("10.21.0.1".parse().unwrap()));
    let one: Network = "fd00::1".parse().unwrap();
    assert!(one.contains("fd00::1".parse().unwrap()));
    assert!(!one.contains("fd00::2".parse().unwrap()));
    assert!("10.0.0.0/33".parse::<Network>().is_err());
}
