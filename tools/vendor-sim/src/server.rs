//! The HTTP accept loop. Hand-rolled on hyper (instead of `axum::serve`) for one reason: the
//! accept-then-drop fault must close the connection *without* a response, which only a service
//! error does. A handler marks such a response with [`DropConnection`], or with [`TruncateBody`]
//! to send the status and headers and then break the connection halfway through the body.

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower::ServiceExt;

/// Response extension: close the connection instead of sending this response.
#[derive(Debug, Clone, Copy)]
pub struct DropConnection;

/// Response extension: send the status line and headers (with the full `Content-Length`), then
/// half of the body, then break the connection.
#[derive(Debug, Clone, Copy)]
pub struct TruncateBody;

/// Response extension: hold the (already decided) response this long before sending it. The
/// work is done; only the answer is late, past a client's timeout.
#[derive(Debug, Clone, Copy)]
pub struct HoldResponse(pub std::time::Duration);

/// The body of a truncated response: the first half of `body`, then an error, which makes hyper
/// abort the connection mid-body.
async fn truncate(response: axum::response::Response) -> axum::response::Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    parts.headers.insert(
        axum::http::header::CONTENT_LENGTH,
        axum::http::HeaderValue::from(bytes.len()),
    );
    let half = bytes.slice(..bytes.len() / 2);
    // The pause lets hyper flush the head and the first half before the error aborts the
    // connection; without it both could be discarded together and the client would see no
    // response at all (that is the `drop` fault).
    let chunks = futures::stream::StreamExt::chain(
        futures::stream::iter([Ok::<_, std::io::Error>(half)]),
        futures::stream::once(async {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            Err(std::io::Error::other(
                "response truncated by fault injection",
            ))
        }),
    );
    axum::response::Response::from_parts(parts, axum::body::Body::from_stream(chunks))
}

#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

pub async fn serve(listener: TcpListener, router: Router, mut shutdown: oneshot::Receiver<()>) {
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let router = router.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let router = router.clone();
                async move {
                    let response = match router.oneshot(request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    };
                    if let Some(HoldResponse(pause)) = response.extensions().get().copied() {
                        tokio::time::sleep(pause).await;
                    }
                    if response.extensions().get::<DropConnection>().is_some() {
                        Err(Dropped)
                    } else if response.extensions().get::<TruncateBody>().is_some() {
                        Ok(truncate(response).await)
                    } else {
                        Ok::<_, Dropped>(response)
                    }
                }
            });
            // Errors here are client disconnects and injected drops; nothing to do about them.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
