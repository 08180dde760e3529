//! Who may use the console: whoever holds the session token it printed, from a page it served.
//!
//! - The token is 32 random bytes, printed once in the URL. The first request that carries it
//!   (`?token=`) gets it back as an `HttpOnly`, `SameSite=Strict` cookie and is redirected to
//!   the same path without it, so it stays out of the history and of `Referer` headers.
//! - Every other request needs the cookie (or the query token): without it, 401.
//! - A form post must come from the console's own pages: a browser's `Sec-Fetch-Site` or
//!   `Origin` that names another site is refused with 403 before anything else is looked at,
//!   and the form must carry the CSRF token the console wrote into it (HMAC of the session
//!   token, so a page that cannot read the console cannot forge it), else 403.
//!
//! The token in the query is accepted on any request (the printed URL, a script's `curl`); the
//! cookie is what the browser carries after the first visit.

use axum::http::{HeaderMap, Method};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

pub const COOKIE: &str = "ocrbridge_review";

/// The console's secrets for one run.
#[derive(Clone)]
pub struct Session {
    token: String,
    csrf: String,
    /// `http://127.0.0.1:PORT`: the only origin a form post may come from.
    origin: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a credential: never in a log or an error.
        f.debug_struct("Session")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// Why a request was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error(
        "this console needs the session token it printed when it started: open the URL it printed"
    )]
    NoToken,
    #[error("a form posted from another site is refused: post from the console's own pages")]
    CrossSite,
    #[error("the form carries no valid CSRF token: reload the page and try again")]
    BadCsrf,
}

impl Denied {
    pub fn status(self) -> axum::http::StatusCode {
        match self {
            Denied::NoToken => axum::http::StatusCode::UNAUTHORIZED,
            Denied::CrossSite | Denied::BadCsrf => axum::http::StatusCode::FORBIDDEN,
        }
    }
}

impl Session {
    pub fn new(origin: String) -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self::with_token(hex::encode(bytes), origin)
    }

    fn with_token(token: String, origin: String) -> Self {
        let csrf = Hmac::<Sha256>::new_from_slice(token.as_bytes())
            .map(|mut mac| {
                mac.update(b"ocrbridge-review-console/csrf/v1");
                hex::encode(mac.finalize().into_bytes())
            })
            .unwrap_or_default();
        Session {
            token,
            csrf,
            origin,
        }
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The `Set-Cookie` value that carries the session in the browser.
    pub fn cookie(&self) -> String {
        format!("{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/", self.token)
    }

    /// Whether the query carries the token (the printed URL's first visit).
    pub fn query_has_token(&self, query: Option<&str>) -> bool {
        query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter_map(|pair| pair.split_once('='))
            .any(|(k, v)| k == "token" && equal(v, &self.token))
    }

    /// Checks a request before anything else is read: a post from another site is refused
    /// (403), then a request without the session (401).
    pub fn check(
        &self,
        method: &Method,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<(), Denied> {
        if method == Method::POST && self.cross_site(headers) {
            return Err(Denied::CrossSite);
        }
        let cookie = headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .any(|(k, v)| k == COOKIE && equal(v, &self.token));
        if cookie || self.query_has_token(query) {
            Ok(())
        } else {
            Err(Denied::NoToken)
        }
    }

    /// A form post's CSRF field must be the one the console wrote into its forms.
    pub fn check_csrf(&self, field: Option<&str>) -> Result<(), Denied> {
        if field.is_some_and(|f| equal(f, &self.csrf)) {
            Ok(())
        } else {
            Err(Denied::BadCsrf)
        }
    }

    /// A browser says where a request comes from: `Sec-Fetch-Site` (cross-site, same-site) or,
    /// failing that, `Origin`. A tool that sends neither (curl) is not a browser being tricked.
    fn cross_site(&self, headers: &HeaderMap) -> bool {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(site) = header("sec-fetch-site") {
            return !matches!(site, "same-origin" | "none");
        }
        header("origin").is_some_and(|o| o != self.origin)
    }
}

/// Compares in time independent of where the strings differ.
fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn session() -> Session {
        Session::with_token("t0ken".into(), "http://127.0.0.1:9".into())
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_request_needs_the_token_in_the_cookie_or_the_query() {
        let s = session();
        let get = Method::GET;
        assert_eq!(s.check(&get, &HeaderMap::new(), None), Err(Denied::NoToken));
        assert_eq!(
            s.check(
                &get,
                &headers(&[("cookie", "ocrbridge_review=wrong")]),
                None
            ),
            Err(Denied::NoToken)
        );
        assert_eq!(
            s.check(&get, &HeaderMap::new(), Some("token=wrong")),
            Err(Denied::NoToken)
        );
        assert_eq!(
            s.check(&get, &HeaderMap::new(), Some("token=t0ken")),
            Ok(())
        );
        assert_eq!(
            s.check(
                &get,
                &headers(&[("cookie", "a=b; ocrbridge_review=t0ken")]),
                None
            ),
            Ok(())
        );
    }

    #[test]
    fn a_post_needs_its_own_origin_and_the_csrf_token() {
        let s = session();
        let post = Method::POST;
        let csrf = s.csrf().to_owned();
        let cookie = ("cookie", "ocrbridge_review=t0ken");
        let same = headers(&[cookie, ("sec-fetch-site", "same-origin")]);
        assert_eq!(s.check(&post, &same, None), Ok(()));
        assert_eq!(s.check_csrf(Some(&csrf)), Ok(()));
        assert_eq!(
            s.check(
                &post,
                &headers(&[cookie, ("sec-fetch-site", "cross-site")]),
                None
            ),
            Err(Denied::CrossSite)
        );
        assert_eq!(
            s.check(
                &post,
                &headers(&[cookie, ("origin", "http://evil.example")]),
                None
            ),
            Err(Denied::CrossSite)
        );
        // Cross-site is refused even without the session: a forged post learns nothing more.
        assert_eq!(
            s.check(&post, &headers(&[("sec-fetch-site", "cross-site")]), None),
            Err(Denied::CrossSite)
        );
        assert_eq!(s.check_csrf(Some("forged")), Err(Denied::BadCsrf));
        assert_eq!(s.check_csrf(None), Err(Denied::BadCsrf));
        assert_ne!(
            s.csrf(),
            s.token(),
            "the form never carries the session token itself"
        );
    }
}
