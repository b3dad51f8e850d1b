//! A minimal OpenAI-compatible upstream for the load benchmark: answers chat completions
//! (JSON, or SSE in `MOCK_CHUNKS` pieces, 20 by default, spaced `MOCK_CHUNK_DELAY_MS`
//! apart) with a fixed text. `MOCK_PROSE=1` streams about 20 bytes of prose per chunk
//! instead of `wordN` (the slow-streaming time-to-first-token bench).
//!
//! `cargo run --release -p aegis-gateway --example mock_upstream -- 127.0.0.1:9100`

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use axum::{Json, Router, body::Bytes, response::IntoResponse, routing::post};
use futures_util::StreamExt;
use serde_json::{Value, json};

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9100".into());
    let delay: u64 = std::env::var("MOCK_CHUNK_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let chunks: usize = std::env::var("MOCK_CHUNKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let prose = std::env::var("MOCK_PROSE").is_ok_and(|v| v == "1");
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |body: Bytes| async move {
            let req: Value = serde_json::from_slice(&body).unwrap_or_default();
            let model = req["model"].as_str().unwrap_or("mock").to_owned();
            if req["stream"].as_bool().unwrap_or(false) {
                const PROSE: [&str; 10] = [
                    "The answer streams ", "one piece at a time", ", as a chat UI ",
                    "expects it to: the ", "user reads while the", " model is still ",
                    "writing, and nobody ", "waits for the end. ", "Twenty bytes each, ",
                    "fifty pieces in all.",
                ];
                let words: Vec<String> = (0..chunks)
                    .map(|i| if prose { PROSE[i % PROSE.len()].to_owned() } else { format!("word{i} ") })
                    .collect();
                let mut events: Vec<String> = words
                    .into_iter()
                    .map(|w| {
                        json!({"id": "mock", "object": "chat.completion.chunk", "created": 0, "model": model,
                               "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": null}]})
                        .to_string()
                    })
                    .collect();
                events.push(
                    json!({"id": "mock", "object": "chat.completion.chunk", "created": 0, "model": model,
                           "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                           "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}})
                    .to_string(),
                );
                events.push("[DONE]".into());
                let stream = futures_util::stream::iter(events).then(move |e| async move {
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    Ok::<_, std::convert::Infallible>(axum::response::sse::Event::default().data(e))
                });
                axum::response::Sse::new(stream).into_response()
            } else {
                Json(json!({
                    "id": "mock", "object": "chat.completion", "created": 0, "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "The quick brown fox jumps over the lazy dog."}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
                }))
                .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    println!("mock upstream on http://{addr}");
    axum::serve(listener, app).await.expect("serve");
}
