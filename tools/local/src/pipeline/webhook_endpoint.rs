//! The webhook function behind a real HTTP endpoint on loopback, as its Function URL puts it in
//! front of the vendor: called in process, or the binary under the emulator, sent the Function
//! URL event Lambda would build from the request.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use ocrbridge::time::UnixMillis;
use webhook::Webhook;

use crate::rie::Emulated;

/// Where the endpoint sends a delivery.
#[derive(Clone)]
pub(crate) enum WebhookTarget {
    InProcess(Arc<Webhook>),
    Binary(Arc<Emulated>),
}

/// Serves `target` on a free loopback port; returns the URL to give the vendor.
pub(crate) async fn serve(target: WebhookTarget) -> Result<String, String> {
    let app = axum::Router::new()
        .route("/", axum::routing::post(receive))
        .with_state(target);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let url = format!(
        "http://{}/",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

async fn receive(
    State(target): State<WebhookTarget>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    match target {
        WebhookTarget::InProcess(webhook) => {
            let now = (UnixMillis::now().0 / 1000) as i64;
            // The function's 10 s timeout; an invocation that dies answers 502, as the Function
            // URL does.
            match super::as_invocation(
                std::time::Duration::from_secs(10),
                webhook.handle("POST", &headers, &body, now),
            )
            .await
            {
                Some(reply) => {
                    StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                }
                None => StatusCode::BAD_GATEWAY,
            }
        }
        WebhookTarget::Binary(function) => {
            let event = function_url_event(&headers, &body);
            match function.invoke(&event).await {
                Ok(response) => response["statusCode"]
                    .as_u64()
                    .and_then(|s| StatusCode::from_u16(s as u16).ok())
                    .unwrap_or(StatusCode::BAD_GATEWAY),
                Err(_) => StatusCode::BAD_GATEWAY,
            }
        }
    }
}

/// The Lambda Function URL event for an HTTP request: headers lowercased, body base64-encoded.
fn function_url_event(headers: &HeaderMap, body: &[u8]) -> serde_json::Value {
    use base64::Engine;
    let headers: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_ascii_lowercase(),
                serde_json::Value::String(v.to_str().ok()?.to_owned()),
            ))
        })
        .collect();
    serde_json::json!({
        "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous", "apiId": "local", "domainName": "localhost", "domainPrefix": "local",
            "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "vendor-sim"},
            "requestId": uuid::Uuid::new_v4().to_string(), "routeKey": "$default", "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": UnixMillis::now().0
        },
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "isBase64Encoded": true
    })
}
