//! Upstream errors keep their class: a request the upstream refuses (4xx) reaches the client
//! with that status and the upstream's code, so SDKs do not re-send it; only upstream 5xx
//! becomes 502.
#![allow(clippy::unwrap_used)]

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

mod common;

use axum::{Json, http::StatusCode, routing::post};
use serde_json::{Value, json};

/// An OpenAI-compatible upstream that answers every chat call with `status` and `body`.
async fn upstream(status: u16, body: Value) -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let (h, body) = (h.clone(), body.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                (StatusCode::from_u16(status).unwrap(), Json(body))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, hits)
}

async fn gateway(upstream: SocketAddr) -> SocketAddr {
    let config = format!(
        r#"
        [[providers]]
        id = "up"
        type = "openai"
        config = {{ base_url = "http://{upstream}/v1" }}
        "#
    );
    common::gateway(&config).await
}

async fn ask(gw: SocketAddr) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("http://{gw}/v1/chat/completions"))
        .json(&json!({"model": "up/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn an_upstream_400_reaches_the_client_as_400_with_the_upstream_code() {
    let (up, hits) = upstream(
        400,
        json!({"error": {"message": "This model's maximum context length is 128000 tokens",
                         "type": "invalid_request_error", "code": "context_length_exceeded"}}),
    )
    .await;
    let (status, body) = ask(gateway(up).await).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "context_length_exceeded", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("maximum context length"),
        "{body}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1, "sent once");
}

#[tokio::test]
async fn an_upstream_422_keeps_its_status() {
    let (up, _) = upstream(422, json!({"error": {"message": "unprocessable"}})).await;
    let (status, body) = ask(gateway(up).await).await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn an_upstream_500_is_a_502() {
    let (up, _) = upstream(500, json!({"error": {"message": "boom"}})).await;
    let (status, body) = ask(gateway(up).await).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["type"], "upstream_error", "{body}");
}
