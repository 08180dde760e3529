//! Documents by URL, fetched so that the URL cannot be turned against us (SSRF).
//!
//! A caller names a URL; ocrbridge fetches it from inside the VPC, with the function's network
//! reach. Without care that reach is the attacker's: the instance metadata service, the VPC's
//! private services, our own loopback. So, on every hop:
//! - the scheme is https, unless a local stack allows http ([`FetchPolicy::allow_http`]);
//! - the host is resolved by us, **every** address it resolves to must be public unicast
//!   ([`address::non_public`]) or inside a network the operator allowed, and the connection
//!   goes to the address that was checked (reqwest's DNS is overridden for that host), so a
//!   second lookup cannot answer differently (DNS rebinding);
//! - redirects are not followed by the client: each `Location` is checked as a new URL, at most
//!   [`FetchPolicy::max_redirects`] of them;
//! - environment proxies are ignored (a proxy would connect wherever it likes);
//! - the body is bounded in bytes and the whole fetch in time, so an endless body or a slow
//!   trickle ends in a refusal, not a stuck function;
//! - the bytes must be a document ocrbridge reads, and a specific Content-Type must agree with
//!   what they are.
//!
//! Every refusal is a [`Refusal`] with a stable [`Refusal::code`] for the metric and the record.

pub mod address;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use std::future::Future;
use std::pin::Pin;

use reqwest::Url;

use crate::inspect::{self, Declared, FileType};
pub use address::AddressKind;

/// Why a URL was not fetched. Messages never carry the URL's query (it may hold a token).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("the URL does not parse: {0}")]
    Malformed(String),
    #[error("only https URLs are fetched, not {scheme}: (http only where ALLOW_HTTP_URLS is set, on a local stack)")]
    Scheme { scheme: String },
    #[error("the URL carries a user name or password; give a URL without credentials")]
    Credentials,
    #[error("{host} is {addr}, a {kind} address: only public addresses are fetched (an operator can allow a network with FETCH_ALLOWED_NETWORKS)")]
    NotPublic {
        host: String,
        addr: IpAddr,
        kind: AddressKind,
    },
    #[error("{host} does not resolve: {detail}")]
    Unresolved { host: String, detail: String },
    #[error("more than {max} redirects")]
    TooManyRedirects { max: u8 },
    #[error("a redirect ({status}) without a usable Location")]
    BadRedirect { status: u16 },
    #[error("the server answered {status}")]
    Status { status: u16 },
    #[error("the body is over {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the fetch took longer than {limit:?}")]
    TooSlow { limit: Duration },
    #[error("the body is not a document ocrbridge reads (PDF or an image)")]
    NotADocument,
    #[error("declared {declared}")]
    TypeMismatch { declared: String },
    #[error("the connection failed: {0}")]
    Connect(String),
}

impl Refusal {
    /// The stable code: the metric's dimension and the recorded reason.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Malformed(_) => "malformed_url",
            Refusal::Scheme { .. } => "scheme_not_allowed",
            Refusal::Credentials => "credentials_in_url",
            Refusal::NotPublic { .. } => "address_not_public",
            Refusal::Unresolved { .. } => "unresolved",
            Refusal::TooManyRedirects { .. } => "too_many_redirects",
            Refusal::BadRedirect { .. } => "bad_redirect",
            Refusal::Status { .. } => "http_status",
            Refusal::TooLarge { .. } => "too_large",
            Refusal::TooSlow { .. } => "too_slow",
            Refusal::NotADocument => "not_a_document",
            Refusal::TypeMismatch { .. } => "type_mismatch",
            Refusal::Connect(_) => "connect_failed",
        }
    }

    /// Whether trying the same URL later could succeed (the server's trouble, not the URL's).
    pub fn is_transient(&self) -> bool {
        match self {
            Refusal::Status { status } => *status == 429 || *status >= 500,
            Refusal::Connect(_) | Refusal::TooSlow { .. } | Refusal::Unresolved { .. } => true,
            _ => false,
        }
    }
}

/// A network written `address/prefix`, e.g. `10.20.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    base: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn contains(&self, addr: IpAddr) -> bool {
        fn masked(bits: u128, width: u8, prefix: u8) -> u128 {
            if prefix == 0 {
                0
            } else {
                bits >> (width - prefix)
            }
        }
        match (self.base, addr) {
            (IpAddr::V4(b), IpAddr::V4(a)) => {
                masked(u32::from(b).into(), 32, self.prefix)
                    == masked(u32::from(a).into(), 32, self.prefix)
            }
            (IpAddr::V6(b), IpAddr::V6(a)) => {
                masked(u128::from(b), 128, self.prefix) == masked(u128::from(a), 128, self.prefix)
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Network {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (base, prefix) = s.split_once('/').unwrap_or((s, ""));
        let base: IpAddr = base
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not address/prefix"))?;
        let width = if base.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            width
        } else {
            prefix
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(|| format!("{s:?}: the prefix must be 0–{width}"))?
        };
        Ok(Network { base, prefix })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// What a fetch may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPolicy {
    /// `ALLOW_HTTP_URLS`: http as well as https. Only for a local stack.
    pub allow_http: bool,
    /// `FETCH_ALLOWED_NETWORKS`: networks fetched from although they are not public, e.g. a
    /// document server inside the VPC. Empty by default.
    pub allowed_networks: Vec<Network>,
    /// Redirects followed, each checked as a new URL.
    pub max_redirects: u8,
    /// `FETCH_MAX_BYTES`: the body's bound.
    pub max_bytes: u64,
    /// `FETCH_TIMEOUT_SECONDS`: the whole fetch, every hop, connection and body included.
    pub total_time: Duration,
    pub connect_timeout: Duration,
    /// `TLS_ROOTS`: the authorities a document server's certificate may chain to.
    pub roots: crate::tls::Roots,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            allow_http: false,
            allowed_networks: Vec::new(),
            max_redirects: 3,
            // Textract's image bound; a PDF by URL past it is better uploaded.
            max_bytes: 10 * 1024 * 1024,
            total_time: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(5),
            roots: crate::tls::Roots::default(),
        }
    }
}

impl FetchPolicy {
    /// From the environment (`lookup`), defaults where unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut policy = FetchPolicy {
            roots: crate::tls::Roots::from_lookup(&lookup)?,
            ..FetchPolicy::default()
        };
        if let Some(v) = lookup("ALLOW_HTTP_URLS") {
            policy.allow_http = matches!(v.trim(), "1" | "true" | "yes");
        }
        if let Some(v) = lookup("FETCH_ALLOWED_NETWORKS") {
            policy.allowed_networks = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("FETCH_ALLOWED_NETWORKS: {e}"))?;
        }
        if let Some(v) = lookup("FETCH_MAX_BYTES") {
            policy.max_bytes = v
                .trim()
                .parse()
                .map_err(|_| format!("FETCH_MAX_BYTES: {v:?} is not a byte count"))?;
        }
        if let Some(v) = lookup("FETCH_TIMEOUT_SECONDS") {
            policy.total_time = Duration::from_secs(
                v.trim()
                    .parse()
                    .map_err(|_| format!("FETCH_TIMEOUT_SECONDS: {v:?} is not seconds"))?,
            );
        }
        Ok(policy)
    }

    fn allowed(&self, addr: IpAddr) -> Result<(), AddressKind> {
        match address::non_public(addr) {
            Some(kind) if !self.allowed_networks.iter().any(|n| n.contains(addr)) => Err(kind),
            _ => Ok(()),
        }
    }
}

/// A resolver's answer, to come.
pub type Resolving<'a> =
    Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'a>>;

/// Name resolution: the system's in a function; a table in tests, so that a name can be made
/// to resolve to any address.
pub trait Resolve: Send + Sync {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> Resolving<'a>;
}

/// The system resolver.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> Resolving<'a> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// A fetched document.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub file_type: FileType,
    /// The redirects followed.
    pub redirects: u8,
}

/// The URL without its query, fragment and credentials: what may be logged or recorded.
pub fn redacted(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            match u.port() {
                Some(p) => format!(":{p}{}", u.path()),
                None => u.path().to_owned(),
            }
        ),
        Err(_) => "<unparsable url>".to_owned(),
    }
}

/// Fetches documents under a [`FetchPolicy`].
pub struct Fetcher<R: Resolve = SystemResolver> {
    pub policy: FetchPolicy,
    pub resolver: R,
}

impl<R: Resolve> Fetcher<R> {
    pub fn new(policy: FetchPolicy, resolver: R) -> Self {
        Fetcher { policy, resolver }
    }

    /// Fetches `url`, or says why not.
    pub async fn fetch(&self, url: &str) -> Result<Fetched, Refusal> {
        let limit = self.policy.total_time;
        tokio::time::timeout(limit, self.follow(url))
            .await
            .map_err(|_| Refusal::TooSlow { limit })?
    }

    async fn follow(&self, url: &str) -> Result<Fetched, Refusal> {
        let mut url = Url::parse(url).map_err(|e| Refusal::Malformed(e.to_string()))?;
        let mut redirects = 0u8;
        loop {
            let (host, addr) = self.checked(&url).await?;
            let mut client = self
                .policy
                .roots
                .apply(reqwest::Client::builder())
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .connect_timeout(self.policy.connect_timeout);
            if let Some(name) = host {
                // Connect to the address that was checked, not to a second lookup's answer.
                client = client.resolve(&name, addr);
            }
            let client = client
                .build()
                .map_err(|e| Refusal::Connect(e.to_string()))?;
            let response = client
                .get(url.clone())
                .send()
                .await
                .map_err(|e| Refusal::Connect(without_url(&e)))?;
            let status = response.status();
            if status.is_redirection() {
                if redirects >= self.policy.max_redirects {
                    return Err(Refusal::TooManyRedirects {
                        max: self.policy.max_redirects,
                    });
                }
                let next = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| url.join(l).ok())
                    .ok_or(Refusal::BadRedirect {
                        status: status.as_u16(),
                    })?;
                url = next;
                redirects += 1;
                continue;
            }
            if !status.is_success() {
                return Err(Refusal::Status {
                    status: status.as_u16(),
                });
            }
            return self.body(response, redirects).await;
        }
    }

    /// The URL's host checked: `(Some(name), address)` for a name, `(None, address)` for an
    /// address literal (every form the URL parser accepts reaches here as an address).
    async fn checked(&self, url: &Url) -> Result<(Option<String>, SocketAddr), Refusal> {
        match url.scheme() {
            "https" => {}
            "http" if self.policy.allow_http => {}
            other => {
                return Err(Refusal::Scheme {
                    scheme: other.to_owned(),
                })
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal::Credentials);
        }
        let port = url
            .port_or_known_default()
            .ok_or_else(|| Refusal::Malformed("no port".into()))?;
        let host = url
            .host()
            .ok_or_else(|| Refusal::Malformed("no host".into()))?;
        let (name, addrs) =
            match host {
                url::Host::Ipv4(v4) => (None, vec![SocketAddr::new(v4.into(), port)]),
                url::Host::Ipv6(v6) => (None, vec![SocketAddr::new(v6.into(), port)]),
                url::Host::Domain(name) => {
                    let addrs = self.resolver.resolve(name, port).await.map_err(|e| {
                        Refusal::Unresolved {
                            host: name.to_owned(),
                            detail: e.to_string(),
                        }
                    })?;
                    (Some(name.to_owned()), addrs)
                }
            };
        let shown = name.clone().unwrap_or_else(|| host.to_string());
        let first = *addrs.first().ok_or_else(|| Refusal::Unresolved {
            host: shown.clone(),
            detail: "no addresses".into(),
        })?;
        // Every address, not only the one connected to: a name that also resolves inside is
        // refused, whichever answer a retry would get.
        for a in &addrs {
            self.policy
                .allowed(a.ip())
                .map_err(|kind| Refusal::NotPublic {
                    host: shown.clone(),
                    addr: a.ip(),
                    kind,
                })?;
        }
        Ok((name, first))
    }

    async fn body(
        &self,
        mut response: reqwest::Response,
        redirects: u8,
    ) -> Result<Fetched, Refusal> {
        let limit = self.policy.max_bytes;
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(Refusal::TooLarge { limit });
        }
        let declared = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|c| c.to_str().ok())
            .map(str::to_owned);
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Refusal::Connect(without_url(&e)))?
        {
            if bytes.len() as u64 + chunk.len() as u64 > limit {
                return Err(Refusal::TooLarge { limit });
            }
            bytes.extend_from_slice(&chunk);
        }
        let file_type = inspect::detect(&bytes).ok_or(Refusal::NotADocument)?;
        let declared = Declared {
            extension: None,
            ..Declared::from_key("", declared.as_deref())
        };
        if let Some(mismatch) = declared.mismatch(file_type) {
            return Err(Refusal::TypeMismatch { declared: mismatch });
        }
        Ok(Fetched {
            bytes,
            file_type,
            redirects,
        })
    }
}

/// A reqwest error's text without the URL it carries (its query may hold a token).
fn without_url(e: &reqwest::Error) -> String {
    let mut e = e.to_string();
    if let Some(at) = e.find(" for url (") {
        e.truncate(at);
    }
    e
}

#[cfg(test)]
mod tests;
